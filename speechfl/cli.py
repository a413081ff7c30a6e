"""The ``speechfl`` command: prepare, train, evaluate, sweep, report, demo."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import List, Optional


TRAIN_USAGE = "speechfl train HPARAMS.yaml [--key=value ...] [--debug]"
TRAIN_DESCRIPTION = """Run the recipe an hparams file belongs to (recipes/<Dataset>/<Task>/<Method>/train.py).

Every top-level key of the hparams file can be overridden with --key=value: the value is
YAML (--rounds=3, --uplink={name: topk, fraction: 0.01}, --malicious=null) and replaces the
key's whole value. `speechfl train HPARAMS.yaml --help` lists the file's keys."""


def find_recipe(hparams_file: str) -> Path:
    """The ``train.py`` of the recipe an hparams file belongs to (``<recipe>/hparams/x.yaml``)."""
    path = Path(hparams_file).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"hparams file {hparams_file} does not exist")
    for parent in path.parents:
        candidate = parent / "train.py"
        if candidate.is_file():
            return candidate
        if parent.name == "recipes":
            break
    raise FileNotFoundError(f"no recipe train.py found above {hparams_file} (expected <recipe>/hparams/x.yaml)")


def train_help(parser: argparse.ArgumentParser, hparams_file: Optional[str]) -> str:
    """The train sub-command's help, with the keys of ``hparams_file`` and their values when it is given."""
    text = parser.format_help()
    if hparams_file is None:
        return text + "\nGive an hparams file to list the keys it accepts: speechfl train HPARAMS.yaml --help\n"
    from speechfl.experiment.hparams import overridable_keys

    path = Path(hparams_file)
    if not path.is_file():
        raise FileNotFoundError(f"hparams file {hparams_file} does not exist")
    keys = overridable_keys(path.read_text())
    width = max((len(k) for k in keys), default=0)
    lines = [f"\nkeys of {hparams_file} (override any with --key=value; value as in the file):"]
    lines += [f"  --{k.ljust(width)}  {v}" for k, v in keys.items()]
    return text + "\n".join(lines) + "\n"


def cmd_train(args, extra: List[str]) -> None:
    if args.help:
        print(train_help(args.parser, args.hparams), end="")
        return
    if args.hparams is None:
        raise ValueError(f"an hparams file is required; usage: {TRAIN_USAGE}")
    recipe = find_recipe(args.hparams)
    spec = importlib.util.spec_from_file_location(f"speechfl_recipe_{recipe.parent.name}", recipe)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main([args.hparams, *extra])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechfl", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (anywhere on the command line)")
    sub = parser.add_subparsers(dest="command", required=True)

    from speechfl import cli_prepare

    cli_prepare.register(sub)

    p = sub.add_parser("train", help="run a recipe: speechfl train HPARAMS.yaml [--key=value ...]", add_help=False,
                       usage=TRAIN_USAGE, description=TRAIN_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("hparams", nargs="?", metavar="HPARAMS.yaml", help="the recipe's hparams file")
    p.add_argument("-h", "--help", action="store_true", help="show this help and the hparams file's keys")
    p.set_defaults(func=cmd_train, takes_extra=True, parser=p)

    for name in ("cli_evaluate", "cli_experiment", "cli_anonymize"):
        try:
            module = importlib.import_module(f"speechfl.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"speechfl.{name}":
                raise
            continue
        module.register(sub)
    return parser


# Errors that describe bad input (configuration, files, data) rather than a bug: their message is enough.
USER_ERRORS = (ValueError, OSError, KeyError, ImportError)


def error_line(exc: BaseException) -> str:
    """One line describing ``exc``; a likely bug is named by its type and points to ``--debug``."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError) and msg.startswith("'"):
        msg = f"missing key {msg}"
    if not isinstance(exc, USER_ERRORS):
        return f"{type(exc).__name__}: {msg} (rerun with --debug for the traceback)"
    return msg


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if extra and not getattr(args, "takes_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "takes_extra", False):
            args.func(args, extra)
        else:
            args.func(args)
    except Exception as exc:  # noqa: BLE001  one line for every error; the traceback only with --debug
        if debug:
            raise
        print(f"speechfl {args.command}: error: {error_line(exc)}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
