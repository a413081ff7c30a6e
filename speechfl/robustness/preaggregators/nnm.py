"""Nearest-neighbour mixing, NNM (Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan, AISTATS 2023)."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from speechfl.robustness.preaggregators.base import PreAggregator
from speechfl.robustness.registries import PREAGGREGATORS
from speechfl.robustness.tensor_ops import pairwise_sq_dists
from speechfl.robustness.validation import check_int


def nnm_mixing(sq_dists: Tensor, f: int) -> Tensor:
    """Row-stochastic ``[n, n]``: ``W[i, j] = 1/(n-f)`` iff ``x_j`` is one of the ``n - f`` nearest to ``x_i``.

    Every row counts itself among its neighbours (ties broken by lower index).
    """
    n = sq_dists.shape[0]
    k = n - f
    d = sq_dists.clone()
    d.fill_diagonal_(-1.0)
    nearest = torch.sort(d, dim=1, stable=True).indices[:, :k]
    w = torch.zeros(n, n, dtype=torch.float64)
    w.scatter_(1, nearest, 1.0 / k)
    return w


@PREAGGREGATORS.register("nnm")
class NNM(PreAggregator):
    """Nearest-neighbour mixing: ``y_i = (1/(n-f)) sum_{j in N_i} x_j``, ``N_i`` = the ``n - f``
    nearest neighbours of ``x_i`` in Euclidean distance, ``x_i`` included.

    Same rule as ByzFL's ``NNM(f)``. Memory O(n^2 + n d): distances come from one Gram
    matrix and the output is one ``[n, n] @ [n, d]`` product; ByzFL gathers an
    ``[n, n - f, d]`` tensor instead. Needs ``n > f``.

    Parameters
    ----------
    f : int
        Assumed number of Byzantine clients.
    """

    name = "nnm"

    def __init__(self, f: int) -> None:
        super().__init__()
        self.f = check_int(f, "f", self.name, minimum=0)

    def min_rows(self) -> int:
        return self.f + 1

    def _apply(self, updates: Tensor) -> Tuple[Tensor, Tensor]:
        mixing = nnm_mixing(pairwise_sq_dists(updates), self.f)
        return mixing.to(dtype=updates.dtype, device=updates.device) @ updates, mixing
