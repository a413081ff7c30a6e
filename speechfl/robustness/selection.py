"""Deterministic choice of the malicious clients."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Set

import torch


def malicious_count(n: int, count: Optional[int] = None, fraction: Optional[float] = None) -> int:
    """Number of malicious clients among ``n``: ``count``, or ``floor(fraction * n + 1/2)``."""
    if (count is None) == (fraction is None):
        raise ValueError("select_malicious: give exactly one of count and fraction")
    if count is not None:
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= n:
            raise ValueError(f"select_malicious: count must be an int in [0, {n}], got {count!r}")
        return count
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
        raise ValueError(f"select_malicious: fraction must be in [0, 1], got {fraction!r}")
    return int(math.floor(fraction * n + 0.5))


def select_malicious(
    client_ids: Sequence[str], count: Optional[int] = None, fraction: Optional[float] = None, seed: int = 0
) -> Set[str]:
    """Choose the malicious clients, reproducibly.

    The ids are sorted, then the first ``count`` entries of a uniform permutation
    drawn from ``torch.Generator().manual_seed(seed)`` are taken: the result depends
    only on the set of ids, the count and the seed (not on the list's order).

    Parameters
    ----------
    client_ids : sequence of str
        Distinct client ids.
    count : int, optional
        Number of malicious clients, in ``[0, n]``.
    fraction : float, optional
        Share of malicious clients in ``[0, 1]``; rounded half up to a count.
    seed : int

    Returns
    -------
    set of str
    """
    ids = list(client_ids)
    if any(not isinstance(c, str) for c in ids):
        raise TypeError("select_malicious: client ids must be strings")
    if len(set(ids)) != len(ids):
        raise ValueError("select_malicious: client ids must be distinct")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"select_malicious: seed must be an int, got {seed!r}")
    k = malicious_count(len(ids), count, fraction)
    ordered = sorted(ids)
    perm = torch.randperm(len(ordered), generator=torch.Generator().manual_seed(seed))
    return {ordered[int(i)] for i in perm[:k]}
