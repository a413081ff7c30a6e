"""Fairness-aware server steps: they weigh each client's update by what the client reports.

A plain server optimizer sees only the aggregated delta. The rules here (q-FedAvg,
AFL / group DRO, group reweighting) need each accepted client's update, sample count
and reported loss at the global model (``metadata['global_loss']``, see
:class:`speechfl.federated.client.ClientConfig` ``report_global_loss``), so they
replace the aggregator: :meth:`ClientAwareStep.combine` returns the aggregated delta
and each client's contribution, and :meth:`step` applies ``x <- x + lr * delta``.

Because they read individual updates and self-reported losses, they cannot run under
secure aggregation, user-level DP, robust aggregators or malicious clients; the setup
refuses those (:mod:`speechfl.fairness.compat`).
"""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple

import torch
from torch import Tensor

from speechfl.federated.server_opt import ServerOptimizer

LOSS_KEY = "global_loss"


def reported_losses(client_ids: Sequence[str], metadata: Sequence[Dict]) -> Tensor:
    """The clients' losses at the global model as float64 ``[n]``; missing or bad values raise ValueError."""
    losses = []
    for cid, meta in zip(client_ids, metadata):
        value = meta.get(LOSS_KEY)
        if value is None:
            raise ValueError(f"client {cid} reported no {LOSS_KEY!r}: fairness-aware server steps need "
                             "client.report_global_loss (the setup sets it)")
        value = float(value)
        if not value >= 0 or value == float("inf"):
            raise ValueError(f"client {cid} reported {LOSS_KEY}={value}: must be finite and >= 0")
        losses.append(value)
    return torch.tensor(losses, dtype=torch.float64)


class ClientAwareStep(ServerOptimizer):
    """Base of the fairness-aware rules. ``client_aware`` tells the server to call :meth:`combine`."""

    name = "client_aware"
    client_aware = True

    def __init__(self, lr: float = 1.0):
        self.lr = float(lr)
        if not self.lr > 0:
            raise ValueError(f"{self.name}: lr must be > 0, got {lr}")

    def combine(self, updates: Tensor, weights: Tensor, client_ids: List[str],
                metadata: List[Dict]) -> Tuple[Tensor, Tensor]:
        """``[n, d]`` updates, ``[n]`` sample counts -> (aggregated delta ``[d]``, coefficients ``[n]``)."""
        raise NotImplementedError

    def step(self, x, delta):
        return x + self.lr * delta
