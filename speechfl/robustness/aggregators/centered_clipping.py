"""Centered clipping (Karimireddy, He, Jaggi, ICML 2021), with its center kept across rounds."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import sq_dists_to_point, weighted_row_sum
from speechfl.robustness.validation import check_float, check_int


def centered_clip(updates: Tensor, center: Optional[Tensor], tau: float, iters: int) -> Tuple[Tensor, Tensor]:
    """Run ``iters`` centered-clipping steps from ``center`` (None: the origin); see :class:`CenteredClipping`.

    Returns the new center ``[d]`` and the last step's clipping factors ``c`` (float64 ``[n]``).
    """
    n = updates.shape[0]
    v = center
    factors = torch.ones(n, dtype=torch.float64)
    for _ in range(iters):
        dist = sq_dists_to_point(updates, v).sqrt()
        factors = torch.where(dist > tau, tau / dist.clamp(min=tau), torch.ones_like(dist))
        # v + (1/n) sum_i c_i (x_i - v) = (1 - sum_i c_i / n) v + (1/n) sum_i c_i x_i
        step = weighted_row_sum(updates, factors / n)
        v = step if v is None else step + v * (1.0 - float(factors.sum()) / n)
    return v, factors


@AGGREGATORS.register("centered_clipping")
class CenteredClipping(Aggregator):
    """Centered clipping; ``weights`` are ignored. Stateful: the center persists across calls.

    With ``v_0`` = the previous call's output (zeros at the first call)::

        v_{l+1} = v_l + (1/n) sum_i (x_i - v_l) * min(1, tau / ||x_i - v_l||),  l = 0..L-1

    and the output is ``v_L`` (Karimireddy et al. 2021, Algorithm 2; ByzFL's
    ``CenteredClipping(L, tau)`` is the same rule). A Byzantine update moves the
    center by at most ``tau / n`` per step, whatever its size.

    ``last_weights``: the last step's clipping factors ``min(1, tau / ||x_i - v||)``,
    normalized. ``state_dict()`` holds ``{"center": Tensor [d] or None}``; save it in
    the checkpoint to resume with the same center.

    Parameters
    ----------
    tau : float
        Clipping radius (> 0), in the units of the updates (no universal default).
    iters : int
        Number of clipping steps ``L`` (>= 1; the paper uses 1).
    """

    name = "centered_clipping"
    stateful = True

    def __init__(self, tau: float, iters: int = 1) -> None:
        super().__init__()
        self.tau = check_float(tau, "tau", self.name, positive=True)
        self.iters = check_int(iters, "iters", self.name, minimum=1)
        self.center: Optional[Tensor] = None

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        d = updates.shape[1]
        if self.center is None:
            center = None  # the origin
        elif self.center.numel() != d:
            raise ValueError(f"{self.name}: stored center has d = {self.center.numel()}, updates have d = {d}")
        else:
            center = self.center.to(dtype=updates.dtype, device=updates.device)
        out, factors = centered_clip(updates, center, self.tau, self.iters)
        self.center = out.clone()
        return out, factors

    def state_dict(self) -> dict:
        return {"center": None if self.center is None else self.center.clone()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"center"}:
            raise ValueError(f"{self.name}: state must have exactly the key 'center', got {sorted(state)}")
        center = state["center"]
        if center is not None and (not isinstance(center, Tensor) or center.dim() != 1):
            raise ValueError(f"{self.name}: state['center'] must be a 1-D tensor or None")
        self.center = None if center is None else center.clone()
