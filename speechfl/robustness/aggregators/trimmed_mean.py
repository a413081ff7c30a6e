"""Coordinate-wise trimmed mean (Yin, Chen, Ramchandran, Bartlett, ICML 2018)."""

from __future__ import annotations

from functools import partial
from typing import Optional, Tuple

from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import indicator, sorted_column_reduce
from speechfl.robustness.validation import check_int


def trimmed_kernel(xp, s, f: int):
    """Mean of the sorted row ``s[r, f : n - f]`` for every row of ``s`` ([c, n])."""
    n = s.shape[1]
    kept = xp.einsum("ij,j->i", s, indicator(xp, n, f, n - f, s))  # 0 * (any finite value) = 0
    return kept / (n - 2 * f), s[:, f], s[:, n - f - 1]


def trimmed_mean(updates: Tensor, f: int, backend: Optional[str] = None) -> Tuple[Tensor, Tensor]:
    """Coordinate-wise ``f``-trimmed mean of ``updates`` ``[n, d]``; see :class:`TrimmedMean`."""
    return sorted_column_reduce(updates, partial(trimmed_kernel, f=f), backend=backend)


@AGGREGATORS.register("trimmed_mean")
class TrimmedMean(Aggregator):
    """Coordinate-wise trimmed mean; ``weights`` are ignored.

    For each coordinate ``j`` sort ``x_(1)j <= ... <= x_(n)j`` and average the middle
    ``n - 2f``: ``y_j = (1 / (n - 2f)) sum_{k=f+1}^{n-f} x_(k)j`` (Yin et al. 2018,
    with ``beta = f / n``; identical to ByzFL's ``TrMean(f)``). Needs ``n > 2f``.

    ``last_weights``: fraction of coordinates at which a row's value lay in the kept
    range ``[x_(f+1)j, x_(n-f)j]`` (ties count every tied row), normalized to sum 1.

    Parameters
    ----------
    f : int
        Values trimmed at each end of every coordinate (assumed Byzantine count).
    """

    name = "trimmed_mean"

    def __init__(self, f: int) -> None:
        super().__init__()
        self.f = check_int(f, "f", self.name, minimum=0)

    def min_rows(self) -> int:
        return 2 * self.f + 1

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        return trimmed_mean(updates, self.f)
