"""Atomic file writes: a crash never leaves a torn results file or checkpoint."""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any


def _atomic(path: str | os.PathLike, mode: str, write) -> Path:
    """Write through a temporary sibling, fsync, then ``os.replace`` (readers never see a torn file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # open(..., "x") rather than mkstemp: the file gets the usual umask permissions, not 0600
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, mode.replace("w", "x")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return _atomic(path, "wb", lambda fh: fh.write(data))


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temp file in the same folder, then ``os.replace``."""
    import torch

    return _atomic(path, "wb", lambda fh: torch.save(obj, fh))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


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
