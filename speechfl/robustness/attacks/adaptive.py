"""ALIE and IPM with their strength tuned by line search against the configured defense.

The attacker (omniscient, as in the papers) knows the server's pipeline and picks
the coefficient ``c`` (ALIE's ``z`` or IPM's ``eps``) that maximizes the damage

    D(c) = || defense([honest; byz(c) x f]) - mean(honest) ||_2

by the expansion-then-contraction search used for the "optimized" ALIE/FOE attacks
of Allouah et al. (AISTATS 2023, "Fixing by mixing") and ByzFL's
``Optimal_ALittleIsEnough`` / ``Optimal_InnerProductManipulation``: from
``c = start``, step by ``delta``, doubling the step while ``D`` grows; once it stops
growing, try ``best + step`` then ``best - step`` (ByzFL tries only ``+``), shrinking
the step by ``ratio`` each time, for ``evals`` evaluations of ``D`` in all. Each evaluation runs a deep copy of
the defense, so the server's own state (centered clipping's center, bucketing's
generator) is untouched.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import torch
from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.attacks.base import UpdateAttack, repeat_row
from speechfl.robustness.attacks.omniscient import alie_vector
from speechfl.robustness.pipeline import RobustPipeline, build_robust_pipeline
from speechfl.robustness.registries import ATTACKS
from speechfl.robustness.validation import check_float, check_int


def line_search(damage: Callable[[float], float], evals: int, start: float, delta: float, ratio: float) -> float:
    """Expansion-contraction search maximizing ``damage``; returns the best coefficient."""
    best_x, best_y = start, damage(start)
    left = evals - 1
    while left > 0:  # expansion
        x = best_x + delta
        y = damage(x)
        left -= 1
        if y > best_y:
            best_x, best_y = x, y
            delta *= 2
        else:
            delta *= ratio
            break
    while left > 0:  # contraction, both directions
        for x in (best_x + delta, best_x - delta)[: min(2, left)]:
            y = damage(x)
            left -= 1
            if y > best_y:
                best_x, best_y = x, y
                break
        delta *= ratio
    return best_x


def _as_defense(defense: Any) -> Callable:
    if isinstance(defense, (Aggregator, RobustPipeline)):
        return defense
    if isinstance(defense, dict) and set(defense) <= {"aggregator", "preaggregators"} and "aggregator" in defense:
        return build_robust_pipeline(defense["aggregator"], defense.get("preaggregators"))
    raise TypeError(
        "defense must be an Aggregator, a RobustPipeline or {'aggregator': spec, 'preaggregators': [specs]}, "
        f"got {defense!r}"
    )


class _Adaptive(UpdateAttack):
    min_honest = 2

    def __init__(self, defense: Any, evals: int, start: float, delta: float, ratio: float) -> None:
        self.defense = _as_defense(defense)
        self.evals = check_int(evals, "evals", self.name, minimum=1)
        self.start = check_float(start, "start", self.name)
        self.delta = check_float(delta, "delta", self.name)
        if self.delta == 0:
            raise ValueError(f"{self.name}: delta must be non-zero")
        self.ratio = check_float(ratio, "ratio", self.name)
        if not 0.5 < self.ratio < 1:
            raise ValueError(f"{self.name}: ratio must be in (0.5, 1), got {ratio}")
        self.last_coefficient: float | None = None

    def vector(self, honest: Tensor, c: float) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not define its Byzantine vector")

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        f = own.shape[0]
        target = honest.mean(0)

        def damage(c: float) -> float:
            byz = repeat_row(self.vector(honest, c), f)
            out = copy.deepcopy(self.defense)(torch.cat([honest, byz]))
            return float(torch.linalg.vector_norm(out - target))

        self.last_coefficient = line_search(damage, self.evals, self.start, self.delta, self.ratio)
        return repeat_row(self.vector(honest, self.last_coefficient), f)


@ATTACKS.register("alie_adaptive")
class AdaptiveALIE(_Adaptive):
    """ALIE ``mu - z * sigma`` with ``z`` tuned against ``defense`` (see module docstring).

    Parameters
    ----------
    defense : Aggregator, RobustPipeline or {"aggregator": spec, "preaggregators": [specs]}
    evals, start, delta, ratio : search budget, first point, first step, step shrink factor in (0.5, 1).
    """

    name = "alie_adaptive"

    def __init__(self, defense: Any, evals: int = 20, start: float = 0.0, delta: float = 1.0, ratio: float = 0.8):
        super().__init__(defense, evals, start, delta, ratio)

    def vector(self, honest: Tensor, c: float) -> Tensor:
        return alie_vector(honest, c)


@ATTACKS.register("ipm_adaptive")
class AdaptiveIPM(_Adaptive):
    """IPM ``-eps * mu`` with ``eps`` tuned against ``defense`` (see module docstring).

    Parameters
    ----------
    defense : Aggregator, RobustPipeline or {"aggregator": spec, "preaggregators": [specs]}
    evals, start, delta, ratio : search budget, first point, first step, step shrink factor in (0.5, 1).
    """

    name = "ipm_adaptive"

    def __init__(self, defense: Any, evals: int = 20, start: float = 0.0, delta: float = 1.0, ratio: float = 0.8):
        super().__init__(defense, evals, start, delta, ratio)

    def vector(self, honest: Tensor, c: float) -> Tensor:
        return honest.mean(0) * (-c)
