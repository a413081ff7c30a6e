"""Majority vote on signs (signSGD with majority vote; Bernstein, Zhao, Azizzadenesheli, Anandkumar, ICLR 2019)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.registries import AGGREGATORS
from speechfl.robustness.tensor_ops import column_blocks, map_column_blocks, scratch
from speechfl.robustness.validation import check_choice

SCALES = ("unit", "median_l1")
CHUNK_ELEMS = 1 << 18


def _vote_block(xp, blk):
    """Vote ``[c]`` of a block ``[n, c]`` and each row's count of agreeing decided coordinates."""
    if xp is np:
        pos, neg = scratch("pos", blk.shape, np.bool_), scratch("neg", blk.shape, np.bool_)
        np.greater(blk, 0, out=pos)
        np.less(blk, 0, out=neg)
        vote = np.sign(pos.view(np.uint8).sum(0, dtype=np.int32) - neg.view(np.uint8).sum(0, dtype=np.int32))
        agree = np.logical_and(pos, vote > 0, out=pos).view(np.uint8).sum(1, dtype=np.int64)
        agree += np.logical_and(neg, vote < 0, out=neg).view(np.uint8).sum(1, dtype=np.int64)
        return vote, agree
    vote = torch.sign((blk > 0).sum(0) - (blk < 0).sum(0))
    return vote, ((torch.sign(blk) * vote) > 0).sum(1)


def majority_vote(updates: Tensor) -> Tuple[Tensor, Tensor]:
    """``sign(sum_i sign(x_i))`` ``[d]`` and, per row, the number of decided coordinates it agreed with."""
    n, d = updates.shape
    vote = torch.empty(d, dtype=updates.dtype, device=updates.device)
    blocks = column_blocks(n, d, CHUNK_ELEMS)
    if updates.device.type != "cpu":
        agree = torch.zeros(n, dtype=torch.float64, device=updates.device)
        for start, stop in blocks:
            vote[start:stop], part = _vote_block(torch, updates[:, start:stop])
            agree += part
        return vote, agree.cpu()
    x_np, vote_np = updates.numpy(), vote.numpy()

    def work(start: int, stop: int) -> np.ndarray:
        vote_np[start:stop], part = _vote_block(np, x_np[:, start:stop])
        return part

    return vote, torch.from_numpy(np.sum(map_column_blocks(blocks, work), axis=0, dtype=np.float64))


def mean_abs(updates: Tensor) -> Tensor:
    """``||x_i||_1 / d`` per row (float64 ``[n]``; one float32 reduction, enough for a scale)."""
    return torch.linalg.vector_norm(updates, ord=1, dim=1).to(device="cpu", dtype=torch.float64) / updates.shape[1]


@AGGREGATORS.register("sign_vote")
class SignVote(Aggregator):
    """Majority vote: ``y_j = s * sign(sum_i sign(x_ij))`` (``sign(0) = 0``); ``weights`` are ignored.

    Meant for the sign compressor: each client sends ``a_i * sign(x_i)`` and the
    server applies the elementwise majority (Bernstein et al. 2019). A coordinate
    with a tied vote is 0. Scale ``s``: ``"unit"`` (1, the paper: the server's step
    size sets the magnitude) or ``"median_l1"`` (the median over clients of
    ``||x_i||_1 / d``, robust to fewer than ``n/2`` inflated scales).

    ``last_weights``: the fraction of decided coordinates on which a row's sign agreed
    with the vote, normalized (uniform if no coordinate was decided).

    Parameters
    ----------
    scale : {"unit", "median_l1"}
    """

    name = "sign_vote"

    def __init__(self, scale: str = "unit") -> None:
        super().__init__()
        self.scale = check_choice(scale, "scale", self.name, SCALES)

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        vote, agree = majority_vote(updates)
        if self.scale == "median_l1":
            vote *= float(torch.quantile(mean_abs(updates), 0.5))
        return vote, agree
