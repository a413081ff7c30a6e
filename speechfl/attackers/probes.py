"""Attackers on mean+std pooled utterance statistics: a linear probe and an MLP.

Both standardise the pooled ``[2D]`` statistics with training-set moments and
are trained full-batch on cross-entropy over the attacker's speakers (the
linear probe with L-BFGS and an L2 penalty, the MLP with AdamW). Training data are augmented with pooled statistics of random
sub-segments (30-100% of each utterance), so the attacker sees the
variability of short test utterances.

* ``linear``: multinomial logistic regression ``softmax(W z + b)``, L2-penalised. Its
  verification embedding is the standardised pooled vector ``z`` itself; the
  verification back-end then learns the linear projection (LDA on the
  attacker's speakers), i.e. the classic linear speaker-embedding attacker.
* ``mlp``: ``z -> 256 -> ReLU -> dropout -> 128 (embedding) -> ReLU -> dropout -> C``,
  the embedding being the bottleneck before its ReLU (as d-vector/x-vector
  style attackers use the penultimate layer; Variani et al. 2014).
"""

from __future__ import annotations

from typing import List

import torch

from speechfl.attackers.base import SpeakerAttacker, check_labels, seeded, train_full_batch, train_lbfgs
from speechfl.attackers.pooling import Standardizer, mean_std_pool


def augmented_pool(
    frames: List[torch.Tensor], labels: torch.Tensor, n_crops: int, gen: torch.Generator, min_frac: float = 0.3
):
    """Pooled stats of every utterance plus ``n_crops`` random sub-segments of each; labels repeated."""
    pooled = [mean_std_pool(frames)]
    ys = [labels]
    for _ in range(n_crops):
        crops = []
        for f in frames:
            t = int(f.shape[0])
            frac = min_frac + (1.0 - min_frac) * float(torch.rand((), generator=gen))
            length = max(2, min(t, int(round(frac * t))))
            start = int(torch.randint(0, t - length + 1, (1,), generator=gen))
            crops.append(f[start : start + length])
        pooled.append(mean_std_pool(crops))
        ys.append(labels)
    return torch.cat(pooled), torch.cat(ys)


class _PooledProbe(SpeakerAttacker):
    def __init__(self, *, n_crops: int):
        if n_crops < 0:
            raise ValueError(f"n_crops must be >= 0, got {n_crops}")
        self.n_crops = n_crops
        self.model: torch.nn.Module | None = None
        self.norm: Standardizer | None = None

    def _build(self, d_in: int, n_classes: int) -> torch.nn.Module:
        raise NotImplementedError(f"{type(self).__name__} does not define its model")

    def _train(self, x: torch.Tensor, y: torch.Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define its training")

    def fit(self, frames, labels, n_classes, seed=0):
        check_labels(len(frames), labels, n_classes)
        gen = torch.Generator().manual_seed(seed)
        x, y = augmented_pool(frames, labels, self.n_crops, gen)
        self.norm = Standardizer.fit(x)
        with seeded(seed):
            self.model = self._build(x.shape[1], n_classes)
            self._train(self.norm(x), y)
        return self

    def _z(self, frames) -> torch.Tensor:
        if self.model is None:
            raise RuntimeError(f"{self.name} attacker used before fit()")
        return self.norm(mean_std_pool(frames))

    @torch.no_grad()
    def logits(self, frames):
        return self.model(self._z(frames))


class LinearProbe(_PooledProbe):
    """L2-penalised multinomial logistic regression (L-BFGS) on standardised mean+std statistics."""

    name = "linear"

    def __init__(self, *, l2: float = 1e-4, max_iter: int = 200, n_crops: int = 3):
        super().__init__(n_crops=n_crops)
        if l2 < 0 or max_iter < 1:
            raise ValueError(f"bad linear probe settings: l2={l2}, max_iter={max_iter}")
        self.l2, self.max_iter = l2, max_iter

    def _build(self, d_in, n_classes):
        return torch.nn.Linear(d_in, n_classes)

    def _train(self, x, y):
        train_lbfgs(self.model, x, y, l2=self.l2, max_iter=self.max_iter)

    @torch.no_grad()
    def embed(self, frames):
        return self._z(frames)


class MlpProbe(_PooledProbe):
    """Two hidden layers on standardised mean+std statistics; the bottleneck is the embedding."""

    name = "mlp"

    def __init__(
        self,
        *,
        hidden: int = 256,
        bottleneck: int = 128,
        dropout: float = 0.3,
        steps: int = 200,
        lr: float = 3e-3,
        weight_decay: float = 1e-2,
        n_crops: int = 2,
    ):
        super().__init__(n_crops=n_crops)
        if hidden < 1 or bottleneck < 1 or not 0.0 <= dropout < 1.0 or steps < 1 or lr <= 0 or weight_decay < 0:
            raise ValueError(
                f"bad MLP settings: hidden={hidden}, bottleneck={bottleneck}, dropout={dropout}, steps={steps}, "
                f"lr={lr}, weight_decay={weight_decay}"
            )
        self.hidden, self.bottleneck, self.dropout = hidden, bottleneck, dropout
        self.steps, self.lr, self.weight_decay = steps, lr, weight_decay

    def _train(self, x, y):
        train_full_batch(self.model, x, y, steps=self.steps, lr=self.lr, weight_decay=self.weight_decay)

    def _build(self, d_in, n_classes):
        self.trunk = torch.nn.Sequential(
            torch.nn.Linear(d_in, self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, self.bottleneck),
        )
        return torch.nn.Sequential(self.trunk, torch.nn.ReLU(), torch.nn.Dropout(self.dropout), torch.nn.Linear(self.bottleneck, n_classes))

    @torch.no_grad()
    def embed(self, frames):
        self.model.eval()
        return self.trunk(self._z(frames))
