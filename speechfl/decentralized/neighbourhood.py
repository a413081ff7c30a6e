"""What a node does with its neighbours' models: plain gossip, self-centred clipping, robust rules.

All three take the node's own (half-step) model ``x_i [d]``, its neighbours' models as a
mapping ``j -> m_j [d]`` and the node's row of the mixing matrix, and return the node's next
model. Neighbours are visited in increasing index order so the float sums are the same in
every engine (in-process and torch.distributed give bitwise equal models).

- :func:`gossip_average` (D-PSGD, Lian et al. 2017): ``x_i' = sum_{j in N_i + i} W_ij m_j``.
- :func:`clipped_gossip` (self-centred clipping, He, Karimireddy & Jaggi 2022, "Byzantine-robust
  decentralized learning via ClippedGossip", Alg. 1)::

      x_i' = x_i + sum_{j in N_i} W_ij CLIP(m_j - x_i, tau_i),   CLIP(z, tau) = min(1, tau / ||z||) z

  With ``tau=None`` the radius follows the authors' code (``SelfCenteredClipping`` in
  epfml/byzantine-robust-decentralized-optimizer): ``tau_i`` is the second-largest distance
  ``||m_j - x_i||`` among the neighbours (the only distance when there is one neighbour), so
  the farthest neighbour is always clipped down to the runner-up. ``farthest: b`` clips the ``b``
  farthest down to the ``(b+1)``-th (for ``b`` expected Byzantine neighbours).
- :func:`robust_neighbourhood`: any of our robust pipelines (median, trimmed mean, Krum, ...)
  applied to the rows ``[x_i, m_j for j in N_i]`` (unweighted: these rules ignore ``W``).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch


def gossip_average(i: int, own: torch.Tensor, received: Dict[int, torch.Tensor], row: torch.Tensor) -> torch.Tensor:
    """``sum_j W_ij m_j`` over ``j in received + {i}``; a missing neighbour's weight goes to ``i``."""
    weights = {j: float(row[j]) for j in received}
    w_self = 1.0 - sum(weights.values())
    out = torch.zeros_like(own)
    for j in sorted([*received, i]):
        out.add_(own if j == i else received[j], alpha=w_self if j == i else weights[j])
    return out


def clipping_radius(own: torch.Tensor, received: Dict[int, torch.Tensor], farthest: int = 1) -> float:
    """The ``(farthest + 1)``-th largest neighbour distance, so the ``farthest`` farthest neighbours are
    clipped down to it. ``farthest=1`` is He et al.'s rule (the second-largest; the only distance with
    one neighbour); with ``farthest`` at or above the degree every neighbour is clipped to the nearest."""
    if farthest < 1:
        raise ValueError(f"clipping: farthest must be >= 1, got {farthest}")
    dists = sorted(float((received[j] - own).norm()) for j in sorted(received))
    if not dists:
        return 0.0
    return dists[-(farthest + 1)] if len(dists) > farthest else dists[0]


def clip(z: torch.Tensor, tau: float) -> torch.Tensor:
    """``min(1, tau / ||z||) z`` (zero stays zero)."""
    norm = float(z.norm())
    if norm <= tau or norm == 0.0:
        return z
    return z * (tau / norm)


def clipped_gossip(i: int, own: torch.Tensor, received: Dict[int, torch.Tensor], row: torch.Tensor,
                   tau: Optional[float] = None, farthest: int = 1) -> torch.Tensor:
    """Self-centred clipping: ``x_i + sum_j W_ij CLIP(m_j - x_i, tau_i)``; ``tau=None`` uses
    :func:`clipping_radius` (its ``farthest`` neighbours clipped)."""
    radius = clipping_radius(own, received, farthest) if tau is None else float(tau)
    if radius < 0:
        raise ValueError(f"clipping radius must be >= 0, got {radius}")
    out = own.clone()
    for j in sorted(received):
        out.add_(clip(received[j] - own, radius), alpha=float(row[j]))
    return out


def robust_neighbourhood(i: int, own: torch.Tensor, received: Dict[int, torch.Tensor], pipeline) -> torch.Tensor:
    """``pipeline([x_i, m_j for j in sorted N_i])``: a robust rule over the node's closed neighbourhood."""
    rows = torch.stack([own] + [received[j] for j in sorted(received)])
    return pipeline(rows)
