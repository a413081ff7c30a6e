"""The update-attack interface: what the Byzantine clients send in one round.

``attack(honest [h, d], byzantine_own [f, d], generator) -> [f, d]``: ``honest`` are
this round's honest updates (an omniscient attacker, as in the papers),
``byzantine_own`` the malicious clients' own honestly-trained updates, and
``generator`` the only source of randomness (reproducible runs). Attacks are
pure given their inputs and state; none modifies its inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from speechfl.robustness.validation import FLOAT_DTYPES


class UpdateAttack:
    """Base class; subclasses implement :meth:`_attack` and set ``min_honest``."""

    name: str = ""
    min_honest: int = 0  # honest updates the attack needs to see

    def _attack(self, honest: Tensor, own: Tensor, generator: torch.Generator) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} does not implement _attack")

    def __call__(self, honest: Tensor, byzantine_own: Tensor, generator: torch.Generator) -> Tensor:
        for label, x in (("honest", honest), ("byzantine_own", byzantine_own)):
            if not isinstance(x, Tensor) or x.dim() != 2:
                raise ValueError(f"{self.name}: {label} must be a 2-D tensor [rows, d]")
            if x.dtype not in FLOAT_DTYPES:
                raise TypeError(f"{self.name}: {label} must be float32 or float64, got {x.dtype}")
        if honest.shape[1] != byzantine_own.shape[1]:
            raise ValueError(
                f"{self.name}: honest has d = {honest.shape[1]}, byzantine_own has d = {byzantine_own.shape[1]}"
            )
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"{self.name}: generator must be a torch.Generator, got {type(generator).__name__}")
        if honest.shape[0] < self.min_honest:
            raise ValueError(f"{self.name}: needs at least {self.min_honest} honest update(s), got {honest.shape[0]}")
        if byzantine_own.shape[0] == 0:
            return byzantine_own.clone()
        with torch.no_grad():
            out = self._attack(honest.detach(), byzantine_own.detach(), generator)
        return out.to(dtype=byzantine_own.dtype, device=byzantine_own.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{self.name}: stateless attack got state keys {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def repeat_row(row: Tensor, f: int) -> Tensor:
    """``[f, d]`` copies of ``row`` (every Byzantine client sends the same vector)."""
    return row[None, :].expand(f, -1).clone()
