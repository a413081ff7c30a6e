"""The ``gossip`` hparams section, typed and checked, and the refusals of what gossip cannot compose with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from speechfl.registry import require_keys

ALGORITHMS = ("dpsgd", "choco")
KEYS = {"topology", "algorithm", "gamma", "pairing", "clipping", "noise", "eval_nodes", "processes", "timeout_s"}


@dataclass(frozen=True)
class GossipConfig:
    """How the speaker-nodes talk.

    Attributes
    ----------
    topology : name or {name: ..., **params}
        ring | torus | exponential | erdos_renyi | complete | edge_list (see ``topologies``).
    algorithm : str
        ``dpsgd`` (Lian et al. 2017; full models) or ``choco`` (Koloskova et al. 2019; the
        ``uplink`` compressor codes ``x - x_hat``).
    gamma : float
        CHOCO's consensus step size in (0, 1].
    pairing : bool
        Time-varying random pairings over the topology's edges (gossip learning) instead of
        Metropolis-Hastings mixing with every neighbour.
    clipping : mapping or None
        ClippedGossip ``{radius: null}`` (He et al.'s rule), ``{radius: null, farthest: 3}`` (the 3
        farthest neighbours clipped to the 4th) or ``{radius: 0.5}``.
    noise : mapping or None
        Muffliato local noise ``{clip: C, noise_multiplier: sigma, alpha: 2}``.
    eval_nodes : int or None
        How many honest nodes' own models are tested at the end (the first ones in id order;
        ``null`` = all).
    processes : int
        ``gossip-dist``: torch.distributed ranks started by ``torchrun`` (nodes are dealt round-robin).
    timeout_s : float
        ``gossip-dist``: seconds a rank waits for a peer before reporting it dead. It must exceed
        the longest a healthy rank is busy between two exchanges: training its nodes, plus the
        validation rank 0 runs every ``eval_every`` rounds.
    """

    topology: Any = "ring"
    algorithm: str = "dpsgd"
    gamma: float = 1.0
    pairing: bool = False
    clipping: Optional[dict] = None
    noise: Optional[dict] = None
    eval_nodes: Optional[int] = 4
    processes: int = 2
    timeout_s: float = 300.0

    @classmethod
    def from_hparams(cls, hparams: dict) -> "GossipConfig":
        spec = dict(hparams.get("gossip") or {})
        require_keys(spec, KEYS, "gossip")
        cfg = cls(**spec)
        if cfg.algorithm not in ALGORITHMS:
            raise ValueError(f"gossip.algorithm must be one of {ALGORITHMS}, got {cfg.algorithm!r}")
        if not 0.0 < float(cfg.gamma) <= 1.0:
            raise ValueError(f"gossip.gamma (CHOCO consensus step) must be in (0, 1], got {cfg.gamma!r}")
        if cfg.clipping is not None:
            clipping = dict(cfg.clipping)
            require_keys(clipping, {"radius", "farthest"}, "gossip.clipping")
            if clipping.get("radius") is not None and "farthest" in clipping:
                raise ValueError("gossip.clipping: give a fixed radius or farthest (the adaptive radius), not both")
            farthest = clipping.get("farthest", 1)
            if isinstance(farthest, bool) or not isinstance(farthest, int) or farthest < 1:
                raise ValueError(f"gossip.clipping.farthest must be an integer >= 1, got {farthest!r}")
        if cfg.noise is not None:
            require_keys(dict(cfg.noise), {"clip", "noise_multiplier", "alpha"}, "gossip.noise")
        if cfg.eval_nodes is not None and int(cfg.eval_nodes) < 1:
            raise ValueError(f"gossip.eval_nodes must be >= 1 or null (all), got {cfg.eval_nodes!r}")
        if int(cfg.processes) < 1:
            raise ValueError(f"gossip.processes must be >= 1, got {cfg.processes!r}")
        return cfg


def check_composition(setup, cfg: GossipConfig, distributed: bool) -> None:
    """Refuse, with the reason, every mechanism gossip does not compose with (never silently off).

    ``setup`` is the built :class:`~speechfl.federated.setup.FederatedSetup`; the same checks run
    before any data work through :func:`check_before_data`, so this second pass only adds the
    one that needs the partition (``clients_per_round`` as a count must be every node).
    """
    _check(setup.hparams, setup.secagg, setup.dp_user, setup.downlink, setup.uplink, setup.robust,
           bool(setup.malicious), setup.update_attack, cfg, distributed)
    cpr = setup.hparams.get("clients_per_round", 1.0)
    if isinstance(cpr, int) and cpr != len(setup.partition.client_ids):
        raise ValueError(f"clients_per_round={cpr!r}: every gossip node trains every round, and the partition has "
                         f"{len(setup.partition.client_ids)} nodes (use gossip.pairing for time-varying communication)")


def check_before_data(hparams: dict, components, distributed: bool) -> GossipConfig:
    """The gossip section and its refusals from the configuration alone (before any corpus is touched)."""
    cfg = GossipConfig.from_hparams(hparams)
    mech = components.mechanisms
    mal = mech.malicious
    has_malicious = mal is not None and bool(mal.count or mal.fraction)
    _check(hparams, mech.secagg, mech.dp_user, components.downlink, components.uplink, components.robust,
           has_malicious, mal.update_attack if mal is not None else None, cfg, distributed)
    return cfg


def _check(h, secagg, dp_user, downlink, uplink, robust, malicious: bool, update_attack, cfg: GossipConfig,
           distributed: bool) -> None:
    if secagg is not None:
        raise ValueError("secagg masks cancel only in a sum at a server; gossip has no server (use gossip.noise)")
    if dp_user is not None:
        raise ValueError("dp_user calibrates noise to a server's clipped mean; in gossip use gossip.noise (Muffliato)")
    if downlink is not None:
        raise ValueError("downlink compresses a server broadcast; gossip has none (CHOCO compresses with uplink)")
    cpr = h.get("clients_per_round", 1.0)
    if isinstance(cpr, float) and cpr != 1.0:
        raise ValueError(f"clients_per_round={cpr!r}: every gossip node trains every round (use gossip.pairing "
                         "for time-varying communication)")
    opt = h.get("server_optimizer", "fedavg")
    opt = {"name": opt} if isinstance(opt, str) else dict(opt)
    if opt.get("name") != "fedavg" or float(opt.get("lr", 1.0)) != 1.0:
        raise ValueError(f"server_optimizer={opt}: gossip has no server step; leave it at {{name: fedavg, lr: 1.0}}")
    robust_name = getattr(robust, "name", "")
    neighbourhood_rule = robust_name not in ("mean", "weighted_mean")
    if cfg.algorithm == "dpsgd" and h.get("uplink"):
        raise ValueError("D-PSGD sends full models; to compress gossip use gossip.algorithm=choco with uplink")
    if cfg.algorithm == "choco":
        if malicious and update_attack is not None:
            raise ValueError("CHOCO's public copies x_hat assume every neighbour receives the same message; a "
                             "Byzantine node forging per-receiver messages breaks that (use algorithm=dpsgd)")
        if neighbourhood_rule or cfg.clipping:
            raise ValueError("robust neighbour aggregation is defined on neighbours' models (D-PSGD), not on "
                             "CHOCO's compressed public copies (use algorithm=dpsgd)")
        if cfg.noise:
            raise ValueError("Muffliato's accounting is for noisy full-model gossip (D-PSGD), not for CHOCO's "
                             "compressed differences")
        if cfg.pairing:
            raise ValueError("CHOCO's public copy of a node is held by all its neighbours and must be updated by "
                             "all of them every round; random pairings would leave them inconsistent")
        if not getattr(uplink, "nestable", True) or getattr(uplink, "requires_server_state", False):
            raise ValueError(f"uplink {uplink.name!r} keeps an error memory; CHOCO's public copies x_hat already "
                             "are that memory (Koloskova et al. 2019): give the inner compressor directly")
        if getattr(uplink, "shared_support", False):
            raise ValueError("a shared random-k mask needs a server; CHOCO nodes compress independently")
    if neighbourhood_rule and getattr(robust, "stateful", False):
        raise ValueError(f"aggregator {robust_name!r} keeps one [d] state across rounds (a server's); gossip would "
                         "share it between every node's neighbourhood. Use a stateless rule or gossip.clipping")
    if neighbourhood_rule and cfg.clipping:
        raise ValueError(f"choose one neighbour rule: gossip.clipping (ClippedGossip) or aggregator={robust_name!r}")
    if cfg.noise and (neighbourhood_rule or cfg.clipping):
        raise ValueError("Muffliato's privacy accounting assumes linear gossip; it is not stated for robust rules")
    if cfg.pairing and neighbourhood_rule:
        raise ValueError(f"aggregator={robust_name!r} over a random pair (2 rows) is not a robust rule")
    if distributed and h.get("record_updates"):
        raise ValueError("record_updates saves what every node received, which no single rank holds; record with "
                         "engine=gossip (bitwise the same run)")
    if distributed and malicious and update_attack is not None:
        raise ValueError("omniscient update attacks forge messages from the receiver's and its neighbours' models, "
                         "which one rank does not hold; run them with engine=gossip (data attacks work in both)")
