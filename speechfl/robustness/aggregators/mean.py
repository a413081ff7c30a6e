"""Plain and sample-weighted averaging (FedAvg; McMahan et al., AISTATS 2017).

Not robust: a single client can move the mean arbitrarily far. These are the
only rules that secure aggregation can compute (they need only the sum).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import weighted_row_sum


@AGGREGATORS.register("mean")
class Mean(Aggregator):
    """Unweighted mean ``(1/n) sum_i x_i``; ``weights`` are ignored.

    ``last_weights`` is ``1/n`` for every row.
    """

    name = "mean"
    requires_individual_updates = False

    def __init__(self) -> None:
        super().__init__()

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        n = updates.shape[0]
        coef = torch.full((n,), 1.0 / n, dtype=torch.float64)
        return weighted_row_sum(updates, coef), coef


@AGGREGATORS.register("weighted_mean")
class WeightedMean(Aggregator):
    """Sample-weighted mean ``sum_i w_i x_i / sum_i w_i`` (FedAvg).

    ``weights`` (the clients' sample counts) are required: calling without them
    raises ``ValueError``. ``last_weights`` is ``w / sum(w)``.
    """

    name = "weighted_mean"
    requires_individual_updates = False
    uses_weights = True

    def __init__(self) -> None:
        super().__init__()

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        if weights is None:
            raise ValueError("weighted_mean: weights (sample counts [n]) are required")
        coef = weights / weights.sum()
        return weighted_row_sum(updates, coef), coef
