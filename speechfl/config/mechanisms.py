"""The privacy and threat mechanisms, checked and built before any corpus is generated or prepared.

Every refusal that needs no data runs here (stage 1 of
:func:`speechfl.federated.setup.build_setup`), so a run that cannot compose fails
before the corpus is touched:

* ``malicious``: keys, its ``attack`` / ``data_attack`` built by name, at least one of
  them, and no malicious clients under ``engine: centralized`` (one pooled client);
* ``dp_user``: keys, its mechanism parameters (a probe :class:`DPFedAvg`), and only
  with ``mean`` / ``weighted_mean`` and no pre-aggregators (its noise is calibrated to
  a clipped mean);
* ``secagg``: :func:`~speechfl.privacy.secagg.check_secagg_compatible` (robust rules,
  non-linear compressors, adaptive clipping), uplink ``identity`` or ``randk`` only,
  not ``engine: centralized``, keys; the :class:`SecureAggregation` is built here;
* SCAFFOLD (a server optimizer with ``control_variates``): an in-process engine,
  ``client.local_steps``, no ``dp_sample``;
* fairness-aware server steps (``client_aware``):
  :func:`~speechfl.fairness.check_fairness_compatible`.

What needs the partition (the malicious count against the number of clients,
DP-FedAvg's sampling rate, SCAFFOLD's sizes) is built in the partition stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from speechfl.config.errors import ConfigError
from speechfl.config.experiment import ExperimentConfig

if TYPE_CHECKING:
    from speechfl.config.components import Components
    from speechfl.privacy.secagg import SecureAggregation
    from speechfl.robustness.attacks.base import UpdateAttack

MALICIOUS_KEYS = ("count", "fraction", "attack", "data_attack")
DP_USER_KEYS = ("clip", "noise_multiplier", "delta", "adaptive")
SECAGG_KEYS = ("scale_bits", "modulus_bits", "min_survivors", "dropout")
SECAGG_UPLINKS = ("identity", "randk")
CONTROL_VARIATE_ENGINES = ("inprocess", "centralized")


@dataclass(frozen=True)
class DPUserSpec:
    """``dp_user`` checked: DP-FedAvg's parameters (the sampling rate comes from the partition)."""

    clip: float
    noise_multiplier: float
    delta: float
    adaptive: Optional[dict]


@dataclass(frozen=True)
class MaliciousSpec:
    """``malicious`` checked: who (count or fraction, resolved on the partition) and what they do."""

    count: Optional[int]
    fraction: Optional[float]
    update_attack: Optional["UpdateAttack"]
    data_attack: Optional[dict]


@dataclass(frozen=True)
class Mechanisms:
    """The mechanisms a configuration turns on, each checked against the others (``None``: off)."""

    malicious: Optional[MaliciousSpec] = None
    dp_user: Optional[DPUserSpec] = None
    secagg: Optional["SecureAggregation"] = None


def _keys(key: str, spec: dict, valid) -> None:
    unknown = sorted(set(spec) - set(valid))
    if unknown:
        raise ConfigError(key, f"unknown key(s) {unknown}; valid keys: {sorted(valid)}")


def _malicious(cfg: ExperimentConfig) -> Optional[MaliciousSpec]:
    mal = cfg.malicious
    if not mal:
        return None
    _keys("malicious", mal, MALICIOUS_KEYS)
    if cfg.engine.pooled:
        raise ConfigError("malicious", f"malicious clients need a federated engine, not engine={cfg.engine.value}")
    update_attack = None
    if mal.get("attack"):
        from speechfl.robustness import get_attack

        spec = dict(mal["attack"]) if isinstance(mal["attack"], dict) else {"name": mal["attack"]}
        try:
            update_attack = get_attack(spec.pop("name", None), **spec)
        except (ValueError, TypeError) as exc:
            raise ConfigError("malicious.attack", str(exc)) from None
    data_attack = mal.get("data_attack")
    if data_attack:
        from speechfl.robustness.poisoning import build_poisoner

        if not isinstance(data_attack, dict) or "name" not in data_attack:
            raise ConfigError("malicious.data_attack", f"must be a mapping with a name, got {data_attack!r}")
        try:
            build_poisoner(data_attack, cfg.seed)  # unknown names/params and unemittable targets fail here
        except (ValueError, TypeError) as exc:
            raise ConfigError("malicious.data_attack", str(exc)) from None
    if update_attack is None and not data_attack:
        raise ConfigError("malicious", "malicious clients configured without an attack or data_attack")
    return MaliciousSpec(mal.get("count"), mal.get("fraction"), update_attack, data_attack or None)


def _dp_user(cfg: ExperimentConfig, components: "Components") -> Optional[DPUserSpec]:
    if not cfg.dp_user:
        return None
    spec = cfg.dp_user
    _keys("dp_user", spec, DP_USER_KEYS)
    if components.robust.name not in ("mean", "weighted_mean") or cfg.preaggregators:
        raise ConfigError("dp_user", "user-level DP noise is calibrated to the sensitivity of a clipped mean; it "
                                     f"cannot be combined with aggregator {cfg.aggregator!r} or pre-aggregators")
    for key in ("clip", "noise_multiplier"):
        if key not in spec:
            raise ConfigError(f"dp_user.{key}", "is required")
    from speechfl.privacy.dp_user import ADAPTIVE_KEYS, DPFedAvg

    adaptive = spec.get("adaptive")
    if adaptive is not None:
        if not isinstance(adaptive, dict):
            raise ConfigError("dp_user.adaptive", f"must be a mapping ({{}} for the defaults), got {adaptive!r}")
        _keys("dp_user.adaptive", adaptive, ADAPTIVE_KEYS)  # its defaults depend on the clients per round
    try:
        out = DPUserSpec(clip=float(spec["clip"]), noise_multiplier=float(spec["noise_multiplier"]),
                         delta=float(spec.get("delta", 1e-3)), adaptive=adaptive)
        DPFedAvg(clip=out.clip, noise_multiplier=out.noise_multiplier, expected_clients=1.0, sample_rate=1.0,
                 seed=cfg.seed)  # a probe of clip and noise; the real one (partition stage) checks adaptive in full
    except (ValueError, TypeError) as exc:
        raise ConfigError("dp_user", str(exc)) from None
    return out


def _secagg(cfg: ExperimentConfig, components: "Components", dp_user: Optional[DPUserSpec]):
    if cfg.secagg is None:
        return None
    from speechfl.privacy.secagg import SecureAggregation, check_secagg_compatible

    try:
        check_secagg_compatible(aggregator_requires_individual=components.robust.requires_individual_updates,
                                compressor_linear=components.uplink.linear, dp_sample=bool(cfg.dp_sample),
                                dp_user_adaptive=bool(dp_user is not None and dp_user.adaptive is not None))
    except ValueError as exc:
        raise ConfigError("secagg", str(exc)) from None
    if components.uplink.name not in SECAGG_UPLINKS:
        raise ConfigError("secagg", f"secure aggregation cannot be combined with uplink {components.uplink.name!r}: "
                                    "clients mask the plain update (identity) or its values on the shared random-k "
                                    "mask (randk); a compressor that keeps client memory or nests others is not "
                                    "applied under masking")
    if cfg.engine.pooled:
        raise ConfigError("secagg", f"secure aggregation needs a federated engine, not engine={cfg.engine.value}")
    _keys("secagg", cfg.secagg, SECAGG_KEYS)
    try:
        return SecureAggregation(seed=cfg.seed, **cfg.secagg)
    except (ValueError, TypeError) as exc:
        raise ConfigError("secagg", str(exc)) from None


def _stratified(cfg: ExperimentConfig, server_optimizer: Any) -> None:
    """``clients_per_round: {count, stratify}`` changes who is sampled; refuse what assumes uniform sampling."""
    if cfg.stratify is None:
        return
    key = "clients_per_round.stratify"
    if cfg.engine.pooled or cfg.engine.kind == "decentralized":
        raise ConfigError(key, f"samples clients per group; engine {cfg.engine.value} has "
                               f"{'one pooled client' if cfg.engine.pooled else 'every node train every round'}")
    if cfg.dp_user:
        raise ConfigError(key, "dp_user's accountant assumes every client is sampled with the same rate "
                               "(count / clients); stratified sampling gives each group its own rate")
    if server_optimizer.control_variates:
        raise ConfigError(key, "scaffold's server variate update assumes uniform participation (|S| / N)")


def _control_variates(cfg: ExperimentConfig, server_optimizer: Any) -> None:
    if not server_optimizer.control_variates:
        return
    if cfg.engine.value not in CONTROL_VARIATE_ENGINES:
        raise ConfigError("server_optimizer", f"scaffold sends a control variate with the model; only the "
                                              f"in-process engines carry it ({', '.join(CONTROL_VARIATE_ENGINES)}), "
                                              f"not {cfg.engine.value}")
    if cfg.client.local_steps is None:
        raise ConfigError("server_optimizer", "scaffold needs client.local_steps (a fixed K for its c update), "
                                              "not local_epochs")
    if cfg.dp_sample:
        raise ConfigError("server_optimizer", "scaffold corrects gradients that dp_sample clips and noises per "
                                              "sample; the two are not combined")
    if cfg.client.optimizer.get("name") != "sgd":
        # option II estimates c_i = (x - y_i) / (K lr): a mean gradient only under local SGD; under Adam it is a
        # normalised step (~1 per coordinate) and the correction swamps the gradient (measured: 100 % CER on the
        # benchmark setting, benchmarks/results/bench_federated.md)
        raise ConfigError("server_optimizer", "scaffold needs client.optimizer name: sgd (its control variates are "
                                              f"mean gradients only under local SGD), got "
                                              f"{cfg.client.optimizer.get('name')!r}")


def _fairness(cfg: ExperimentConfig, components: "Components") -> None:
    if not components.server_optimizer.client_aware:
        return
    from speechfl.fairness import check_fairness_compatible

    spec = {"server_optimizer": cfg.server_optimizer, "secagg": cfg.secagg, "dp_user": cfg.dp_user,
            "dp_sample": cfg.dp_sample, "malicious": cfg.malicious}
    try:
        check_fairness_compatible(spec, components.robust, cfg.engine)
    except ValueError as exc:
        raise ConfigError("server_optimizer", str(exc)) from None


def check_mechanisms(cfg: ExperimentConfig, components: "Components") -> Mechanisms:
    """Check every combination that needs no corpus and build what can be built; raises :class:`ConfigError`."""
    _control_variates(cfg, components.server_optimizer)
    _stratified(cfg, components.server_optimizer)
    _fairness(cfg, components)
    malicious = _malicious(cfg)
    dp_user = _dp_user(cfg, components)
    return Mechanisms(malicious=malicious, dp_user=dp_user, secagg=_secagg(cfg, components, dp_user))
