"""Count-sketch projection of very long update vectors to a few hundred dimensions.

A model update has millions of coordinates; a dense Gaussian projection to
1024 dims would need a ``d x 1024`` matrix (gigabytes). The count sketch
(Charikar et al. 2002; "feature hashing", Weinberger et al. 2009) maps
coordinate ``i`` to bucket ``h(i)`` with sign ``s(i)``:
``y_b = sum_{i : h(i) = b} s(i) x_i``. It preserves inner products in
expectation (``E[<y, y'>] = <x, x'>``) at O(d) cost per vector. The hash is
drawn from a seeded generator, so every vector of an attack shares it.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch


def count_sketch(x: torch.Tensor, out_dim: int, seed: int = 0) -> torch.Tensor:
    """Project ``[n, d]`` to ``[n, min(d, out_dim)]``; vectors with ``d <= out_dim`` are returned unchanged."""
    if x.dim() != 2:
        raise ValueError(f"count_sketch needs [n, d], got shape {tuple(x.shape)}")
    if out_dim < 1:
        raise ValueError(f"out_dim must be >= 1, got {out_dim}")
    n, d = x.shape
    if d <= out_dim:
        return x.to(torch.float32).clone()
    gen = torch.Generator().manual_seed(seed)
    bucket = torch.randint(0, out_dim, (d,), generator=gen)
    sign = torch.randint(0, 2, (d,), generator=gen).to(torch.float32) * 2 - 1
    out = torch.zeros(n, out_dim)
    for r in range(n):  # row by row: never materialise a second [n, d] copy
        out[r].index_add_(0, bucket, x[r].to(torch.float32) * sign)
    return out


def stack_updates(updates: Dict[str, torch.Tensor], what: str) -> Tuple[torch.Tensor, List[str]]:
    """``{client: [d] or [k, d]}`` -> (``[sum k, d]``, owner client per row), validated."""
    if not updates:
        raise ValueError(f"{what}: no updates given")
    rows, owners, dim = [], [], None
    for cid in sorted(updates):
        u = updates[cid]
        if not isinstance(u, torch.Tensor) or not u.is_floating_point():
            raise TypeError(f"{what}: update of client {cid!r} must be a float tensor, got {type(u).__name__}")
        if u.dim() == 1:
            u = u.unsqueeze(0)
        if u.dim() != 2 or u.shape[0] == 0:
            raise ValueError(f"{what}: update of client {cid!r} must be [d] or [k, d] with k >= 1, got {tuple(u.shape)}")
        if dim is None:
            dim = u.shape[1]
        elif u.shape[1] != dim:
            raise ValueError(f"{what}: client {cid!r} has update dim {u.shape[1]}, others have {dim}")
        if not bool(torch.isfinite(u).all()):
            raise ValueError(f"{what}: update of client {cid!r} has NaN/Inf values")
        rows.append(u)
        owners += [cid] * u.shape[0]
    return torch.cat(rows), owners
