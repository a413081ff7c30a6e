"""The dissensus attack (He, Karimireddy & Jaggi 2022, "Byzantine-robust decentralized learning via
ClippedGossip", Sec. 4) and the forging of Byzantine gossip messages.

In gossip a Byzantine node sends each honest neighbour ``i`` its own message, crafted against
``i``'s model. The dissensus attack cancels ``i``'s pull towards its honest neighbours::

    m_b = x_i - eps * sum_{j honest in N_i} W_ij (x_j - x_i) / sum_{b' Byzantine in N_i} W_ib'

so with ``eps = 1`` plain gossip leaves ``x_i`` where it was (no consensus), and with ``eps > 1``
pushes it away. Registered as update attack ``dissensus`` too: with a server and equal weights
the formula reads ``y_b = -eps * sum(honest) / f`` (the receiver is the global model, every
weight ``1/n``), the star-topology special case.

Any other registered update attack (sign_flip, alie, ipm, ...) is applied to the *differences
seen by the receiver*: honest rows ``x_j - x_i`` for ``i``'s honest neighbours, the Byzantine
rows ``x_b - x_i`` (its honestly trained model), and the forged differences are sent as
``x_i + y_b``. This is how the ClippedGossip authors' code adapts ALIE and IPM (statistics of
the target's honest neighbourhood).
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor

from speechfl.robustness.attacks.base import UpdateAttack
from speechfl.robustness.registries import ATTACKS
from speechfl.robustness.validation import check_float


def dissensus_message(own: Tensor, honest: Tensor, honest_weights: Tensor, byzantine_weight: float,
                      eps: float = 1.0) -> Tensor:
    """``x_i - eps * sum_j W_ij (x_j - x_i) / sum_b W_ib`` for receiver model ``own`` and honest rows ``honest``."""
    if byzantine_weight <= 0:
        raise ValueError("dissensus: the receiver gives no weight to Byzantine neighbours")
    pull = torch.zeros_like(own)
    for w, x in zip(honest_weights.tolist(), honest):
        pull.add_(x - own, alpha=float(w))
    return own - pull * (float(eps) / float(byzantine_weight))


@ATTACKS.register("dissensus")
class Dissensus(UpdateAttack):
    """Dissensus (He et al. 2022); in a star with equal weights ``y_b = -eps * sum(honest) / f``.

    Parameters
    ----------
    eps : float
        Strength (> 0; 1 cancels the honest pull exactly).
    """

    name = "dissensus"

    def __init__(self, eps: float = 1.0) -> None:
        self.eps = check_float(eps, "eps", self.name, positive=True)

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        f = own.shape[0]
        y = -self.eps * honest.sum(0) / f if honest.shape[0] else torch.zeros_like(own[0])
        return y[None, :].expand(f, -1).clone()


def forge_for_receiver(attack: UpdateAttack, receiver: Tensor, honest_models: List[Tensor],
                       honest_weights: Tensor, byzantine_models: List[Tensor], byzantine_weights: Tensor,
                       generator: torch.Generator) -> Tensor:
    """The ``[f, d]`` messages the Byzantine neighbours of one receiver send it this round."""
    if getattr(attack, "name", "") == "dissensus":
        msg = dissensus_message(receiver, torch.stack(honest_models) if honest_models else receiver[None][:0],
                                honest_weights, float(byzantine_weights.sum()), attack.eps)
        return msg[None, :].expand(len(byzantine_models), -1).clone()
    honest = (torch.stack(honest_models) - receiver) if honest_models else receiver.new_zeros(0, receiver.numel())
    own = torch.stack(byzantine_models) - receiver
    return receiver + attack(honest, own, generator)
