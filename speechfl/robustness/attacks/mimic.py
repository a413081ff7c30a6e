"""Mimic attack (Karimireddy, He, Jaggi, ICLR 2022): all Byzantine clients copy one honest client."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from speechfl.robustness.attacks.base import UpdateAttack, repeat_row
from speechfl.robustness.registries import ATTACKS
from speechfl.robustness.validation import check_int


def power_step(honest: Tensor, direction: Tensor) -> Tensor:
    """One power-iteration step on the honest covariance: ``normalize(sum_i (x_i - mu) <x_i - mu, z>)``.

    Computed with two matrix-vector products (no centered ``[h, d]`` copy).
    """
    mu = honest.mean(0)
    proj = torch.mv(honest, direction) - torch.dot(mu, direction)
    u = torch.mv(honest.T, proj) - mu * proj.sum()
    norm = torch.linalg.vector_norm(u)
    return u / norm if float(norm) > 0 else direction


@ATTACKS.register("mimic")
class Mimic(UpdateAttack):
    """Every Byzantine client sends a copy of one honest update ``x_{i*}``.

    With ``target`` given, ``i* = target`` (ByzFL's ``Mimic(epsilon=target)``).
    Otherwise ``i* = argmax_i |<z, x_i - mu>|`` where ``z`` estimates the top principal
    direction of the honest updates by power iteration, one step per round from the
    previous round's ``z`` (Karimireddy et al. 2022, Section 4: the attacker
    over-represents the client that most increases the variance along ``z``; the
    absolute value makes the choice independent of the sign of ``z``). Unlike the
    paper, ``i*`` is re-chosen every round, because client sampling changes the
    honest set. ``z`` starts from a Gaussian draw of ``generator`` and is kept
    in ``state_dict``.

    Parameters
    ----------
    target : int, optional
        Fixed index into this round's honest updates.
    """

    name = "mimic"
    min_honest = 1

    def __init__(self, target: Optional[int] = None) -> None:
        self.target = None if target is None else check_int(target, "target", self.name, minimum=0)
        self.direction: Optional[Tensor] = None
        self.last_target: Optional[int] = None

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        h, d = honest.shape
        if self.target is not None:
            if self.target >= h:
                raise ValueError(f"{self.name}: target {self.target} but only {h} honest updates")
            i_star = self.target
        else:
            if self.direction is None or self.direction.numel() != d:
                z = torch.randn(d, generator=generator, dtype=torch.float64, device=generator.device)
                self.direction = (z / torch.linalg.vector_norm(z)).to(dtype=honest.dtype, device=honest.device)
            self.direction = power_step(honest, self.direction.to(dtype=honest.dtype, device=honest.device))
            proj = torch.mv(honest, self.direction) - torch.dot(honest.mean(0), self.direction)
            i_star = int(torch.argmax(proj.abs()))
        self.last_target = i_star
        return repeat_row(honest[i_star], own.shape[0])

    def state_dict(self) -> dict:
        return {"direction": None if self.direction is None else self.direction.clone()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"direction"}:
            raise ValueError(f"{self.name}: state must have exactly the key 'direction', got {sorted(state)}")
        self.direction = None if state["direction"] is None else state["direction"].clone()
