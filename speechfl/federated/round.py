"""The two halves of a round that every engine shares: a client's step and its encoding.

``train_client`` runs one client's local training (with its persistent state:
DP accountant, optimizer state); ``encode_update`` turns its update into what
goes over the wire (a compressed payload, or a secure-aggregation mask). The
in-process simulation and the Flower ClientApp both call these, so they compute
the same thing for the same seed.
"""

from __future__ import annotations

from typing import Dict, List

import torch

from speechfl.federated.client import client_seed, local_train
from speechfl.federated.server import Received, UnencodablePayload
from speechfl.federated.update import Update


def new_client_state(seed: int, client_id: str) -> dict:
    """A client's persistent state (compressor memory, DP accountant, ...), created on first use."""
    return {"client_seed": client_seed(seed, 0, client_id)}


def train_client(setup, client_id: str, client_view: torch.Tensor, round_: int, state: dict,
                 step_offset: int) -> Update:
    """Local training of ``client_id`` from ``client_view`` in round ``round_``."""
    dp = setup.make_dp_sample()
    if dp is not None and "dp" in state:
        dp.load_state_dict(state["dp"])
    upd = local_train(setup.model, setup.layout, client_view, setup.client_dataset(client_id), setup.client_config,
                      client_id=client_id, seed=setup.seed, round_=round_, step_offset=step_offset,
                      label_maps=setup.label_maps, augment=setup.hparams.get("augment"), device=setup.device,
                      dp=dp, state=state, control=scaffold_control(setup), public_pool=setup.public_pool)
    if dp is not None:
        state["dp"] = dp.state_dict()
    return upd


def scaffold_control(setup):
    """SCAFFOLD's server variate ``c``, sent with the model (None for every other server optimizer)."""
    opt = setup.server_optimizer
    return opt.client_control(setup.layout.dim) if hasattr(opt, "client_control") else None


def encode_update(setup, update: Update, state: dict, ctx, participants: List[str]) -> Received:
    """Compress (or mask) ``update`` for the server; records ``bytes_up`` in its metadata.

    A non-finite update, or one the compressor cannot represent
    (:class:`~speechfl.compression.CompressionError`), becomes an
    :class:`UnencodablePayload`: the server rejects it (or, under secure
    aggregation, treats the client as dropped) and the round goes on. Any other
    exception is a bug and propagates.
    """
    from speechfl.compression import CompressionError

    if not bool(torch.isfinite(update.delta).all()):
        n_bad = int((~torch.isfinite(update.delta)).sum())
        payload = UnencodablePayload(f"update has {n_bad} non-finite values")
    elif setup.secagg is not None:
        payload = secure_payload(setup, update, ctx, participants)
    else:
        try:
            payload = setup.uplink.encode(update.delta, state, ctx)
        except CompressionError as exc:
            payload = UnencodablePayload(str(exc))
    size = payload.numel() * payload.element_size() if isinstance(payload, torch.Tensor) else len(payload)
    update.metadata["bytes_up"] = size
    return Received(update.client_id, payload, update.n_samples, update.metadata)


def secure_payload(setup, update: Update, ctx, participants: List[str]):
    """What a client masks under secure aggregation, masked; or why it sends nothing.

    The vector masked is ``v = S(n * delta)`` without user-level DP, and
    ``v = clip(S(delta), C)`` (``C`` = ``dp_user.clip``, :func:`clip_updates`) with it
    (distributed DP: the server noises the sum). ``S`` is the shared random-k
    selection ``x -> x[mask]`` when the uplink is random-k (linear, so
    ``sum_i S(x_i) = S(sum_i x_i)`` and only ``k`` values are masked and sent),
    otherwise the identity; setup refuses every other compressor. A client whose
    vector cannot enter the ring (:class:`SecAggUnencodable`), or that drops out after
    masking (``secagg.dropout``), sends nothing: :class:`UnencodablePayload`.
    """
    from speechfl.privacy.dp_user import clip_updates
    from speechfl.privacy.secagg import SecAggUnencodable

    vec = update.delta
    if getattr(setup.uplink, "shared_support", False):
        vec = vec[setup.uplink.support(ctx)]
    elif getattr(setup.uplink, "name", "identity") != "identity":
        raise ValueError(f"uplink {setup.uplink.name!r} cannot run under secure aggregation (setup should refuse it)")
    if setup.dp_user is not None:
        vec = clip_updates(vec[None], setup.dp_user.clip)[0][0]
    else:
        vec = vec * update.n_samples
    try:
        masked = setup.secagg.mask(update.client_id, vec, participants, ctx.round)
    except SecAggUnencodable as exc:
        return UnencodablePayload(str(exc))
    if setup.secagg.drops_out(update.client_id, ctx.round):
        return UnencodablePayload(f"dropped out after masking (secagg dropout={setup.secagg.dropout})")
    return masked


def corrupt_updates(setup, updates: dict, sampled: List[str], round_: int) -> List[str]:
    """Omniscient update-level attacks (ALIE, IPM, ...): malicious clients replace their deltas.

    Returns the malicious clients of this round (data-level attackers included).
    """
    malicious = sorted(c for c in sampled if c in setup.malicious)
    if setup.update_attack is None or not malicious:
        return malicious
    honest = [c for c in sampled if c not in setup.malicious]
    gen = torch.Generator().manual_seed(client_seed(setup.seed, round_, "<attack>"))
    honest_stack = torch.stack([updates[c].delta for c in honest]) if honest else torch.zeros(0, setup.layout.dim)
    own = torch.stack([updates[c].delta for c in malicious])
    forged = setup.update_attack(honest_stack, own, gen)
    for i, c in enumerate(malicious):
        updates[c].delta = forged[i]
    return malicious


class InProcessExecutor:
    """Runs the sampled clients one after another in this process (the default engine).

    ``run`` returns what reaches the server: one :class:`Received` per client, plus the
    round's malicious clients. Omniscient update attacks (ALIE, IPM, ...) need every
    honest update, which only an in-process executor has.
    """

    def __init__(self, setup, progress: bool = True):
        self.setup = setup
        self.progress = progress
        self.states: Dict[str, dict] = {}

    def state(self, client_id: str) -> dict:
        if client_id not in self.states:
            self.states[client_id] = new_client_state(self.setup.seed, client_id)
        return self.states[client_id]

    def run(self, sampled: List[str], client_view: torch.Tensor, round_: int, step_offset: int, ctx):
        from tqdm.auto import tqdm

        updates = {}
        for cid in tqdm(sampled, desc=f"round {round_} clients", leave=False, disable=not self.progress):
            updates[cid] = train_client(self.setup, cid, client_view, round_, self.state(cid), step_offset)
        malicious = corrupt_updates(self.setup, updates, sampled, round_)
        received = [encode_update(self.setup, updates[c], self.state(c), ctx, sampled) for c in sampled]
        return received, malicious

    def state_dict(self) -> Dict[str, dict]:
        return self.states

    def load_state_dict(self, states: Dict[str, dict]) -> None:
        self.states = dict(states)


def round_record(setup, round_: int, sampled: List[str], malicious: List[str], received: List[Received], agg,
                 bytes_down: int) -> dict:
    """The per-round entry of results.json, from what the server received (same for every engine)."""
    meta = {r.client_id: r.metadata for r in received}
    honest_loss = [meta[c]["train_loss"] for c in sampled
                   if c not in setup.malicious and c in meta and "train_loss" in meta[c]]
    record = {
        "round": round_,
        "clients": list(sampled),
        "malicious": list(malicious),
        "train_loss": _mean(honest_loss),
        "bytes_up": sum(m["bytes_up"] for m in meta.values()),
        "bytes_down": bytes_down,
        "client_seconds": sum(m["seconds"] for m in meta.values()),
        "rejected": agg.rejected,
        "dropped": list(agg.dropped),
        "sample_counts_overridden": dict(agg.overridden),
        "weights": agg.weights,
        "update_norm": float(agg.delta.norm()),
    }
    eps = [m["epsilon"] for m in meta.values() if "epsilon" in m]
    if eps:
        record["epsilon_sample_max"] = max(eps)
    adv = [m["adversary_accuracy"] for m in meta.values() if "adversary_accuracy" in m]
    if adv:
        record["adversary_train_accuracy"] = _mean(adv)
    lam = [m["group_lambda"] for m in meta.values() if "group_lambda" in m]
    if lam:  # client.group_dro (centralized: one pooled client) after this round's last step
        record["group_lambda"] = lam[-1]
    with_ce = [m for m in meta.values() if "adversary_ce" in m]
    if with_ce:  # issue 19: the adversary's loss against the uniform guess's, log C, every round
        record["adversary_ce"] = _mean([m["adversary_ce"] for m in with_ce])
        record["adversary_uniform_ce"] = max(m["adversary_uniform_ce"] for m in with_ce)
    if setup.dp_user is not None:
        record["epsilon"] = user_level_epsilon(setup)
        record["dp"] = agg.dp
    return record


def user_level_epsilon(setup):
    """User-level epsilon so far; ``None`` (never 0) while no noisy sum has been released yet."""
    if not setup.dp_user.history:
        return None
    eps = setup.dp_user.epsilon(float(setup.hparams["dp_user"].get("delta", 1e-3)))
    if not eps > 0:
        raise RuntimeError(f"user-level DP released {len(setup.dp_user.history)} noisy sum(s) but epsilon is {eps}")
    return eps


def _mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None
