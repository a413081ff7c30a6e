"""The ``speechfl`` command: prepare, train, evaluate, sweep, report, demo."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import List, Optional


def find_recipe(hparams_file: str) -> Path:
    """The ``train.py`` of the recipe an hparams file belongs to (``<recipe>/hparams/x.yaml``)."""
    path = Path(hparams_file).resolve()
    if not path.is_file():
        raise SystemExit(f"speechfl train: hparams file {hparams_file} does not exist")
    for parent in path.parents:
        candidate = parent / "train.py"
        if candidate.is_file():
            return candidate
        if parent.name == "recipes":
            break
    raise SystemExit(f"speechfl train: no recipe train.py found above {hparams_file}")


def cmd_train(args, extra: List[str]) -> None:
    recipe = find_recipe(args.hparams)
    spec = importlib.util.spec_from_file_location(f"speechfl_recipe_{recipe.parent.name}", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([args.hparams, *extra])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechfl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    from speechfl import cli_prepare

    cli_prepare.register(sub)

    p = sub.add_parser("train", help="run a recipe: speechfl train HPARAMS.yaml [--key=value ...]")
    p.add_argument("hparams")
    p.set_defaults(func=cmd_train, takes_extra=True)

    for name in ("cli_evaluate", "cli_experiment"):
        try:
            module = importlib.import_module(f"speechfl.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"speechfl.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "takes_extra", False):
        args.func(args, extra)
    else:
        args.func(args)


if __name__ == "__main__":
    main()
