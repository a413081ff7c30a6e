"""What the server pipeline needs of each component (structural types, no ``object``/``hasattr`` probes).

The concrete classes (:class:`speechfl.compression.base.Compressor`,
:class:`speechfl.robustness.pipeline.RobustPipeline`,
:class:`speechfl.federated.server_opt.ServerOptimizer`) satisfy these; the
protocols name the part of them that setup checks and the engines call.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Protocol, runtime_checkable

import torch


@runtime_checkable
class UplinkCompressor(Protocol):
    """A compressor as the setup checks see it (``encode``/``decode`` as in ``speechfl.compression.base``)."""

    name: str
    shared_support: bool  # random-k with one mask for every client: coordinates differ per round
    linear: bool  # encode is one linear map shared by every client (commutes with sums: secagg-safe)

    def encode(self, vector: torch.Tensor, state: dict, ctx: Any) -> Any: ...

    def decode(self, payload: Any, ctx: Any) -> torch.Tensor: ...


@runtime_checkable
class RobustAggregator(Protocol):
    """``[n, d]`` updates (+ optional ``[n]`` weights) -> ``[d]``, with what setup must know about it."""

    @property
    def name(self) -> str: ...

    @property
    def stateful(self) -> bool: ...

    @property
    def requires_individual_updates(self) -> bool: ...

    def min_rows(self) -> int: ...

    def __call__(self, updates: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor: ...


@runtime_checkable
class ServerStep(Protocol):
    """The server optimizer: ``x_{t+1} = step(x_t, aggregated delta)``, checkpointable."""

    def step(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor: ...

    def state_dict(self) -> Dict: ...

    def load_state_dict(self, state: Dict) -> None: ...
