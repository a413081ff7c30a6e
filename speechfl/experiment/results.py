"""The results.json document: one per run, one dataclass per section (schema documented in the README).

Every writer builds a :class:`RunResults` and writes ``to_dict()``: the federated
and centralized engines (:func:`speechfl.experiment.run.finalize`), the centralized
CTC recipe (:func:`centralized_results`); ``speechfl evaluate`` adds ``privacy``,
``fairness`` and ``evaluation``. Readers (the sweep table, ``evaluate``) use
:meth:`RunResults.from_dict` or the section classes, never hand-written key paths
with fallbacks. Rates are percentages.

Schema history: 1 (initial); 2 (``attack.backdoor_success`` is a
:class:`BackdoorResult` mapping, ``fairness.individual`` is the flat per-speaker
WER distribution; the document is produced by these dataclasses).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import yaml

SCHEMA_VERSION = 2
READABLE_SCHEMAS = (1, 2)


class ResultsError(ValueError):
    """A results.json document that does not follow the schema (the message names the key)."""


def _require(d: Any, where: str, keys: tuple) -> Mapping:
    if not isinstance(d, Mapping):
        raise ResultsError(f"{where}: must be a mapping, got {type(d).__name__}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise ResultsError(f"{where}: missing key(s) {missing}")
    return d


def _fields_from_dict(cls, d: Any, where: str):
    """``cls(**d)`` for a section whose keys are exactly its dataclass fields (missing or unknown keys named)."""
    keys = tuple(f.name for f in dataclasses.fields(cls))
    _require(d, where, keys)
    _only(d, where, cls)
    return cls(**{k: d[k] for k in keys})


def _only(d: Mapping, where: str, cls) -> None:
    valid = {f.metadata.get("key", f.name) for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - valid)
    if unknown:
        raise ResultsError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(valid)}")


@dataclass(frozen=True)
class ConfigSection:
    """``config``: how the run was configured (``evaluate`` rebuilds the run from ``hparams_text`` + ``argv``)."""

    hparams_file: str  # absolute path at run time (informational)
    overrides: Dict[str, Any]  # the overrides as a mapping
    argv: List[str]  # the overrides as ``--key=value`` arguments
    hparams_text: Optional[str]  # the hparams file's text at run time

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "ConfigSection":
        _require(d, "config", ("hparams_file", "argv"))
        _only(d, "config", cls)
        return cls(str(d["hparams_file"]), dict(d.get("overrides") or {}), list(d["argv"]), d.get("hparams_text"))


def capture_config(hparams_file: str, overrides) -> ConfigSection:
    """The run's configuration as it is *now*: call it when the run starts (where the config is validated).

    The hparams file's text is read here, so a file edited while the run trains is
    recorded as it was run (``evaluate`` rebuilds the run from this text). The writers
    (:func:`speechfl.experiment.run.finalize`, :func:`centralized_results`) take the
    captured section instead of reading the file when the run finishes.
    """
    return ConfigSection.from_dict(config_section(hparams_file, overrides))


def config_section(hparams_file: str, overrides) -> Dict:
    """The configuration now: hparams file, overrides (mapping and argv), file text (see :func:`capture_config`)."""
    from speechfl.experiment.hparams import overrides_to_yaml

    if isinstance(overrides, str):
        mapping = yaml.safe_load(overrides) or {}
        argv = [f"--{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                for k, v in mapping.items()]
    else:
        argv = list(overrides or [])
        mapping = yaml.safe_load(overrides_to_yaml(argv)) or {}
    text = Path(hparams_file).read_text() if Path(hparams_file).is_file() else None
    return ConfigSection(str(Path(hparams_file).resolve()), mapping, argv, text).to_dict()


@dataclass(frozen=True)
class ModelSection:
    """``model``: trainable parameter count and class name (key ``class``)."""

    n_params: int
    class_name: str = field(metadata={"key": "class"})

    def to_dict(self) -> dict:
        return {"n_params": self.n_params, "class": self.class_name}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelSection":
        _require(d, "model", ("n_params", "class"))
        _only(d, "model", cls)
        return cls(int(d["n_params"]), str(d["class"]))


def model_section(model) -> Dict:
    from speechfl.models.asr import count_parameters

    return ModelSection(count_parameters(model), type(model).__name__).to_dict()


@dataclass(frozen=True)
class TestSection:
    """``test``: pooled WER/CER (percent) and utterance count, by gender and by speaker (``{wer, cer, n_utts}``)."""

    wer: float
    cer: float
    n_utts: int
    by_group: Dict[str, Dict[str, Dict[str, float]]]  # {"gender": {"F": {wer, cer, n_utts}, ...}}
    by_speaker: Dict[str, Dict[str, float]]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "TestSection":
        _require(d, "test", ("wer", "cer", "n_utts", "by_group", "by_speaker"))
        _only(d, "test", cls)
        return cls(float(d["wer"]), float(d["cer"]), int(d["n_utts"]), dict(d["by_group"]), dict(d["by_speaker"]))


@dataclass(frozen=True)
class CommunicationSection:
    """``communication``: bytes sent over all rounds; ratios against float32 updates (``None`` if nothing sent)."""

    bytes_up_total: int
    bytes_down_total: int
    fp32_bytes_up_total: int
    compression_ratio_up: Optional[float]
    compression_ratio_down: Optional[float]

    @classmethod
    def from_history(cls, history: List[dict], dim: int) -> "CommunicationSection":
        """Totals of ``rounds[i].bytes_up/bytes_down``; the reference is ``4 * dim`` bytes per client update."""
        up = sum(int(r["bytes_up"]) for r in history)
        down = sum(int(r["bytes_down"]) for r in history)
        fp32 = 4 * dim * sum(len(r["clients"]) for r in history)
        return cls(up, down, fp32, fp32 / up if up else None, fp32 / down if down else None)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "CommunicationSection":
        return _fields_from_dict(cls, d, "communication")


@dataclass(frozen=True)
class PartitionSection:
    """``partition``: client -> speakers, utterances per client, dropped speakers, malicious clients, genders."""

    clients: Dict[str, List[str]]
    n_utterances: Dict[str, int]
    dropped: Any
    malicious: List[str]
    genders: Dict[str, List[str]]  # client -> sorted genders of its speakers

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "PartitionSection":
        return _fields_from_dict(cls, d, "partition")


@dataclass(frozen=True)
class BackdoorResult:
    """``attack.backdoor_success``: share of triggered test utterances transcribed exactly as the target."""

    success_rate: float  # fraction in [0, 1]
    cer_to_target: float  # percent
    n_triggered: int
    target_text: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "BackdoorResult":
        raw = _fields_from_dict(cls, d, "attack.backdoor_success")
        return cls(float(raw.success_rate), float(raw.cer_to_target), int(raw.n_triggered), str(raw.target_text))


@dataclass(frozen=True)
class AttackSection:
    """``attack`` (runs with malicious clients): who attacked, with what, and the backdoor's success."""

    malicious_clients: List[str]
    update_attack: Optional[str] = None
    data_attack: Optional[Dict[str, Any]] = None
    backdoor_success: Optional[BackdoorResult] = None

    def to_dict(self) -> dict:
        out: Dict[str, Any] = {"malicious_clients": list(self.malicious_clients)}
        if self.update_attack is not None:
            out["update_attack"] = self.update_attack
        if self.data_attack is not None:
            out["data_attack"] = dict(self.data_attack)
        if self.backdoor_success is not None:
            out["backdoor_success"] = self.backdoor_success.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "AttackSection":
        _require(d, "attack", ("malicious_clients",))
        _only(d, "attack", cls)
        bd = d.get("backdoor_success")
        return cls(list(d["malicious_clients"]), d.get("update_attack"), d.get("data_attack"),
                   BackdoorResult.from_dict(bd) if bd is not None else None)


@dataclass(frozen=True)
class PrivacyBudgetSection:
    """``privacy_budget`` (user-level DP runs): the accountant's epsilon after the last round, at ``delta``."""

    user_level_epsilon: float
    delta: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "PrivacyBudgetSection":
        _require(d, "privacy_budget", ("user_level_epsilon", "delta"))
        _only(d, "privacy_budget", cls)
        return cls(float(d["user_level_epsilon"]), float(d["delta"]))


_SECTIONS = {"config": ConfigSection, "model": ModelSection, "test": TestSection,
             "communication": CommunicationSection, "partition": PartitionSection, "attack": AttackSection,
             "privacy_budget": PrivacyBudgetSection}


@dataclass
class RunResults:
    """The whole results.json document.

    Always present: ``schema``, ``kind`` (``federated``, ``centralized`` or
    ``decentralized``), ``config``, ``model``, ``seconds``, ``test``. Engine runs add
    ``engine``, ``client_seconds_per_round``, ``partition``, ``rounds`` (one record
    per round, written by the engine), ``communication``; runs with malicious
    clients add ``attack``; user-level DP runs add ``privacy_budget``; the CTC
    recipe adds ``train_seconds`` and ``epochs``; the gossip engines add
    ``decentralized``. ``speechfl evaluate`` adds ``privacy``, ``fairness`` and
    ``evaluation`` (their inner layout belongs to the evaluation reports:
    ``speechfl.attackers.reports`` / ``speechfl.experiment.evaluate``). Absent
    sections are omitted, never written as ``null``.
    """

    kind: str
    config: ConfigSection
    model: ModelSection
    seconds: float
    test: TestSection
    schema: int = SCHEMA_VERSION
    engine: Optional[str] = None
    client_seconds_per_round: Optional[float] = None
    partition: Optional[PartitionSection] = None
    rounds: Optional[List[Dict[str, Any]]] = None
    communication: Optional[CommunicationSection] = None
    attack: Optional[AttackSection] = None
    privacy_budget: Optional[PrivacyBudgetSection] = None
    train_seconds: Optional[float] = None
    epochs: Optional[List[Dict[str, Any]]] = None
    decentralized: Optional[Dict[str, Any]] = None
    privacy: Optional[Dict[str, Any]] = None
    fairness: Optional[Dict[str, Any]] = None
    evaluation: Optional[Dict[str, Any]] = None

    KINDS = ("federated", "centralized", "decentralized")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ResultsError(f"kind: must be one of {list(self.KINDS)}, got {self.kind!r}")

    def to_dict(self) -> dict:
        out: Dict[str, Any] = {"schema": self.schema}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None and f.name != "schema":
                out[f.name] = value.to_dict() if hasattr(value, "to_dict") else value
        return out

    @classmethod
    def from_dict(cls, d: Mapping) -> "RunResults":
        """Parse a results.json document; a schema drift is a :class:`ResultsError` naming the key."""
        _require(d, "results.json", ("schema", "kind", "config", "model", "seconds", "test"))
        if d["schema"] not in READABLE_SCHEMAS:
            raise ResultsError(f"schema: {d['schema']!r} is not readable here (readable: {list(READABLE_SCHEMAS)})")
        _only(d, "results.json", cls)
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            v = d[f.name]
            values[f.name] = _SECTIONS[f.name].from_dict(v) if f.name in _SECTIONS and v is not None else v
        return cls(**values)


def centralized_results(*, config: ConfigSection, test, model, seconds, train_seconds,
                        history: Optional[List] = None):
    """results.json of the centralized CTC recipe (``kind: centralized``, ``epochs`` instead of ``rounds``).

    ``config`` is the section :func:`capture_config` captured when the run started.
    """
    if not isinstance(config, ConfigSection):
        raise TypeError(f"config must be the ConfigSection captured at the start of the run (capture_config), "
                        f"got {type(config).__name__}")
    return RunResults(
        kind="centralized", config=config,
        model=ModelSection.from_dict(model_section(model)), seconds=seconds, test=TestSection.from_dict(test),
        train_seconds=train_seconds, epochs=list(history or []),
    ).to_dict()
