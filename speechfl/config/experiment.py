"""The typed, frozen experiment configuration, validated in full before any side effect.

:meth:`ExperimentConfig.from_hparams` reads the loaded hparams dict (see
:mod:`speechfl.experiment.hparams`) and checks every value the federated engines
use; a bad value raises :class:`~speechfl.config.errors.ConfigError` naming the
key (``rounds: must be an integer >= 1, got 'two'``). Nothing here touches the
disk, generates a corpus or builds a model: the stages of
:func:`speechfl.federated.setup.build_setup` are

1. ``ExperimentConfig.from_hparams`` (this module) and
   :func:`~speechfl.config.components.build_components` (cheap: compressors,
   robust pipeline, server optimizer, so unknown names fail first, then
   :func:`~speechfl.config.mechanisms.check_mechanisms`: every combination of
   malicious clients, DP, secure aggregation, SCAFFOLD and fairness rules that
   needs no data),
2. :func:`~speechfl.config.output.check_output_writable` (run.py, before anything is written),
3. prepare the corpus, partition it, and the corpus-dependent checks
   (:func:`~speechfl.config.components.check_against_partition`) before any client trains,
4. the model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Tuple, Union

from speechfl.config.engine import Engine
from speechfl.config.errors import ConfigError

ClientsPerRound = Union[int, float]


def positive_int(hparams: Mapping, key: str, default: Any = None, minimum: int = 1) -> int:
    """``hparams[key]`` as an int ``>= minimum``; bools, floats and strings are refused with the key named."""
    value = hparams.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigError(key, f"must be an integer >= {minimum}, got {value}")
    return value


STRATIFY_KEYS = ("count", "stratify")
STRATIFY_ATTRIBUTES = ("gender", "accent")


def clients_per_round(value: Any) -> Tuple[ClientsPerRound, Optional[str]]:
    """``(count or fraction, stratify attribute or None)``.

    A count (int >= 1), a fraction (float in (0, 1]), or ``{count: K, stratify: gender | accent}``:
    K clients a round, in equal shares per group (:func:`speechfl.federated.setup.stratified_sample`).
    """
    stratify = None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(STRATIFY_KEYS))
        if unknown or "count" not in value:
            raise ConfigError("clients_per_round", f"a mapping takes exactly {list(STRATIFY_KEYS)}, got {dict(value)!r}")
        stratify = value.get("stratify")
        if stratify not in STRATIFY_ATTRIBUTES:
            raise ConfigError("clients_per_round.stratify", f"must be one of {list(STRATIFY_ATTRIBUTES)}, got {stratify!r}")
        value = value["count"]
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("clients_per_round.count", f"stratified sampling needs a count (int >= 1), got {value!r}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("clients_per_round", f"must be a count (int >= 1) or a fraction in (0, 1], got {value!r}")
    if isinstance(value, int) and value < 1:
        raise ConfigError("clients_per_round", f"a count must be >= 1, got {value}")
    if isinstance(value, float) and not 0 < value <= 1:
        raise ConfigError("clients_per_round", f"a fraction must be in (0, 1], got {value}")
    return value, stratify


def optional_mapping(hparams: Mapping, key: str) -> Optional[dict]:
    """``None``/absent -> None; a mapping -> a copy; anything else is an error."""
    value = hparams.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(key, f"must be a mapping or null, got {value!r}")
    return dict(value)


def _engine(value: Any) -> Engine:
    if value == "flower":
        raise ConfigError("engine", "a real Flower deployment is started with `flwr run` (docs/flower.md), not "
                                    f"engine=flower; valid engines: {', '.join(Engine.names())}")
    try:
        return Engine(value)
    except ValueError:
        raise ConfigError("engine", f"unknown engine {value!r}; valid engines: {', '.join(Engine.names())}") from None


def _client(hparams: Mapping, engine: Engine):
    from speechfl.federated.client import ClientConfig

    spec = hparams.get("client") or {}
    if not isinstance(spec, Mapping):
        raise ConfigError("client", f"must be a mapping, got {spec!r}")
    valid = {f.name for f in dataclasses.fields(ClientConfig)}
    unknown = sorted(set(spec) - valid)
    if unknown:
        raise ConfigError("client", f"unknown key(s) {unknown}; valid keys: {sorted(valid)}")
    for key in ("local_epochs", "local_steps", "batch_size"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"client.{key}", f"must be an integer, got {value!r}")
    try:
        config = ClientConfig(**spec)
    except (TypeError, ValueError) as exc:
        raise ConfigError("client", str(exc)) from None
    if config.group_dro is not None:
        if not engine.pooled:
            raise ConfigError("client.group_dro", f"group DRO over a batch needs a client holding several groups "
                                                  f"(engine=centralized); with engine={engine.value} each client holds "
                                                  "one speaker: use server_optimizer afl, ctc_dro or group_reweight")
        if hparams.get("dp_sample"):
            raise ConfigError("client.group_dro", "dp_sample's Poisson batches and per-sample clipping are not "
                                                  "defined for a group-weighted loss; use one or the other")
    return dataclasses.replace(config, keep_optimizer_state=True) if engine.pooled else config


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything the engines read from hparams, typed and checked.

    Component specs (``aggregator``, ``uplink``, ...) stay as the hparams wrote them
    (a name or a ``{name: ..., **params}`` mapping); :mod:`speechfl.config.components`
    builds them, so an unknown name or parameter fails here too, before the corpus.
    ``model`` and ``augment`` are the objects HyperPyYAML built.
    """

    seed: int
    engine: Engine
    device: str
    rounds: int
    clients_per_round: ClientsPerRound
    eval_every: int
    eval_batch_size: int
    speakers_per_client: int
    min_utterances: int
    record_updates: Tuple[int, ...]
    output_folder: Optional[Path]
    client: Any  # speechfl.federated.client.ClientConfig (imported lazily: it pulls torch)
    aggregator: Any
    preaggregators: Tuple[Any, ...]
    server_optimizer: Any
    uplink: Any
    downlink: Any
    malicious: Optional[dict]
    adversary: Optional[dict]
    dp_user: Optional[dict]
    dp_sample: Optional[dict]
    secagg: Optional[dict]  # None: off; {} or a mapping: on
    stratify: Optional[str] = None  # clients_per_round: {count, stratify}: equal shares per group each round

    @classmethod
    def from_hparams(cls, hparams: Mapping) -> "ExperimentConfig":
        """Validate ``hparams`` (the dict :func:`load_hparams` returns); raises :class:`ConfigError`."""
        if not isinstance(hparams, Mapping):
            raise ConfigError("", f"hparams must be a mapping, got {type(hparams).__name__}")
        if "seed" not in hparams:
            raise ConfigError("seed", "is required")
        seed = hparams["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError("seed", f"must be an integer, got {seed!r}")
        engine = _engine(hparams.get("engine", "inprocess"))
        device = hparams.get("device", "cpu")
        if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
            raise ConfigError("device", f"must be 'cpu' or 'cuda[:i]', got {device!r}")
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError("device", f"{device} requested but CUDA is not available")
        rounds = positive_int(hparams, "rounds")
        record = hparams.get("record_updates") or []
        if not isinstance(record, (list, tuple)) or any(isinstance(r, bool) or not isinstance(r, int)
                                                         or not 1 <= r <= rounds for r in record):
            raise ConfigError("record_updates", f"must be a list of round numbers in 1..{rounds}, got {record!r}")
        out = hparams.get("output_folder")
        if out is not None and not isinstance(out, (str, Path)):
            raise ConfigError("output_folder", f"must be a path, got {out!r}")
        pre = hparams.get("preaggregators") or []
        if not isinstance(pre, (list, tuple)):
            raise ConfigError("preaggregators", f"must be a list of specs, got {pre!r}")
        secagg = hparams.get("secagg")
        if secagg is False:
            secagg = None
        elif secagg is not None and not isinstance(secagg, Mapping):
            raise ConfigError("secagg", f"must be a mapping ({{}} to enable) or null, got {secagg!r}")
        per_round, stratify = clients_per_round(hparams.get("clients_per_round", 1.0))
        return cls(
            seed=seed, engine=engine, device=device, rounds=rounds, clients_per_round=per_round, stratify=stratify,
            eval_every=positive_int(hparams, "eval_every", 1, minimum=0),
            eval_batch_size=positive_int(hparams, "eval_batch_size", 16),
            speakers_per_client=positive_int(hparams, "speakers_per_client", 1),
            min_utterances=positive_int(hparams, "min_utterances", 1),
            record_updates=tuple(record),
            output_folder=Path(out) if out is not None else None,
            client=_client(hparams, engine),
            aggregator=hparams.get("aggregator", "weighted_mean"),
            preaggregators=tuple(pre),
            server_optimizer=hparams.get("server_optimizer", "fedavg"),
            uplink=hparams.get("uplink"),
            downlink=hparams.get("downlink"),
            malicious=optional_mapping(hparams, "malicious"),
            adversary=optional_mapping(hparams, "adversary"),
            dp_user=optional_mapping(hparams, "dp_user"),
            dp_sample=optional_mapping(hparams, "dp_sample"),
            secagg=None if secagg is None else dict(secagg),
        )
