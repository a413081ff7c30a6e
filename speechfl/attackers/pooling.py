"""Utterance-level statistics and feature normalisation for attackers.

Mean+std pooling (the statistics pooling of x-vectors, Snyder et al. 2018)
turns a ``[T, D]`` frame sequence into a ``[2D]`` vector. Normalisation
statistics are always fitted on the attacker's training data only and then
applied unchanged to test data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Tuple

import torch


def mean_std_pool(frames: List[torch.Tensor], eps: float = 1e-5) -> torch.Tensor:
    """``[N, 2D]`` = per utterance ``concat(mean_t x_t, sqrt(var_t x_t + eps))`` (population variance)."""
    if not frames:
        raise ValueError("mean_std_pool needs at least one utterance")
    out = []
    for f in frames:
        f = f.to(torch.float32)
        mu = f.mean(dim=0)
        var = ((f - mu) ** 2).mean(dim=0)
        out.append(torch.cat([mu, torch.sqrt(var + eps)]))
    return torch.stack(out)


@dataclass
class Standardizer:
    """Per-dimension ``(x - mean) / std`` with statistics from training data."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 1e-5) -> "Standardizer":
        if x.dim() != 2 or x.shape[0] == 0:
            raise ValueError(f"Standardizer.fit needs a non-empty [N, D] tensor, got {tuple(x.shape)}")
        return cls(mean=x.mean(dim=0), std=x.std(dim=0, unbiased=False).clamp_min(eps))

    @classmethod
    def fit_frames(cls, frames: List[torch.Tensor], eps: float = 1e-5) -> "Standardizer":
        """Global per-dimension statistics over every frame of every utterance."""
        total = sum(int(f.shape[0]) for f in frames)
        s = sum(f.to(torch.float64).sum(dim=0) for f in frames)
        mean = s / total
        sq = sum(((f.to(torch.float64) - mean) ** 2).sum(dim=0) for f in frames)
        std = torch.sqrt(sq / total).clamp_min(eps)
        return cls(mean=mean.to(torch.float32), std=std.to(torch.float32))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(torch.float32) - self.mean) / self.std


def pad_batch(frames: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad to ``[B, T_max, D]`` and return SpeechBrain relative lengths ``[B]`` in (0, 1]."""
    lengths = torch.tensor([f.shape[0] for f in frames], dtype=torch.float32)
    t_max = int(lengths.max())
    batch = torch.zeros(len(frames), t_max, frames[0].shape[1])
    for i, f in enumerate(frames):
        batch[i, : f.shape[0]] = f
    return batch, lengths / t_max


def random_crops(frames: List[torch.Tensor], crop: int, gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """One random window of ``crop`` frames per utterance (shorter ones are kept whole and padded)."""
    out = []
    for f in frames:
        t = int(f.shape[0])
        if t > crop:
            start = int(torch.randint(0, t - crop + 1, (1,), generator=gen))
            f = f[start : start + crop]
        out.append(f)
    return pad_batch(out)


def length_buckets(frames: List[torch.Tensor], max_frames: int = 20000) -> List[List[int]]:
    """Batches of indices, sorted by length, each holding at most ``max_frames`` padded frames."""
    order = sorted(range(len(frames)), key=lambda i: frames[i].shape[0])
    batches: List[List[int]] = []
    cur: List[int] = []
    for i in order:
        t = int(frames[i].shape[0])
        if cur and t * (len(cur) + 1) > max_frames:
            batches.append(cur)
            cur = []
        cur.append(i)
    if cur:
        batches.append(cur)
    return batches
