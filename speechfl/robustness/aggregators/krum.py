"""Krum and Multi-Krum (Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import pairwise_sq_dists, weighted_row_sum
from speechfl.robustness.validation import check_choice, check_int

CONVENTIONS = ("blanchard", "byzfl")


def krum_scores(sq_dists: Tensor, n_neighbours: int) -> Tensor:
    """``score_i = sum of the n_neighbours smallest ||x_i - x_j||^2, j != i`` (float64 ``[n]``)."""
    d = sq_dists.clone()
    d.fill_diagonal_(float("inf"))
    return torch.sort(d, dim=1).values[:, :n_neighbours].sum(1)


def neighbour_count(n: int, f: int, convention: str) -> int:
    """Neighbours scored per row: ``n - f - 2`` (Blanchard et al.) or ``n - f - 1`` (ByzFL)."""
    return n - f - 2 if convention == "blanchard" else n - f - 1


@AGGREGATORS.register("multi_krum")
class MultiKrum(Aggregator):
    """Multi-Krum: average of the ``m`` updates with the lowest Krum scores.

    Formula implemented (``convention="blanchard"``, the paper's, default)::

        score(i) = sum_{j in N_i} ||x_i - x_j||^2,   N_i = the n - f - 2 nearest
                   neighbours of x_i among the other n - 1 updates,
        y = (1/m) sum_{i in S} x_i,  S = the m lowest scores (ties: lowest index).

    Needs ``n > 2f + 2``. Scores are computed once (not re-scored after each pick).
    ``m`` defaults to ``n - f``. ``weights`` are ignored: the selected updates are
    averaged uniformly, and ``last_weights`` is ``1/m`` on the selected rows.

    How others differ: Flower's ``aggregate_krum`` uses the same ``n - f - 2``
    neighbour sum (clamped to at least 1) but averages the Multi-Krum selection
    weighted by sample counts; ByzFL's ``Krum``/``MultiKrum`` score with the *mean*
    over ``n - f - 1`` neighbours (same ranking as a sum over ``n - f - 1``), accept
    any ``n > 2f``, and always keep ``m = n - f``. ``convention="byzfl"`` selects
    ByzFL's neighbour count (score reported as that mean) to reproduce it.

    Parameters
    ----------
    f : int
        Assumed number of Byzantine clients.
    m : int, optional
        Number of updates averaged (default ``n - f``).
    convention : {"blanchard", "byzfl"}
    """

    name = "multi_krum"

    def __init__(self, f: int, m: Optional[int] = None, convention: str = "blanchard") -> None:
        super().__init__()
        self.f = check_int(f, "f", self.name, minimum=0)
        self.m = None if m is None else check_int(m, "m", self.name, minimum=1)
        self.convention = check_choice(convention, "convention", self.name, CONVENTIONS)
        self.last_scores: Optional[Tensor] = None

    def min_rows(self) -> int:
        need = 2 * self.f + 3 if self.convention == "blanchard" else 2 * self.f + 1
        return max(need, self.m or 0)  # averaging m selected updates needs m of them (checked at setup)

    def _selected(self, n: int) -> int:
        m = n - self.f if self.m is None else self.m
        if m > n:
            raise ValueError(f"{self.name}: m = {m} exceeds the number of updates n = {n}")
        return m

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        n = updates.shape[0]
        m = self._selected(n)
        k = neighbour_count(n, self.f, self.convention)
        scores = krum_scores(pairwise_sq_dists(updates), k)
        if self.convention == "byzfl" and k > 0:
            scores = scores / k
        self.last_scores = scores
        chosen = torch.sort(scores, stable=True).indices[:m]
        coef = torch.zeros(n, dtype=torch.float64)
        coef[chosen] = 1.0 / m
        if m == 1:
            return updates[int(chosen[0])].clone(), coef
        return weighted_row_sum(updates, coef), coef


@AGGREGATORS.register("krum")
class Krum(MultiKrum):
    """Krum: the single update with the lowest score (Multi-Krum with ``m = 1``).

    ``y = x_{i*}``, ``i* = argmin_i score(i)`` with the score of :class:`MultiKrum`
    (``n - f - 2`` nearest neighbours, summed squared distances; needs
    ``n > 2f + 2``). ``last_weights`` is one-hot on ``i*``.
    """

    name = "krum"

    def __init__(self, f: int, convention: str = "blanchard") -> None:
        super().__init__(f=f, m=1, convention=convention)
