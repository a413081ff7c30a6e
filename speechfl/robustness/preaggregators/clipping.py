"""Static norm clipping of every update to a fixed radius."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from speechfl.robustness.preaggregators.base import PreAggregator
from speechfl.robustness.registries import PREAGGREGATORS
from speechfl.robustness.tensor_ops import row_sq_norms
from speechfl.robustness.validation import check_float


def scale_rows(updates: Tensor, scales: Tensor) -> Tensor:
    """``diag(scales) @ updates``; returns ``updates`` itself when every scale is 1."""
    if bool((scales == 1.0).all()):
        return updates
    return updates * scales.to(dtype=updates.dtype, device=updates.device)[:, None]


def clip_scales(norms: Tensor, tau: float) -> Tensor:
    """``min(1, tau / ||x_i||)`` (float64), 1 for zero rows."""
    return torch.where(norms > tau, tau / norms.clamp(min=tau), torch.ones_like(norms))


@PREAGGREGATORS.register("clipping")
class Clipping(PreAggregator):
    """Static clipping: ``y_i = x_i * min(1, tau / ||x_i||_2)``.

    Same rule as ByzFL's ``Clipping(c=tau)`` (which clips in place; we return a new
    tensor, or the input itself when nothing is clipped). ``last_mixing`` is
    ``diag(scales)``.

    Parameters
    ----------
    tau : float
        Clipping radius (> 0), in the units of the updates.
    """

    name = "clipping"

    def __init__(self, tau: float) -> None:
        super().__init__()
        self.tau = check_float(tau, "tau", self.name, positive=True)

    def _apply(self, updates: Tensor) -> Tuple[Tensor, Tensor]:
        scales = clip_scales(row_sq_norms(updates).sqrt(), self.tau)
        return scale_rows(updates, scales), torch.diag(scales)
