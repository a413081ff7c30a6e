"""What the server pipeline needs of each component (structural types, no ``object``/``hasattr`` probes).

The concrete classes (:class:`speechfl.compression.base.Compressor`,
:class:`speechfl.robustness.pipeline.RobustPipeline`,
:class:`speechfl.federated.server_opt.ServerOptimizer`) satisfy these; the
protocols name the part of them that setup checks and the engines call.
:func:`check_protocol` refuses, at setup, a component that lacks one of them
(:func:`~speechfl.config.components.build_components` and ``Server``), so the
engines read these attributes directly and never fall back to a default.
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
    requires_server_state: bool  # EF21: the server keeps per-client memory of the payloads

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

    last_weights: Optional[torch.Tensor]  # each input's contribution to the last output (``None``: its weights)

    def min_rows(self) -> int: ...

    def __call__(self, updates: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor: ...

    def state_dict(self) -> Dict: ...

    def load_state_dict(self, state: Dict) -> None: ...


@runtime_checkable
class ServerStep(Protocol):
    """The server optimizer: ``x_{t+1} = step(x_t, aggregated delta)``, checkpointable."""

    name: str
    client_aware: bool  # fairness-aware rules: the server calls ``combine`` with the clients' reported losses
    control_variates: bool  # SCAFFOLD: setup calls ``configure`` with the federation's sizes

    def step(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor: ...

    def state_dict(self) -> Dict: ...

    def load_state_dict(self, state: Dict) -> None: ...


def check_protocol(component: Any, protocol: type, key: str) -> None:
    """Refuse at setup a component that lacks an attribute or method ``protocol`` declares.

    Raises :class:`~speechfl.config.errors.ConfigError` naming the hparams ``key`` and the missing members,
    so the engines never probe with ``hasattr`` and never fall back to a default.
    """
    from speechfl.config.errors import ConfigError

    if isinstance(component, protocol):
        return
    members = set(getattr(protocol, "__annotations__", {})) | {
        n for n, v in vars(protocol).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))}
    missing = sorted(m for m in members if not hasattr(component, m))
    raise ConfigError(key, f"{type(component).__name__} is not a {protocol.__name__}: it lacks {missing}")
