"""Bucketing (Karimireddy, He, Jaggi, ICLR 2022): average random groups of ``s`` updates."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from speechfl.robustness.preaggregators.base import PreAggregator
from speechfl.robustness.registries import PREAGGREGATORS
from speechfl.robustness.validation import check_int


def bucket_membership(perm: Tensor, s: int) -> Tensor:
    """0/1 ``[ceil(n/s), n]``: bucket ``b`` holds ``perm[b*s : (b+1)*s]``."""
    n = perm.numel()
    n_buckets = -(-n // s)
    member = torch.zeros(n_buckets, n, dtype=torch.float64)
    member[torch.arange(n) // s, perm] = 1.0
    return member


@PREAGGREGATORS.register("bucketing")
class Bucketing(PreAggregator):
    """Bucketing: shuffle the ``n`` updates, split them into ``ceil(n/s)`` buckets of ``s``
    (the last one smaller when ``s`` does not divide ``n``) and output each bucket's mean.

    ``y_b = (1/|B_b|) sum_{i in B_b} x_{pi(i)}`` with ``pi`` a uniform permutation drawn
    from the object's own generator (seeded by ``seed``; its state is in
    ``state_dict`` so a resumed run draws the same permutations). Matches ByzFL's
    ``Bucketing(s)`` up to the permutation. ``map_weights`` sums the members' counts.

    Parameters
    ----------
    s : int
        Bucket size (>= 1).
    seed : int
        Seed of the permutation generator.
    """

    name = "bucketing"

    def __init__(self, s: int = 2, seed: int = 0) -> None:
        super().__init__()
        self.s = check_int(s, "s", self.name, minimum=1)
        self.seed = check_int(seed, "seed", self.name, minimum=0)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.last_membership: Tensor | None = None

    def min_inputs(self, outputs: int) -> int:
        return self.s * (outputs - 1) + 1  # ceil(n / s) >= outputs

    def _apply(self, updates: Tensor) -> Tuple[Tensor, Tensor]:
        n = updates.shape[0]
        perm = torch.randperm(n, generator=self.generator)
        member = bucket_membership(perm, self.s)
        sizes = member.sum(1)
        self.last_membership = member
        bucket_of = torch.empty(n, dtype=torch.int64)
        bucket_of[perm] = torch.arange(n) // self.s
        out = torch.zeros(len(sizes), updates.shape[1], dtype=updates.dtype, device=updates.device)
        out.index_add_(0, bucket_of.to(updates.device), updates)  # one pass over the rows
        out /= sizes.to(dtype=updates.dtype, device=updates.device)[:, None]
        return out, member / sizes[:, None]

    def map_weights(self, weights: Tensor) -> Tensor:
        if self.last_membership is None:
            raise RuntimeError(f"{self.name}: map_weights called before the first call")
        return self.last_membership.to(weights.dtype) @ weights

    def state_dict(self) -> dict:
        return {"generator_state": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"generator_state"}:
            raise ValueError(f"{self.name}: state must have exactly the key 'generator_state', got {sorted(state)}")
        self.generator.set_state(state["generator_state"])
