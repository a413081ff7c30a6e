"""Adaptive robust clipping, ARC (Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, NeurIPS 2024)."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from speechfl.robustness.preaggregators.base import PreAggregator
from speechfl.robustness.preaggregators.clipping import scale_rows
from speechfl.robustness.registries import PREAGGREGATORS
from speechfl.robustness.tensor_ops import row_sq_norms
from speechfl.robustness.validation import check_int


def arc_scales(norms: Tensor, f: int) -> Tensor:
    """Scales that clip the ``k = floor(2 f (n - f) / n)`` largest norms to the largest remaining norm."""
    n = norms.numel()
    k = (2 * f * (n - f)) // n
    scales = torch.ones_like(norms)
    if k == 0:
        return scales
    order = torch.sort(norms, descending=True, stable=True).indices
    threshold = norms[order[k]]
    clipped = order[:k]
    scales[clipped] = torch.where(
        norms[clipped] > threshold, threshold / norms[clipped].clamp(min=float(threshold)), 1.0
    )
    return scales


@PREAGGREGATORS.register("arc")
class ARC(PreAggregator):
    """ARC: clip the ``k = floor(2 (f/n) (n - f))`` updates of largest norm to the norm of
    the largest remaining one, ``tau = ||x||_(k+1)`` (norms in decreasing order):
    ``y_i = x_i * min(1, tau / ||x_i||)`` for those ``k``, ``y_i = x_i`` otherwise.

    Same rule as ByzFL's ``ARC(f)`` (we compute ``k`` in exact integer arithmetic).
    Needs ``n > f``. ``last_mixing`` is ``diag(scales)``.

    Parameters
    ----------
    f : int
        Assumed number of Byzantine clients.
    """

    name = "arc"

    def __init__(self, f: int) -> None:
        super().__init__()
        self.f = check_int(f, "f", self.name, minimum=0)

    def min_rows(self) -> int:
        return self.f + 1

    def _apply(self, updates: Tensor) -> Tuple[Tensor, Tensor]:
        scales = arc_scales(row_sq_norms(updates).sqrt(), self.f)
        return scale_rows(updates, scales), torch.diag(scales)
