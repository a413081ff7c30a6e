"""Attacks that transform the Byzantine clients' own updates: sign flipping,
scaling (model replacement), Gaussian noise and non-finite injection."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from speechfl.robustness.attacks.base import UpdateAttack
from speechfl.robustness.registries import ATTACKS
from speechfl.robustness.validation import check_choice, check_float


@ATTACKS.register("sign_flip")
class SignFlip(UpdateAttack):
    """Sign flipping: ``y_b = -scale * x_b`` for each Byzantine client's own update ``x_b``.

    The "sign-flipping" Byzantine worker of Li et al. (RSA, AAAI 2019) and
    Allen-Zhu et al. (ICLR 2021). (ByzFL's ``SignFlipping`` instead sends
    ``-mean(honest)``, which is ``ipm`` with ``eps = 1``.)

    Parameters
    ----------
    scale : float
        Magnitude of the flipped update (> 0; default 1).
    """

    name = "sign_flip"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = check_float(scale, "scale", self.name, positive=True)

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        return own * (-self.scale)


@ATTACKS.register("scaling")
class Scaling(UpdateAttack):
    """Model replacement by scaling (Bagdasaryan et al., AISTATS 2020): ``y_b = gamma * x_b``.

    With the server averaging ``n`` updates at global learning rate ``eta``, the
    attacker boosts its update by ``gamma = n / eta`` so that it replaces the model
    (paired with a backdoored local training, see :mod:`speechfl.robustness.data_attacks`).
    ``factor=None`` uses ``gamma = n = h + f`` (``eta = 1``).

    Parameters
    ----------
    factor : float, optional
        Boost factor ``gamma`` (> 0).
    """

    name = "scaling"

    def __init__(self, factor: Optional[float] = None) -> None:
        self.factor = None if factor is None else check_float(factor, "factor", self.name, positive=True)

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        gamma = float(honest.shape[0] + own.shape[0]) if self.factor is None else self.factor
        return own * gamma


@ATTACKS.register("gaussian")
class Gaussian(UpdateAttack):
    """Gaussian noise: ``y_b ~ N(mean, std^2 I_d)`` i.i.d., drawn from ``generator``.

    The Gaussian Byzantine vectors of Blanchard et al. (NeurIPS 2017, Section 5);
    same rule as ByzFL's ``Gaussian(mu, sigma)``.

    Parameters
    ----------
    mean : float
    std : float
        Standard deviation (>= 0).
    """

    name = "gaussian"

    def __init__(self, mean: float = 0.0, std: float = 1.0) -> None:
        self.mean = check_float(mean, "mean", self.name)
        self.std = check_float(std, "std", self.name, nonnegative=True)

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        noise = torch.randn(own.shape, generator=generator, dtype=own.dtype, device=generator.device)
        return noise.mul_(self.std).add_(self.mean)


NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


@ATTACKS.register("nonfinite")
class NonFinite(UpdateAttack):
    """Non-finite injection: ``ceil(fraction * d)`` coordinates of ``x_b`` (uniformly chosen per
    client) set to NaN, +inf or -inf.

    The engine must reject these updates (:func:`speechfl.federated.update.validate_update`);
    ByzFL's ``Inf`` attack is ``value="inf", fraction=1``.

    Parameters
    ----------
    value : {"nan", "inf", "-inf"}
    fraction : float
        Share of coordinates replaced, in (0, 1].
    """

    name = "nonfinite"

    def __init__(self, value: str = "nan", fraction: float = 1.0) -> None:
        self.value = check_choice(value, "value", self.name, tuple(NONFINITE))
        self.fraction = check_float(fraction, "fraction", self.name, positive=True)
        if self.fraction > 1:
            raise ValueError(f"{self.name}: fraction must be in (0, 1], got {fraction}")

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        out = own.clone()
        f, d = out.shape
        count = math.ceil(self.fraction * d)
        if count >= d:
            return out.fill_(NONFINITE[self.value])
        for b in range(f):
            idx = torch.randperm(d, generator=generator, device=generator.device)[:count]
            out[b, idx.to(out.device)] = NONFINITE[self.value]
        return out
