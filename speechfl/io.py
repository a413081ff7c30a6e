"""Atomic file writes: a crash never leaves a torn results file or checkpoint."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


def _atomic(path: str | os.PathLike, mode: str, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temp file in the same folder, then ``os.replace``."""
    import torch

    _atomic(path, "wb", lambda fh: torch.save(obj, fh))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    _atomic(path, "w", lambda fh: fh.write(text))


def _clean(obj: Any) -> Any:
    """JSON has no NaN/Inf: non-finite floats become None (schema: null = not computable)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _clean(obj.item())
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(_clean(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as fh:
        return json.load(fh)
