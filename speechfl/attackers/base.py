"""The interface every speaker-attacker family implements, and a seeded training loop.

A family is trained from scratch on the attacker's training utterances
(cross-entropy over the attacker's speakers) and then exposes two views of
unseen utterances: class logits (closed-set identification) and an embedding
(open-set verification, scored by :mod:`speechfl.attackers.verification`).
"""

from __future__ import annotations

import contextlib
from typing import Iterator, List

import torch


class SpeakerAttacker:
    """Base class: ``fit`` then ``logits`` / ``embed``."""

    name = "base"

    def fit(self, frames: List[torch.Tensor], labels: torch.Tensor, n_classes: int, seed: int = 0) -> "SpeakerAttacker":
        raise NotImplementedError(f"{type(self).__name__}.fit is not implemented")

    def logits(self, frames: List[torch.Tensor]) -> torch.Tensor:
        """``[N, n_classes]`` class scores for utterances."""
        raise NotImplementedError(f"{type(self).__name__}.logits is not implemented")

    def embed(self, frames: List[torch.Tensor]) -> torch.Tensor:
        """``[N, E]`` utterance embeddings for verification."""
        raise NotImplementedError(f"{type(self).__name__}.embed is not implemented")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's CPU RNG seeded, restoring the caller's RNG state after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def check_labels(n_items: int, labels: torch.Tensor, n_classes: int) -> None:
    if labels.dim() != 1 or labels.numel() != n_items:
        raise ValueError(f"labels must be [N={n_items}], got shape {tuple(labels.shape)}")
    if labels.dtype != torch.long:
        raise TypeError(f"labels must be int64 class indices, got {labels.dtype}")
    if n_items == 0:
        raise ValueError("cannot train an attacker on zero utterances")
    if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
        raise ValueError(f"labels must lie in [0, {n_classes}), got range [{int(labels.min())}, {int(labels.max())}]")
    if n_classes < 2:
        raise ValueError(f"an attacker needs at least 2 classes, got {n_classes}")


def train_full_batch(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    steps: int,
    lr: float,
    weight_decay: float,
) -> float:
    """Minimise cross-entropy with full-batch Adam (AdamW decay) for ``steps``; returns the final loss."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    model.train()
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    model.eval()
    return float(loss.detach())


def train_lbfgs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, l2: float, max_iter: int = 200) -> float:
    """Minimise ``mean CE + l2 * ||W||^2`` (biases unpenalised) with full-batch L-BFGS; returns the final loss.

    Used for linear models: unlike Adam, whose sign-like steps spread weight
    over every coordinate (its implicit bias is a max-margin solution in the
    L-infinity geometry), L-BFGS on an L2-penalised objective converges to the
    unique ridge-logistic solution, as scikit-learn's ``LogisticRegression``.
    """
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    weights = [p for n, p in model.named_parameters() if not n.endswith("bias")]

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y) + l2 * sum((w**2).sum() for w in weights)
        loss.backward()
        return loss

    model.train()
    loss = opt.step(closure)
    model.eval()
    return float(loss.detach())
