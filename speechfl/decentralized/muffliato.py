"""Local-noise gossip (Muffliato; Cyffers, Even, Bellet & Massoulie, NeurIPS 2022) and its pairwise network DP.

Mechanism. Every round each honest node clips its local update to ``C`` and adds Gaussian
noise before sending anything::

    m_u = x_u + clip(delta_u, C) + N(0, (sigma C)^2 I)

then gossips as usual (one mixing step per round). Noise is drawn from a generator seeded by
``(seed, round, node)``, so runs are reproducible and both engines add the same noise.

Accounting (pairwise network Renyi DP). Node ``v`` sees only its neighbours' messages. The
noisy contribution node ``u`` injects at round ``r`` reaches neighbour ``w`` of ``v`` after ``k``
further gossip steps with weight ``(W^k)_{wu}``, inside a message whose injected noise has
variance ``(sigma C)^2 ||(W^k)_w||^2``. Following the structure of Cyffers et al.'s Theorem 1
(one noisy injection followed by gossip, observed by ``v`` through its neighbourhood), the
Renyi divergence of order ``alpha`` that ``v``'s view leaks about ``u``'s data is bounded by::

    eps_{u->v}(alpha) = alpha / (2 sigma^2) * sum_{r=1}^{T} sum_{k=0}^{T-r} sum_{w in N(v) + v}
                         (W^k)_{wu}^2 / ||(W^k)_w||^2

(sensitivity ``C`` cancels against the noise scale ``sigma C``), summed over the ``T`` rounds by
Renyi composition. Terms decay with the hop distance between ``u`` and ``v``: a direct neighbour
pays the local-DP price ``alpha / (2 sigma^2)`` per round, distant nodes much less.

What this guarantees: against one honest-but-curious node ``v`` that sees exactly the messages
its neighbours send it, ``u``'s whole local dataset (user level: the clipped update is all of it)
is protected at the stated Renyi level, for a public, fixed mixing matrix. What it does NOT
guarantee: nothing against colluding nodes (pool their views: use the sum of their bounds at
best), against an observer of every link (that is local DP: ``alpha T / (2 sigma^2)`` per node),
against a Byzantine node that deviates from the protocol, or for the final model released to
everyone (it is post-processing of all messages: no better than the worst pair). Our bound
follows the paper's Theorem 1 structure; it is not a machine-checked proof and assumes the
noise of different rounds is independent (it is: fresh seeds per round).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from speechfl.decentralized.neighbourhood import clip
from speechfl.federated.client import client_seed


@dataclass(frozen=True)
class LocalNoise:
    """Muffliato's local noise: clip the local update to ``clip`` and add ``N(0, (noise_multiplier * clip)^2)``."""

    clip: float
    noise_multiplier: float
    alpha: float = 2.0  # Renyi order reported in results.json

    def __post_init__(self):
        if not self.clip > 0 or not self.noise_multiplier > 0:
            raise ValueError(f"gossip.noise needs clip > 0 and noise_multiplier > 0, got {self}")
        if not self.alpha > 1:
            raise ValueError(f"gossip.noise alpha (Renyi order) must be > 1, got {self.alpha}")

    def apply(self, model: torch.Tensor, delta: torch.Tensor, seed: int, round_: int, node: str) -> torch.Tensor:
        """``model + clip(delta, C) + N(0, (sigma C)^2)`` with a generator seeded by (seed, round, node)."""
        gen = torch.Generator().manual_seed(client_seed(seed, round_, f"{node}|muffliato"))
        noise = torch.randn(delta.numel(), generator=gen, dtype=torch.float32) * (self.noise_multiplier * self.clip)
        return model + clip(delta, self.clip) + noise


def pairwise_rdp(w: torch.Tensor, noise_multiplier: float, rounds: int, alpha: float = 2.0) -> torch.Tensor:
    """``[n, n]`` matrix ``eps[u, v]``: Renyi-DP leak from node ``u`` to observer ``v`` (see module doc).

    The diagonal is meaningless (a node knows its own data) and set to ``inf``.
    """
    n = w.shape[0]
    w = w.to(torch.float64)
    adj = (w > 0).to(torch.float64)  # v's closed neighbourhood (W_vv > 0 for Metropolis-Hastings)
    per_k = []  # per_k[k][u, v] = sum_{w in N(v)+v} (W^k)_{wu}^2 / ||(W^k)_w||^2
    power = torch.eye(n, dtype=torch.float64)
    for _ in range(rounds):
        ratio = power.pow(2) / power.pow(2).sum(1, keepdim=True)  # ratio[w, u]
        per_k.append(ratio.T @ adj)  # [u, v] = sum_w ratio[w, u] * adj[w, v]
        power = power @ w
    cum = torch.cumsum(torch.stack(per_k), 0)  # cum[m] = sum_{k<=m}
    total = cum.sum(0)  # sum over injections r = 1..T of sum_{k=0}^{T-r}
    eps = alpha / (2.0 * noise_multiplier ** 2) * total
    eps.fill_diagonal_(float("inf"))
    return eps
