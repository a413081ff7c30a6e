"""The run checkpoint (``checkpoint.pt``): safe to load, and tied to the configuration that wrote it.

Safety. A checkpoint holds tensors and plain containers only (dict, list, tuple, str, int,
float, bool, None), checked before it is written, and is read with
``torch.load(..., weights_only=True)``: a tampered run folder cannot make ``train`` execute
code (a pickled object is refused with :class:`CheckpointError`, never constructed).

Identity. The checkpoint stores a *fingerprint* of the run's configuration: every resolved
top-level hparams value that affects training, in canonical plain form (objects built with
``!new:`` become their class, ``repr`` and plain attributes; a model also its parameter
shapes). Keys that only say where or how to run (:data:`NOT_FINGERPRINTED`) are left out.
Resuming under a different fingerprint is refused, naming the differing keys; the hparams
key ``resume`` chooses what happens to an existing checkpoint:

- ``auto`` (default): resume when the fingerprint matches, refuse when it differs;
- ``fresh``: start again from round 0; an existing checkpoint and ``recorded/`` updates are
  moved to ``<output_folder>/superseded-<n>/`` so the new run never mixes with them.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any, Dict, List

import torch

from speechfl.io import atomic_torch_save

RESUME_MODES = ("auto", "fresh")
NOT_FINGERPRINTED = frozenset({
    "output_folder", "save_folder", "feature_cache", "feature_cache_memory_mb", "device", "progress", "resume",
    "eval_batch_size", "record_updates", "flower",
})
_PLAIN_SCALARS = (str, int, float, bool, type(None))
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed (corrupt, unsafe, or from another configuration)."""


def check_plain(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``TypeError`` naming the first value that is not a tensor or a plain container."""
    if isinstance(obj, torch.Tensor) or isinstance(obj, _PLAIN_SCALARS):
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}, not str or int")
            check_plain(value, f"{where}[{key!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            check_plain(value, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; a checkpoint holds tensors "
                    "and plain containers only (it is loaded with weights_only=True)")


def _canonical(value: Any, depth: int = 0) -> Any:
    """A plain, deterministic description of an hparams value."""
    if isinstance(value, float) or isinstance(value, _PLAIN_SCALARS):
        return value
    if depth > 6:
        return _ADDRESS.sub("", repr(value))
    if isinstance(value, dict):
        return {str(k): _canonical(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):  # iteration order varies between processes (hash seed)
        return sorted((_canonical(v, depth + 1) for v in value), key=repr)
    if isinstance(value, torch.Tensor):
        return {"tensor": list(value.shape), "dtype": str(value.dtype), "sum": float(value.double().sum())}
    out: Dict[str, Any] = {"class": f"{type(value).__module__}.{type(value).__qualname__}"}
    if isinstance(value, torch.nn.Module):
        out["repr"] = _ADDRESS.sub("", repr(value))
        out["parameters"] = {name: list(p.shape) for name, p in value.named_parameters()}
        out["attributes"] = {name or "<root>": _plain_attributes(m) for name, m in value.named_modules()}
    else:
        out["attributes"] = _plain_attributes(value)
        if not out["attributes"]:
            out["repr"] = _ADDRESS.sub("", repr(value))
    return out


def _plain_attributes(obj: Any) -> Dict[str, Any]:
    attrs = getattr(obj, "__dict__", {})
    plain = {}
    for name in sorted(attrs):
        v = attrs[name]
        if name.startswith("_") or name == "training":
            continue
        if isinstance(v, _PLAIN_SCALARS) or (isinstance(v, (list, tuple)) and all(
                isinstance(x, _PLAIN_SCALARS) for x in v)):
            plain[name] = list(v) if isinstance(v, tuple) else v
    return plain


def config_fingerprint(hparams: Dict[str, Any]) -> Dict[str, Any]:
    """Canonical plain form of every training-relevant top-level hparams value (see module doc)."""
    return {k: _canonical(v) for k, v in sorted(hparams.items())
            if not k.startswith("_") and k not in NOT_FINGERPRINTED}


def differing_keys(old: Dict[str, Any], new: Dict[str, Any]) -> List[str]:
    """Top-level keys whose canonical values differ (present in one only, or different)."""
    return sorted(k for k in set(old) | set(new) if old.get(k, "<absent>") != new.get(k, "<absent>"))


def resume_mode(hparams: Dict[str, Any]) -> str:
    mode = hparams.get("resume", "auto")
    if mode not in RESUME_MODES:
        raise ValueError(f"hparams key resume={mode!r} is not one of {', '.join(RESUME_MODES)}")
    return mode


def _numpy_scalars_to_python(obj: Any) -> Any:
    """NumPy scalars (e.g. a metric computed with numpy) become the equal Python int/float/bool."""
    if isinstance(obj, dict):
        return {k: _numpy_scalars_to_python(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_numpy_scalars_to_python(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_numpy_scalars_to_python(v) for v in obj)
    if type(obj).__module__ == "numpy" and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        return obj.item()
    return obj


def save_checkpoint(state: Dict[str, Any], path: str | Path) -> Path:
    """Check that ``state`` is tensors and plain containers (NumPy scalars converted), then write it atomically."""
    state = _numpy_scalars_to_python(state)
    check_plain(state, "checkpoint")
    return atomic_torch_save(state, path)


def load_checkpoint(path: str | Path) -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; any failure is one :class:`CheckpointError` line."""
    path = Path(path)
    fresh = "rerun with --resume=fresh to start again, or use another output_folder"
    try:
        state = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in str(exc).lower() or "unsupported global" in str(exc).lower():
            raise CheckpointError(f"{path} holds Python objects, not only tensors and plain containers; it was "
                                  f"not loaded (possibly tampered with). Delete it or {fresh}") from None
        raise CheckpointError(f"{path} is truncated or corrupt ({reason}); delete it or {fresh}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is truncated or corrupt ({reason}); delete it or {fresh}") from None
    if not isinstance(state, dict) or "round" not in state:
        raise CheckpointError(f"{path} is not a speechfl checkpoint (no 'round' entry); delete it or {fresh}")
    return state


def check_fingerprint(state: Dict[str, Any], fingerprint: Dict[str, Any], path: str | Path) -> None:
    """Refuse to resume ``state`` under another configuration, naming the differing keys."""
    old = state.get("config_fingerprint")
    if old is None:
        raise CheckpointError(f"{path} was written without a configuration fingerprint (an older speechfl), so "
                              f"resuming it cannot be checked; rerun with --resume=fresh or use another output_folder")
    keys = differing_keys(old, fingerprint)
    if keys:
        shown = ", ".join(keys[:12]) + (f" and {len(keys) - 12} more" if len(keys) > 12 else "")
        raise CheckpointError(f"{path} belongs to a run with another configuration (differing hparams: {shown}); "
                              f"rerun with the original settings to resume it, with --resume=fresh to start again "
                              f"in this folder, or use another output_folder")
