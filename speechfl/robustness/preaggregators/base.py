"""The pre-aggregator interface: ``pre(updates [n, d]) -> [n', d]``, composable before any aggregator.

After each call ``last_mixing`` (float64 ``[n', n]``) says how much of each input
row went into each output row (output ``= last_mixing @ input`` for NNM and
bucketing, ``diag(scales)`` for the clipping rules), so a pipeline can map the
aggregator's ``last_weights`` back to the clients. ``map_weights`` carries sample
counts through the step (identity unless rows are merged). Inputs are never
modified in place; an output may alias the input when it is unchanged.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from speechfl.robustness.validation import check_updates


class PreAggregator:
    """Base class; subclasses implement :meth:`_apply` (and :meth:`min_rows` if needed)."""

    name: str = ""

    def __init__(self) -> None:
        self.last_mixing: Optional[Tensor] = None

    def min_rows(self) -> int:
        """Smallest number of updates accepted."""
        return 1

    def min_inputs(self, outputs: int) -> int:
        """Fewest inputs that give at least ``outputs`` output rows (identity: rows are kept)."""
        return outputs

    def _apply(self, updates: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(output [n', d], mixing float64 [n', n])``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement _apply")

    def __call__(self, updates: Tensor) -> Tensor:
        check_updates(updates, self.name, min_rows=self.min_rows())
        with torch.no_grad():
            out, mixing = self._apply(updates.detach())
        self.last_mixing = mixing
        return out

    def map_weights(self, weights: Tensor) -> Tensor:
        """Sample counts of the output rows of the last call (identity: rows are not merged)."""
        return weights

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(f"{self.name}: stateless pre-aggregator got state keys {sorted(state)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
