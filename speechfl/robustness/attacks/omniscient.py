"""Attacks built from the honest updates' statistics: ALIE and IPM."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Optional

import torch
from torch import Tensor

from speechfl.robustness.attacks.base import UpdateAttack, repeat_row
from speechfl.robustness.registries import ATTACKS
from speechfl.robustness.validation import check_float


def alie_z(n: int, f: int) -> float:
    """Baruch et al.'s ``z_max``: ``s = floor(n/2 + 1) - f``, ``z = Phi^{-1}((n - s) / n)``."""
    s = math.floor(n / 2 + 1) - f
    if s <= 0 or s >= n:
        raise ValueError(f"alie: n = {n}, f = {f} gives s = {s} supporters (needs 0 < s < n); pass z explicitly")
    return NormalDist().inv_cdf((n - s) / n)


def alie_vector(honest: Tensor, z: float) -> Tensor:
    """``mean(honest) - z * std(honest)`` per coordinate (sample std, ``n - 1`` denominator)."""
    return honest.mean(0) - z * honest.std(0, correction=1)


@ATTACKS.register("alie")
class ALIE(UpdateAttack):
    """A Little Is Enough (Baruch, Baruch, Goldberg, NeurIPS 2019).

    Every Byzantine client sends ``mu - z * sigma``, with ``mu`` and ``sigma`` the
    coordinate-wise mean and sample standard deviation of the honest updates. By
    default ``z`` is the paper's ``z_max`` for ``n = h + f`` clients:
    ``s = floor(n/2 + 1) - f`` and ``z = Phi^{-1}((n - s)/n)`` (``Phi`` the standard
    normal CDF), e.g. ``n = 20, f = 4`` gives ``s = 7``, ``z = Phi^{-1}(0.65) ~ 0.385``.
    (ByzFL's ``ALittleIsEnough(tau)`` sends ``mu + tau * sigma``.)

    Parameters
    ----------
    z : float, optional
        Fixed coefficient instead of ``z_max``.
    """

    name = "alie"
    min_honest = 2

    def __init__(self, z: Optional[float] = None) -> None:
        self.z = None if z is None else check_float(z, "z", self.name)

    def coefficient(self, h: int, f: int) -> float:
        return alie_z(h + f, f) if self.z is None else self.z

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        f = own.shape[0]
        return repeat_row(alie_vector(honest, self.coefficient(honest.shape[0], f)), f)


@ATTACKS.register("ipm")
class IPM(UpdateAttack):
    """Inner-product manipulation (Xie, Koyejo, Gupta, UAI 2020, "Fall of empires").

    Every Byzantine client sends ``-eps * mean(honest)``. A small ``eps`` (0.1, the
    paper's) keeps the Byzantine vectors close to the honest ones, so that median- or
    distance-based rules accept them, while pushing the aggregate's inner product
    with the true gradient negative; ``eps`` large flips the mean. Same rule as
    ByzFL's ``InnerProductManipulation(tau=eps)``.

    Parameters
    ----------
    eps : float
        Strength (> 0).
    """

    name = "ipm"
    min_honest = 1

    def __init__(self, eps: float = 0.1) -> None:
        self.eps = check_float(eps, "eps", self.name, positive=True)

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        return repeat_row(honest.mean(0) * (-self.eps), own.shape[0])
