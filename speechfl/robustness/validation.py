"""Argument checks shared by aggregators, pre-aggregators and attacks.

Every check raises ``TypeError`` or ``ValueError`` with a message that names the
component and the problem; nothing is coerced silently.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_updates(updates: Tensor, where: str, min_rows: int = 1) -> None:
    """Require a float32/float64 tensor ``[n, d]`` with ``n >= min_rows`` and ``d >= 1``."""
    if not isinstance(updates, Tensor):
        raise TypeError(f"{where}: updates must be a torch.Tensor [n, d], got {type(updates).__name__}")
    if updates.dim() != 2:
        raise ValueError(f"{where}: updates must be 2-D [n, d], got shape {tuple(updates.shape)}")
    if updates.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{where}: updates must be float32 or float64, got {updates.dtype}")
    n, d = updates.shape
    if d < 1:
        raise ValueError(f"{where}: updates have d = 0 coordinates")
    if n < min_rows:
        raise ValueError(f"{where}: needs at least {min_rows} update(s), got n = {n}")


def check_weights(weights: Optional[Tensor], n: int, where: str) -> Optional[Tensor]:
    """Validate sample-count weights ``[n]`` (finite, >= 0, positive sum); return them as float64."""
    if weights is None:
        return None
    if not isinstance(weights, Tensor):
        raise TypeError(f"{where}: weights must be a torch.Tensor [n], got {type(weights).__name__}")
    if weights.dim() != 1 or weights.numel() != n:
        raise ValueError(f"{where}: weights must have shape [{n}], got {tuple(weights.shape)}")
    w = weights.to(torch.float64)
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError(f"{where}: weights must be finite and >= 0, got {weights.tolist()}")
    if float(w.sum()) <= 0:
        raise ValueError(f"{where}: weights sum to 0")
    return w


def check_int(value, name: str, where: str, minimum: int = 0) -> int:
    """Require an ``int`` (not bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value}")
    return value


def check_float(value, name: str, where: str, positive: bool = False, nonnegative: bool = False) -> float:
    """Require a finite real number (int or float, not bool); optionally > 0 or >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: {name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{where}: {name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise ValueError(f"{where}: {name} must be >= 0, got {value}")
    return value


def check_choice(value, name: str, where: str, choices) -> str:
    """Require ``value`` to be one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{where}: {name} must be one of {sorted(choices)}, got {value!r}")
    return value
