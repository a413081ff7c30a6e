"""Geometric median by smoothed Weiszfeld iterations (RFA; Pillutla, Kakade, Harchaoui, IEEE TSP 2022)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import sq_dists_to_point, weighted_row_sum
from speechfl.robustness.validation import check_choice, check_float, check_int

INITS = ("mean", "zeros")


def smoothed_weiszfeld(
    updates: Tensor, alphas: Tensor, nu: float, iters: int, tol: float, init: str
) -> Tuple[Tensor, Tensor, int]:
    """Approximate ``argmin_z sum_i alpha_i ||z - x_i||`` (see :class:`GeometricMedian`).

    Returns
    -------
    z : Tensor [d]
    beta : Tensor [n]
        float64 Weiszfeld weights ``alpha_i / max(nu, ||z_prev - x_i||)`` that produced ``z``.
    steps : int
        Iterations run.
    """
    alphas = alphas / alphas.sum()
    z = weighted_row_sum(updates, alphas) if init == "mean" else None  # None: the origin
    for steps in range(1, iters + 1):
        beta = alphas / sq_dists_to_point(updates, z).sqrt().clamp(min=nu)
        z_next = weighted_row_sum(updates, beta / beta.sum())
        moved = float(torch.linalg.vector_norm(z_next if z is None else z_next - z))
        z = z_next
        if moved <= tol / float(beta.sum()):  # tol * (harmonic-mean distance)
            break
    return z, beta, steps


@AGGREGATORS.register("geometric_median")
class GeometricMedian(Aggregator):
    """Geometric median ``argmin_z sum_i alpha_i ||z - x_i||_2`` (RFA, Pillutla et al. 2022).

    Smoothed Weiszfeld iterations from ``z_0`` (the mean, or zeros)::

        beta_i = alpha_i / max(nu, ||z_t - x_i||),   z_{t+1} = sum_i beta_i x_i / sum_i beta_i

    stopping after ``iters`` steps or once ``||z_{t+1} - z_t|| <= tol * H_t`` with
    ``H_t = 1 / sum_i beta_i`` the alpha-weighted harmonic mean of the distances
    (``tol=0`` runs exactly ``iters`` steps). ``H_t`` is set by the points near
    ``z_t``; RFA's rule (relative change of the objective) is dominated by far-away
    points, so huge Byzantine vectors would stop it early, far from the honest
    ones. ``alpha_i = 1/n``, or the sample counts normalized when ``weighted=True``
    (RFA's weighting; a Byzantine client can inflate its count). Breakdown point
    1/2. ByzFL's ``GeometricMedian(nu, T)`` is this rule with ``init="zeros",
    iters=T, tol=0`` (it also drops rows containing inf; our inputs are finite).

    ``last_weights``: the final ``beta`` normalized; ``last_steps``: iterations run.
    Cost per step: two matrix-vector products over ``[n, d]``; no ``[n, d]`` temporary.

    Parameters
    ----------
    nu : float
        Smoothing ``nu > 0`` (lower bound on distances).
    iters : int
        Maximum number of Weiszfeld steps (>= 1).
    tol : float
        Stopping tolerance on the step, relative to ``H_t`` (>= 0).
    init : {"mean", "zeros"}
    weighted : bool
        Use sample counts as ``alpha`` (needs ``weights``).
    """

    name = "geometric_median"

    def __init__(
        self, nu: float = 1e-6, iters: int = 100, tol: float = 1e-6, init: str = "mean", weighted: bool = False
    ) -> None:
        super().__init__()
        self.nu = check_float(nu, "nu", self.name, positive=True)
        self.iters = check_int(iters, "iters", self.name, minimum=1)
        self.tol = check_float(tol, "tol", self.name, nonnegative=True)
        self.init = check_choice(init, "init", self.name, INITS)
        if not isinstance(weighted, bool):
            raise TypeError(f"{self.name}: weighted must be a bool, got {weighted!r}")
        self.weighted = weighted
        self.uses_weights = weighted
        self.last_steps = 0

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        n = updates.shape[0]
        if self.weighted:
            if weights is None:
                raise ValueError(f"{self.name}: weighted=True needs weights (sample counts [n])")
            alphas = weights / weights.sum()
        else:
            alphas = torch.full((n,), 1.0 / n, dtype=torch.float64)
        z, beta, self.last_steps = smoothed_weiszfeld(updates, alphas, self.nu, self.iters, self.tol, self.init)
        return z, beta
