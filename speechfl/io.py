"""Atomic file writes: a crash never leaves a torn results file or checkpoint."""

from __future__ import annotations

import errno
import json
import math
import os
import uuid
from pathlib import Path
from typing import Any


class WriteError(OSError):
    """A file could not be written (full disk, no permission, ...); the message names it and what to do."""


_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or point output_folder/feature_cache elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or point output_folder/feature_cache elsewhere",
    errno.EACCES: "permission denied; choose a writable folder",
    errno.EROFS: "the file system is read-only; choose a writable folder",
}


def _write_error(path: Path, exc: OSError) -> WriteError:
    advice = _ADVICE.get(exc.errno, f"{exc.strerror or exc}; check the folder and retry")
    err = WriteError(exc.errno, f"cannot write {path}: {advice} (nothing was written there)")
    err.filename = str(path)
    return err


def _atomic(path: str | os.PathLike, mode: str, write) -> Path:
    """Write through a temporary sibling, fsync, then ``os.replace`` (readers never see a torn file).

    Raises
    ------
    WriteError
        One line naming ``path`` and the remedy when the OS refuses the write (e.g. ``ENOSPC``);
        the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    # open(..., "x") rather than mkstemp: the file gets the usual umask permissions, not 0600
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, mode.replace("w", "x")) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, WriteError) and exc.errno is not None:
            raise _write_error(path, exc) from None
        if isinstance(exc, RuntimeError) and "No space left on device" in str(exc):
            # torch.save reports a full disk from its C++ writer as a RuntimeError
            raise _write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))) from None
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
