"""Build the server-side components from an :class:`ExperimentConfig`, and the checks that need them.

Building is cheap (no corpus, no model), so unknown names and parameters, components
that lack what their :mod:`~speechfl.config.protocols` declares, and every combination
of mechanisms that cannot compose (:func:`~speechfl.config.mechanisms.check_mechanisms`)
fail before anything is generated. :func:`check_against_partition` runs the checks that
need the number of clients, right after the partition is known and before any
client trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

from speechfl.config.errors import ConfigError
from speechfl.config.experiment import ExperimentConfig
from speechfl.config.mechanisms import Mechanisms, check_mechanisms
from speechfl.config.protocols import RobustAggregator, ServerStep, UplinkCompressor, check_protocol


@dataclass(frozen=True)
class Components:
    """The server pipeline's parts, built by name from the configuration, and the checked mechanisms."""

    uplink: UplinkCompressor
    downlink: Optional[UplinkCompressor]
    robust: RobustAggregator
    server_optimizer: ServerStep
    mechanisms: Mechanisms = Mechanisms()


def _build(key: str, build, spec):
    try:
        return build(spec)
    except (ValueError, TypeError) as exc:  # RegistryError is a ValueError: name the hparams key
        raise ConfigError(key, str(exc)) from None


def build_components(cfg: ExperimentConfig) -> Components:
    """Compressors, robust pipeline, server optimizer and mechanisms; raises :class:`ConfigError` naming the key."""
    from speechfl.compression import build_compressor
    from speechfl.federated.server_opt import SERVER_OPTIMIZERS
    from speechfl.registry import build_from_spec
    from speechfl.robustness import build_robust_pipeline

    uplink = _build("uplink", build_compressor, cfg.uplink)
    downlink = _build("downlink", build_compressor, cfg.downlink) if cfg.downlink else None
    robust = _build("aggregator", lambda spec: build_robust_pipeline(spec, list(cfg.preaggregators)), cfg.aggregator)
    server_optimizer = _build("server_optimizer", lambda spec: build_from_spec(SERVER_OPTIMIZERS, spec),
                              cfg.server_optimizer)
    for key, component, protocol in (("uplink", uplink, UplinkCompressor), ("downlink", downlink, UplinkCompressor),
                                     ("aggregator", robust, RobustAggregator),
                                     ("server_optimizer", server_optimizer, ServerStep)):
        if component is not None:
            check_protocol(component, protocol, key)
    if uplink.shared_support and robust.stateful:
        raise ConfigError("aggregator", f"{robust.name!r} keeps a [d] state across rounds, but random-k with a "
                                        "shared mask aggregates on a different set of coordinates every round; "
                                        "use a stateless rule")
    if isinstance(cfg.clients_per_round, int) and not cfg.dp_user:
        check_updates_per_round(cfg, robust, cfg.clients_per_round, n_clients=None)
    components = Components(uplink=uplink, downlink=downlink, robust=robust, server_optimizer=server_optimizer)
    return dataclasses.replace(components, mechanisms=check_mechanisms(cfg, components))


def updates_per_round(cfg: ExperimentConfig, n_clients: int) -> int:
    """How many clients a round samples: the count, or ``max(1, round(fraction * n_clients))``."""
    k = cfg.clients_per_round
    if isinstance(k, float):
        k = max(1, round(k * n_clients))
    if k > n_clients:
        raise ConfigError("clients_per_round", f"{k} clients per round but the partition has {n_clients} clients")
    return int(k)


def check_updates_per_round(cfg: ExperimentConfig, robust: RobustAggregator, per_round: int,
                            n_clients: Optional[int]) -> None:
    """Refuse a robust pipeline that needs more updates than a round provides (Krum, Multi-Krum's m, buckets)."""
    need = int(robust.min_rows())
    if per_round < need:
        of = f" of {n_clients} clients" if n_clients is not None else ""
        raise ConfigError("aggregator", f"{robust.name!r} needs at least {need} updates per round, but "
                                        f"clients_per_round={cfg.clients_per_round} samples {per_round}{of}")


def check_against_partition(cfg: ExperimentConfig, components: Components, n_clients: int) -> int:
    """Checks that need the number of clients; returns the number of updates per round."""
    per_round = updates_per_round(cfg, n_clients)
    if not cfg.dp_user:  # user-level DP refuses robust rules itself (they cannot be combined)
        check_updates_per_round(cfg, components.robust, per_round, n_clients)
    return per_round
