"""The aggregator interface: ``agg(updates [n, d], weights [n] | None) -> [d]``.

An aggregator is a thin, named object around a pure function. After each call
``last_weights`` holds each input row's effective contribution (``[n]``, float64,
in ``[0, 1]``, summing to 1), which the engine records to see who was excluded or
down-weighted. Stateful rules (centered clipping) keep their state inside the
object and expose it through ``state_dict`` / ``load_state_dict`` for checkpoints.

Inputs must be finite: the engine rejects non-finite updates
(:func:`speechfl.federated.update.validate_update`) before aggregation. Inputs
are never modified in place.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from speechfl.robustness.validation import check_updates, check_weights


class Aggregator:
    """Base class; subclasses implement :meth:`_aggregate` and, if needed, :meth:`min_rows`.

    Attributes
    ----------
    name : str
        Registry name.
    requires_individual_updates : bool
        True when the rule must see every client's update (every robust rule);
        secure aggregation, which reveals only the sum, cannot be combined with it.
    uses_weights : bool
        True when the rule uses the sample-count ``weights``; the others ignore them.
    stateful : bool
        True when the rule keeps a ``[d]`` state across calls (centered clipping).
    last_weights : Tensor or None
        Contribution of each input row in the last call (see module docstring).
    """

    name: str = ""
    requires_individual_updates: bool = True
    uses_weights: bool = False
    stateful: bool = False

    def __init__(self) -> None:
        self.last_weights: Optional[Tensor] = None

    def min_rows(self) -> int:
        """Smallest number of updates the rule accepts."""
        return 1

    def _aggregate(self, updates: Tensor, weights: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """Return ``(aggregate [d], contribution [n] >= 0)``; ``weights`` are float64 or None."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _aggregate")

    def __call__(self, updates: Tensor, weights: Optional[Tensor] = None) -> Tensor:
        check_updates(updates, self.name, min_rows=self.min_rows())
        w = check_weights(weights, updates.shape[0], self.name)
        with torch.no_grad():
            out, contrib = self._aggregate(updates.detach(), w)
        self.last_weights = normalize_contributions(contrib)
        return out

    def state_dict(self) -> dict:
        """State to checkpoint (empty for stateless rules)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; stateless rules accept only ``{}``."""
        if state:
            raise ValueError(f"{self.name}: stateless aggregator got state keys {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def normalize_contributions(contrib: Tensor) -> Tensor:
    """Scale non-negative contributions to sum 1 (float64, CPU); all-zero gives uniform."""
    c = contrib.detach().to(device="cpu", dtype=torch.float64)
    total = float(c.sum())
    if total <= 0:
        return torch.full_like(c, 1.0 / c.numel())
    return c / total
