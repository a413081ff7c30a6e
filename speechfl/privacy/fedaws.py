"""A federated N-way speaker adversary with real negatives: class embeddings and FedAwS spread-out.

With one speaker per client, a local adversary head sees one class only and solves it from its
bias (issue 19: local accuracy 0.95 from round 1), so the reversed gradient carries no speaker
information. :class:`ClassEmbeddingHead` removes that shortcut: an utterance embedding
``e = A pool(z)`` is scored against one embedding per training speaker, without bias::

    logits_c = <e, w_c>,   L = CE(logits, y)

The softmax denominator runs over every speaker's ``w_c``, so the other speakers' (averaged)
class weights are the negatives a one-speaker client lacks. Two modes:

``negatives: softmax``
    every row is trained locally (rows of absent classes are pushed away from this client's
    embeddings). With one local SGD step, FedAvg weighted by samples equals the centralized step on
    the pooled batch exactly (the gradient of a mean CE is linear in the batch).
``negatives: own_class``
    FedAwS (Yu et al., "Federated Learning with Only Positive Labels", ICML 2020): a client updates
    only the rows of the classes in its batch; the other rows are fixed negatives
    (``W_eff = m * W + (1 - m) * sg(W)``, ``m_c = 1`` iff class c is in the batch). Without the
    negative push the rows would collapse together, so the server applies the spread-out
    regulariser after aggregation (:class:`SpreadOutServer`)::

        R(W) = sum_{c != c'} max(0, nu - ||w_c - w_c'||)^2,   W <- W - eta * grad R(W)   (``steps`` times)

What it leaks to the server: the class rows are model parameters, so the server (and anyone who
sees the model) holds ``w_c``, an embedding of speaker c's voice in the adversary's space. Under
``own_class`` a client's update changes only its own row: the update names the client's speaker
embedding outright (a linkage/identity risk the update attackers in speechfl.attackers measure).
Under ``softmax`` every row moves, but the own row moves most. Use the head with secure aggregation
or not at all where speaker embeddings must not reach the server.
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from speechfl.models.adversary import HEADS, AdversaryHead

NEGATIVES = ("softmax", "own_class")


def masked_class_weights(weight: torch.Tensor, labels: Optional[torch.Tensor]) -> torch.Tensor:
    """``m * W + (1 - m) * sg(W)`` with ``m_c = 1`` iff class ``c`` occurs in ``labels``: same values as W,
    gradient only into the rows of the batch's classes. Without labels (inference) ``W`` itself."""
    if labels is None:
        return weight
    m = torch.zeros(weight.shape[0], 1, dtype=weight.dtype, device=weight.device)
    m[labels.unique()] = 1.0
    return m * weight + (1.0 - m) * weight.detach()


class ClassEmbeddingHead(AdversaryHead):
    """Pooling -> linear utterance embedding ``e`` (``embed_dim``) -> ``<e, w_c>`` for every speaker c.

    Parameters
    ----------
    input_dim, n_classes : int
    embed_dim : int
    pooling : {"mean", "meanstd", "attentive"}
    negatives : {"softmax", "own_class"}
    """

    def __init__(self, input_dim: int, n_classes: int, *, embed_dim: int = 64, pooling: str = "meanstd",
                 negatives: str = "own_class"):
        if negatives not in NEGATIVES:
            raise ValueError(f"unknown negatives {negatives!r}; valid: {', '.join(NEGATIVES)}")
        if n_classes < 2 or embed_dim < 2:
            raise ValueError(f"need n_classes >= 2 and embed_dim >= 2, got {n_classes}, {embed_dim}")
        super().__init__(input_dim, embed_dim, pooling=pooling, hidden=())  # classifier: pooled -> e
        self.negatives = negatives
        self.classes = nn.Parameter(torch.zeros(n_classes, embed_dim))

    def logits(self, pooled: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        weight = self.classes if self.negatives == "softmax" else masked_class_weights(self.classes, labels)
        return self.classifier(pooled) @ weight.t()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """The embedding layer as :meth:`AdversaryHead.reset_parameters`; class rows ``N(0, 1/embed_dim)``."""
        super().reset_parameters(generator)
        rows = torch.randn(self.classes.shape, generator=generator) / math.sqrt(self.classes.shape[1])
        self.classes.copy_(rows)


@HEADS.register("class_embedding")
def class_embedding_head(input_dim: int, n_classes: int, embed_dim: int = 64, pooling: str = "meanstd",
                         negatives: str = "own_class") -> ClassEmbeddingHead:
    return ClassEmbeddingHead(input_dim, n_classes, embed_dim=int(embed_dim), pooling=pooling, negatives=negatives)


def spread_out_penalty(weight: torch.Tensor, margin: float) -> torch.Tensor:
    """FedAwS spread-out regulariser ``sum_{c != c'} max(0, nu - ||w_c - w_c'||)^2`` (ordered pairs)."""
    if weight.dim() != 2:
        raise ValueError(f"class weights must be [C, E], got shape {tuple(weight.shape)}")
    diff = weight.unsqueeze(0) - weight.unsqueeze(1)
    off = ~torch.eye(weight.shape[0], dtype=torch.bool, device=weight.device)
    # sqrt of a clamped square: finite gradient for coincident rows (the diagonal is excluded anyway)
    dist = diff.pow(2).sum(-1).clamp(min=1e-12).sqrt()
    return (margin - dist[off]).clamp(min=0).pow(2).sum()


def spread_out_step(weight: torch.Tensor, *, margin: float, lr: float, steps: int = 1) -> torch.Tensor:
    """``steps`` gradient steps ``W <- W - lr * grad R(W)`` on :func:`spread_out_penalty` (a new tensor)."""
    w = weight.detach().clone()
    for _ in range(steps):
        w.requires_grad_(True)
        (grad,) = torch.autograd.grad(spread_out_penalty(w, margin), w)
        w = (w - lr * grad).detach()
    return w


def class_weight_slices(names: Sequence[str], shapes: Sequence[Tuple[int, ...]]) -> List[Tuple[int, Tuple[int, int]]]:
    """``(offset, (C, E))`` in the flat parameter vector of every ``adversary.heads.<k>.classes`` row matrix."""
    out, offset = [], 0
    for name, shape in zip(names, shapes):
        n = int(math.prod(shape))
        if name.startswith("adversary.heads.") and name.endswith(".classes"):
            out.append((offset, (int(shape[0]), int(shape[1]))))
        offset += n
    return out


class SpreadOutServer:
    """Wraps a server optimizer: its step, then FedAwS spread-out steps on every class-row slice of ``x``.

    Composition: only plain server optimizers (no SCAFFOLD control variates, no fairness-aware
    combination): :func:`check_spread_out_compatible` refuses the rest at setup.
    """

    def __init__(self, inner, slices: List[Tuple[int, Tuple[int, int]]], *, margin: float, lr: float, steps: int = 1):
        if not slices:
            raise ValueError("spread_out needs a class_embedding adversary head (no class rows in the model)")
        if not (margin > 0 and lr > 0 and isinstance(steps, int) and steps >= 1):
            raise ValueError(f"spread_out needs margin > 0, lr > 0, steps >= 1; got {margin}, {lr}, {steps}")
        self.inner, self.slices = inner, slices
        self.margin, self.lr, self.steps = float(margin), float(lr), steps
        self.name = f"{getattr(inner, 'name', 'server')}+spread_out"
        self.client_aware = False
        self.control_variates = False

    def step(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        x = self.inner.step(x, delta).clone()
        for offset, (c, e) in self.slices:
            w = x[offset:offset + c * e].view(c, e)
            x[offset:offset + c * e] = spread_out_step(w, margin=self.margin, lr=self.lr, steps=self.steps).reshape(-1)
        return x

    def state_dict(self) -> Dict:
        return self.inner.state_dict()

    def load_state_dict(self, state: Dict) -> None:
        self.inner.load_state_dict(state)


def check_spread_out_compatible(server_optimizer, engine: str) -> None:
    """Refuse spread-out where it cannot be applied as documented."""
    if engine not in ("inprocess", "centralized"):
        raise ValueError(f"adversary spread_out is a server step; engine {engine!r} has no such step here "
                         "(inprocess and centralized only)")
    if getattr(server_optimizer, "client_aware", False) or hasattr(server_optimizer, "configure"):
        raise ValueError(f"adversary spread_out wraps a plain server optimizer; not combined with "
                         f"{getattr(server_optimizer, 'name', type(server_optimizer).__name__)!r}")
