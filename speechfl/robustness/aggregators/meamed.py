"""Mean around the median, MeaMed (Xie, Koyejo, Gupta, arXiv:1802.10116, 2018)."""

from __future__ import annotations

from functools import partial
from typing import Optional, Tuple

from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.aggregators.median import median_kernel
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import indicator, sorted_column_reduce, take_rows
from speechfl.robustness.validation import check_int


def meamed_kernel(xp, s, f: int):
    """Mean of the ``n - f`` values of each sorted row closest to the row's median.

    In a sorted row the ``k = n - f`` values closest to the median form a window
    ``s[r, a : a + k]`` with ``0 <= a <= f``: the one whose farther end is nearest
    to the median (the first such window on ties). Its sum is the common core
    ``s[r, f : k]`` plus ``s[r, a : f]`` and ``s[r, k : k + a]``, each summed with
    0/1 masks (kept values only: no cancellation against dropped ones).
    """
    n = s.shape[1]
    k = n - f
    med = median_kernel(xp, s)[0]
    reach = xp.maximum(med[:, None] - s[:, : f + 1], s[:, k - 1 :] - med[:, None])
    start = reach.argmin(1)[:, None]
    total = xp.einsum("ij,j->i", s, indicator(xp, n, f, k, s))
    if f:
        ones = indicator(xp, f, 0, f, s)  # float ones of s's dtype: bool * ones is a 0/1 float mask
        offsets = ones.cumsum(0)[None, :] - 1  # [[0, 1, ..., f - 1]]
        total = total + xp.einsum("ij,ij->i", s[:, :f], (offsets >= start) * ones)
        total = total + xp.einsum("ij,ij->i", s[:, k:], (offsets < start) * ones)
    lo = take_rows(xp, s, start)[:, 0]
    hi = take_rows(xp, s, start + (k - 1))[:, 0]
    return total / k, lo, hi


def meamed(updates: Tensor, f: int, backend: Optional[str] = None) -> Tuple[Tensor, Tensor]:
    """Coordinate-wise MeaMed of ``updates`` ``[n, d]``; see :class:`MeaMed`."""
    return sorted_column_reduce(updates, partial(meamed_kernel, f=f), backend=backend)


@AGGREGATORS.register("meamed")
class MeaMed(Aggregator):
    """Mean around the median; ``weights`` are ignored.

    For each coordinate ``j``: ``m_j = median_i x_ij``; ``S_j`` = the ``n - f``
    indices ``i`` with the smallest ``|x_ij - m_j|``; ``y_j = mean_{i in S_j} x_ij``
    (Xie et al. 2018, "Generalized Byzantine-tolerant SGD"; ByzFL's ``Meamed(f)``
    computes the same up to ties). Needs ``n > 2f``.

    ``last_weights``: fraction of coordinates at which a row was among the ``n - f``
    kept values (ties at the window ends count every tied row), normalized.

    Parameters
    ----------
    f : int
        Assumed number of Byzantine clients.
    """

    name = "meamed"

    def __init__(self, f: int) -> None:
        super().__init__()
        self.f = check_int(f, "f", self.name, minimum=0)

    def min_rows(self) -> int:
        return 2 * self.f + 1

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        return meamed(updates, self.f)
