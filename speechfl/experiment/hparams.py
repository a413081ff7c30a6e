"""Loading one experiment's hparams file (HyperPyYAML) with command-line overrides.

An override ``--key=value`` *replaces* the top-level value of ``key`` (HyperPyYAML's
own overrides merge mappings, which turns ``--uplink={name: qsgd}`` over
``uplink: {name: topk, fraction: 0.01}`` into an invalid mix). Values are parsed
as YAML, so ``3`` is an int and ``{name: topk}`` a mapping; ``!ref``/``!new:``
tags are allowed. Overriding a key the file does not define is an error that
lists the valid keys.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml
from hyperpyyaml import load_hyperpyyaml

_TOP_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*:")


class HparamsError(ValueError):
    """Missing hparams file, unknown override key, or missing required value."""


def parse_overrides(args: Sequence[str]) -> Dict[str, str]:
    """``['--rounds=3', '--aggregator=median']`` -> ``{'rounds': '3', 'aggregator': 'median'}`` (raw YAML text)."""
    out: Dict[str, str] = {}
    for a in args:
        if not a.startswith("--") or "=" not in a:
            raise HparamsError(f"override {a!r} must look like --key=value")
        key, value = a[2:].split("=", 1)
        if not _TOP_KEY.match(key + ":"):
            raise HparamsError(f"override key {key!r} is not a top-level hparams name")
        out[key] = value if value != "" else "null"
    return out


def overrides_to_yaml(args: Sequence[str]) -> str:
    """Overrides as one YAML mapping string (for logging and results.json)."""
    parsed = {k: yaml.load(v, Loader=_Loose) for k, v in parse_overrides(args).items()}
    return yaml.safe_dump(parsed, default_flow_style=True) if parsed else ""


def top_level_blocks(lines: Sequence[str]) -> Dict[str, Tuple[int, int]]:
    """``key -> (first line, end line)`` of every top-level block of an hparams file's lines."""
    blocks: Dict[str, Tuple[int, int]] = {}
    current, start = None, 0
    for i, line in enumerate(lines):
        m = _TOP_KEY.match(line)
        if m:
            if current is not None:
                blocks[current] = (start, i)
            current, start = m.group(1), i
        elif line and not line[0].isspace() and not line.startswith("#") and current is not None:
            blocks[current] = (start, i)
            current = None
    if current is not None:
        blocks[current] = (start, len(lines))
    return blocks


def overridable_keys(text: str) -> Dict[str, str]:
    """Every key ``--key=value`` can override (``__``-prefixed internals excluded), with its value as written.

    A block value (a mapping or a ``!new:`` object spanning several lines) is shown as its
    first line followed by ``...``; a value is shortened to 60 characters.
    """
    lines = text.splitlines()
    out: Dict[str, str] = {}
    for key, (s, e) in top_level_blocks(lines).items():
        if key.startswith("__"):
            continue
        value = lines[s].split(":", 1)[1].split(" #")[0].strip()
        body = [ln for ln in lines[s + 1:e] if ln.strip() and not ln.lstrip().startswith("#")]
        if body:
            value = f"{value} ...".strip()
        out[key] = value if len(value) <= 60 else value[:57] + "..."
    return out


def apply_overrides(text: str, overrides: Dict[str, str], where: str = "hparams") -> str:
    """Replace the top-level blocks of ``text`` named in ``overrides`` by ``key: value``."""
    lines = text.splitlines()
    blocks = top_level_blocks(lines)
    unknown = sorted(set(overrides) - set(blocks))
    if unknown:
        raise HparamsError(f"unknown override key(s) {unknown} for {where}; valid keys: "
                           f"{', '.join(k for k in blocks if not k.startswith('__'))}")
    # Replace from the bottom so earlier line numbers stay valid.
    for key in sorted(overrides, key=lambda k: blocks[k][0], reverse=True):
        s, e = blocks[key]
        while e > s + 1 and (not lines[e - 1].strip() or lines[e - 1].lstrip().startswith("#")):
            e -= 1  # keep trailing comments/blank lines that belong to the next block
        lines[s:e] = [f"{key}: {overrides[key]}"]
    return "\n".join(lines) + "\n"


def overridden_text(path: str | Path, overrides: str | Sequence[str] = ()) -> str:
    """The hparams file's text with ``overrides`` (``--key=value`` list or a YAML mapping string) applied."""
    path = Path(path)
    if isinstance(overrides, str):
        mapping = yaml.load(overrides, Loader=_Loose) or {}
        raw = {k: yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
               for k, v in mapping.items()}
    else:
        raw = parse_overrides(overrides)
    return apply_overrides(path.read_text(), raw, where=str(path))


def load_hparams(path: str | Path, overrides: str | Sequence[str] = ()) -> dict:
    """Load ``path`` with overrides (``--key=value`` list or a YAML mapping string)."""
    path = Path(path)
    if not path.is_file():
        raise HparamsError(f"hparams file {path} does not exist")
    text = overridden_text(path, overrides)
    try:
        return load_hyperpyyaml(io.StringIO(text))
    except Exception as exc:
        if "PLACEHOLDER" in str(exc) or type(exc).__name__ == "ValueError" and "placeholder" in str(exc).lower():
            raise HparamsError(f"{path}: a required value is missing ({exc}); pass it as --key=value") from None
        raise


class _Loose(yaml.SafeLoader):
    """Reads HyperPyYAML tags as plain values (for logging overrides)."""


_Loose.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


def split_argv(argv: List[str]) -> Tuple[str, List[str]]:
    if not argv:
        raise HparamsError("usage: train.py HPARAMS.yaml [--key=value ...]")
    return argv[0], list(argv[1:])
