"""Loading one experiment's hparams file (HyperPyYAML) with command-line overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml
from hyperpyyaml import load_hyperpyyaml


class HparamsError(ValueError):
    """Missing hparams file, unknown override key, or missing required value."""


def overrides_to_yaml(args: Sequence[str]) -> str:
    """``['--rounds=3', '--aggregator=median']`` -> YAML override string.

    Values are parsed as YAML (so ``3`` is an int, ``{name: topk}`` a mapping).
    """
    out: Dict[str, object] = {}
    for a in args:
        if not a.startswith("--") or "=" not in a:
            raise HparamsError(f"override {a!r} must look like --key=value")
        key, value = a[2:].split("=", 1)
        out[key] = yaml.safe_load(value) if value != "" else None
    return yaml.safe_dump(out, default_flow_style=True) if out else ""


def load_hparams(path: str | Path, overrides: str | Sequence[str] = "") -> dict:
    """Load ``path`` with overrides; an override of a key absent from the file is an error."""
    path = Path(path)
    if not path.is_file():
        raise HparamsError(f"hparams file {path} does not exist")
    if not isinstance(overrides, str):
        overrides = overrides_to_yaml(overrides)
    with open(path) as fh:
        try:
            return load_hyperpyyaml(fh, overrides)
        except KeyError as exc:
            with open(path) as fh2:
                keys = sorted((yaml.load(fh2, Loader=_Loose) or {}).keys())
            raise HparamsError(f"{exc.args[0]} (hparams file {path}); valid keys: {', '.join(keys)}") from None


class _Loose(yaml.SafeLoader):
    """Reads HyperPyYAML tags as plain values, to list a file's keys in errors."""


_Loose.add_multi_constructor("!", lambda loader, suffix, node: None)


def split_argv(argv: List[str]) -> Tuple[str, List[str]]:
    if not argv:
        raise HparamsError("usage: train.py HPARAMS.yaml [--key=value ...]")
    return argv[0], list(argv[1:])
