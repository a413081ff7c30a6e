"""Server side of a round: decode -> validate -> [DP clip] -> pre-aggregators -> aggregator -> [DP noise] -> optimizer.

The server never trusts a payload: a payload that fails to decode, or decodes
to the wrong length or to non-finite values, is rejected with its reason and the
round goes on with the others. Nothing here knows about speech or SpeechBrain:
it works on flat vectors and payloads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from speechfl.federated.update import UpdateRejected, validate_update

logger = logging.getLogger(__name__)


@dataclass
class Received:
    """What reaches the server from one client."""

    client_id: str
    payload: object  # compression Payload, or a masked tensor under secure aggregation
    n_samples: int
    metadata: Dict[str, float] = field(default_factory=dict)


class UnencodablePayload:
    """What a client sends when it could not encode its update (e.g. NaN-poisoned); always rejected."""

    def __init__(self, reason: str):
        self.reason = reason

    def __len__(self) -> int:
        return 0


@dataclass
class RoundAggregate:
    new_global: torch.Tensor
    delta: torch.Tensor
    accepted: List[str]
    rejected: Dict[str, str]
    weights: Dict[str, float]  # effective contribution per accepted client (sums to ~1), None-free
    dp: Dict[str, float]
    dropped: List[str] = field(default_factory=list)  # secure aggregation: clients whose masks were recovered
    overridden: Dict[str, str] = field(default_factory=dict)  # claimed sample counts the server did not trust


class Server:
    """Holds the global model and runs the aggregation pipeline.

    Parameters
    ----------
    global_flat : Tensor [d]
    optimizer : ServerOptimizer
    uplink : Compressor
        Decodes client payloads.
    robust : RobustPipeline
        Pre-aggregators + aggregator (``weighted_mean`` is FedAvg).
    dp_user : DPFedAvg or None
        User-level DP (McMahan et al. 2018). Replaces the aggregator: clip, sum, noise.
    secagg : SecureAggregation or None
        Only the masked sum is visible; individual payloads cannot be inspected.
        With ``dp_user`` this is distributed DP: clients clip, the server noises the
        unmasked sum (:meth:`_aggregate_secure`).
    sample_counts : dict, optional
        The server's own count of each client's training samples (its partition
        size). A claimed ``n_samples`` is capped at it (:func:`trusted_counts`), so no
        client can buy weight by lying; ``None`` trusts claims (unit use only).
    """

    def __init__(self, *, global_flat, optimizer, uplink, robust, dp_user=None, secagg=None,
                 sample_counts: Optional[Dict[str, int]] = None):
        from speechfl.config.protocols import RobustAggregator, ServerStep, UplinkCompressor, check_protocol

        for key, component, protocol in (("uplink", uplink, UplinkCompressor), ("aggregator", robust, RobustAggregator),
                                         ("server_optimizer", optimizer, ServerStep)):
            check_protocol(component, protocol, key)  # no hasattr probes below: a component lacking one fails here
        self.global_flat = global_flat.clone()
        self.dim = global_flat.numel()
        self.optimizer = optimizer
        self.uplink = uplink
        self.robust = robust
        self.dp_user = dp_user
        self.secagg = secagg
        self.sample_counts = dict(sample_counts) if sample_counts is not None else None
        self.ef21 = None
        if uplink.requires_server_state:
            from speechfl.compression import EF21ServerState

            self.ef21 = EF21ServerState()  # EF21: payloads carry changes c_i; the server aggregates g_i += c_i

    # -- decoding -------------------------------------------------------------------------------
    def _decode(self, rec: Received, ctx) -> torch.Tensor:
        from speechfl.compression import CompressionError

        if isinstance(rec.payload, UnencodablePayload):
            raise UpdateRejected(f"client could not encode its update: {rec.payload.reason}")
        try:
            if self.uplink.shared_support:
                vec = self.uplink.decode_values(rec.payload, ctx)
                validate_update(vec, ctx_support_size(self.uplink, ctx))
            else:
                vec = self.uplink.decode(rec.payload, ctx)
                validate_update(vec, self.dim)
        except CompressionError as exc:
            raise UpdateRejected(f"malformed payload: {exc}") from exc
        if rec.n_samples <= 0:
            raise UpdateRejected(f"non-positive sample count {rec.n_samples}")
        if self.ef21 is not None:
            vec = self.ef21.update(rec.client_id, vec)
        return vec

    def observe(self, rec: Received, ctx) -> torch.Tensor:
        """What the server can see of one client: its decoded update (or masked vector under secure aggregation).

        Raises :class:`UpdateRejected` for a payload the server would reject.
        """
        if isinstance(rec.payload, UnencodablePayload):
            raise UpdateRejected(f"client could not encode its update: {rec.payload.reason}")
        if self.secagg is not None:
            return rec.payload.to(torch.float32)
        from speechfl.compression import CompressionError

        try:
            vec = self.uplink.decode(rec.payload, ctx)  # full [d] for every compressor; no server state touched
        except CompressionError as exc:
            raise UpdateRejected(f"malformed payload: {exc}") from exc
        validate_update(vec, self.dim)
        return vec

    def aggregate(self, received: List[Received], ctx, participants: Optional[List[str]] = None) -> RoundAggregate:
        """Aggregate one round's payloads and step the global model."""
        if self.secagg is not None:
            return self._aggregate_secure(received, ctx, participants or [r.client_id for r in received])
        vectors, accepted, rejected, n = [], [], {}, []
        for rec in received:
            try:
                vectors.append(self._decode(rec, ctx))
                accepted.append(rec.client_id)
                n.append(rec.n_samples)
            except UpdateRejected as exc:
                rejected[rec.client_id] = str(exc)
                logger.warning("round %d: rejected update of client %s: %s", ctx.round, rec.client_id, exc)
        need = min_updates(self.robust) if self.dp_user is None else 1
        if len(vectors) < need:
            logger.warning("round %d: %d valid update(s), %s needs %d; global model unchanged",
                           ctx.round, len(vectors), self.robust.name, need)
            return RoundAggregate(self.global_flat, torch.zeros(self.dim), [], rejected, {}, {})
        n, overridden = trusted_counts(dict(zip(accepted, n)), self.sample_counts)
        stacked = torch.stack(vectors)
        weights = torch.tensor([n[c] for c in accepted], dtype=torch.float32)
        dp_info: Dict[str, float] = {}
        if self.dp_user is not None:
            agg = self.dp_user.aggregate(stacked, ctx.round)
            contrib = torch.full((len(vectors),), 1.0 / len(vectors))
            dp_info = {"clip": float(self.dp_user.last_clip),
                       "clipped_fraction": float((self.dp_user.last_norms > self.dp_user.last_clip).float().mean())}
        elif self.optimizer.client_aware:  # speechfl.fairness: weights from reported losses
            metadata = {r.client_id: r.metadata for r in received}
            agg, coef = self.optimizer.combine(stacked, weights, accepted, [metadata[c] for c in accepted])
            contrib = coef.to(torch.float64) / coef.to(torch.float64).sum()
        else:
            agg = self.robust(stacked, weights)
            contrib = self.robust.last_weights
            if contrib is None:
                contrib = weights / weights.sum()
        if self.uplink.shared_support:
            agg = self.uplink.expand(agg, ctx)
        out = self._step(agg, accepted, rejected, contrib, dp_info)
        out.overridden = overridden
        return out

    def _aggregate_secure(self, received, ctx, participants) -> RoundAggregate:
        """Aggregate through the masked sum; the server never sees one client's vector.

        Without ``dp_user`` clients mask ``n_i * delta_i`` and the server releases
        ``sum_i n_i delta_i / sum_i N_i`` over the survivors, with ``N_i`` the server's
        trusted count (:func:`trusted_counts`). With ``dp_user`` (distributed DP,
        Flower's client-side fixed clipping) clients mask ``clip(delta_i, C)`` and the
        server releases ``(sum_i clip(delta_i, C) + N(0, (z C)^2 I)) / m``
        (:meth:`DPFedAvg.aggregate_clipped_sum`): one client changes the sum by at most
        ``C``, exactly as in central DP-FedAvg, so the same accountant applies (the
        guarantee covers everyone who sees the released model; the server itself unmasks
        the clipped sum before noising it, as in Flower's pattern). Under
        random-k with a shared mask every vector lives on the ``k`` shared coordinates
        and the result is expanded afterwards (linear, so it commutes with the sum).

        A client that could not encode its update, or dropped out after masking, is
        a dropped participant: :meth:`SecureAggregation.unmask_sum` removes its pair
        masks. Fewer survivors than the protocol threshold abort the round (the model
        is unchanged, the reason recorded), never the run.
        """
        from speechfl.privacy.secagg import SecAggAborted

        masked, rejected = {}, {}
        for r in received:
            if isinstance(r.payload, torch.Tensor):
                masked[r.client_id] = r.payload
            else:
                reason = r.payload.reason if isinstance(r.payload, UnencodablePayload) else "sent nothing"
                rejected[r.client_id] = f"dropped out (masks recovered): {reason}"
        for c in participants:
            if c not in masked and c not in rejected:
                rejected[c] = "dropped out (masks recovered): no reply"
        dropped = [c for c in participants if c in rejected]
        for c, why in rejected.items():
            logger.warning("round %d: secure aggregation: client %s %s", ctx.round, c, why)
        unchanged = RoundAggregate(self.global_flat, torch.zeros(self.dim), [], rejected, {}, {}, dropped)
        try:
            summed = self.secagg.unmask_sum(masked, participants, ctx.round)
        except SecAggAborted as exc:
            logger.warning("round %d: secure aggregation aborted: %s", ctx.round, exc)
            unchanged.rejected = {**rejected, "<sum>": f"secure aggregation aborted: {exc}"}
            return unchanged
        shared = self.uplink.shared_support
        try:
            validate_update(summed, ctx_support_size(self.uplink, ctx) if shared else self.dim)
        except UpdateRejected as exc:
            logger.warning("round %d: secure sum rejected: %s", ctx.round, exc)
            unchanged.rejected = {**rejected, "<sum>": str(exc)}
            return unchanged
        survivors = [c for c in participants if c in masked]
        dp_info: Dict[str, float] = {}
        overridden: Dict[str, str] = {}
        if self.dp_user is not None:
            agg = self.dp_user.aggregate_clipped_sum(summed, ctx.round)
            contrib = torch.full((len(survivors),), 1.0 / self.dp_user.expected_clients)
            dp_info = {"clip": float(self.dp_user.last_clip), "clipped_by": "clients",
                       "noise_std_on_sum": float(self.dp_user.update_noise_multiplier * self.dp_user.last_clip)}
        else:
            claimed = {r.client_id: r.n_samples for r in received if r.client_id in masked}
            counts, overridden = trusted_counts(claimed, self.sample_counts)
            total = float(sum(counts[c] for c in survivors))
            agg = summed / total
            contrib = torch.tensor([counts[c] / total for c in survivors])
        if shared:
            agg = self.uplink.expand(agg, ctx)
        out = self._step(agg, survivors, rejected, contrib, dp_info)
        out.dropped, out.overridden = dropped, overridden
        return out

    def _step(self, agg, accepted, rejected, contrib, dp_info) -> RoundAggregate:
        self.global_flat = self.optimizer.step(self.global_flat, agg)
        weights = {c: float(w) for c, w in zip(accepted, contrib.tolist())}
        return RoundAggregate(self.global_flat, agg, accepted, rejected, weights, dp_info)

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> Dict:
        return {
            "global_flat": self.global_flat,
            "optimizer": self.optimizer.state_dict(),
            "robust": self.robust.state_dict() if self.robust is not None else {},
            "dp_user": self.dp_user.state_dict() if self.dp_user is not None else {},
            "ef21": self.ef21.state_dict() if self.ef21 is not None else {},
        }

    def load_state_dict(self, state: Dict) -> None:
        self.global_flat = state["global_flat"].clone()
        self.optimizer.load_state_dict(state["optimizer"])
        if self.robust is not None:
            self.robust.load_state_dict(state["robust"])
        if self.dp_user is not None:
            self.dp_user.load_state_dict(state["dp_user"])
        if self.ef21 is not None:
            self.ef21.load_state_dict(state["ef21"])


def trusted_counts(claimed: Dict[str, int], known: Optional[Dict[str, int]]):
    """Sample counts the server weighs by: each claim capped at the server's own count.

    ``n_i = min(claimed_i, known_i)``: a client may have trained on fewer samples than
    its partition holds, never on more, so a client claiming ``10**9`` samples gets the
    weight of its real partition. Returns ``(counts, overridden)``, ``overridden``
    giving the reason for each capped claim. With ``known=None`` claims are trusted.
    """
    if known is None:
        return dict(claimed), {}
    counts, overridden = {}, {}
    for c, n in claimed.items():
        if c not in known:
            raise ValueError(f"client {c!r} is not in the server's partition (clients: {sorted(known)[:10]})")
        counts[c] = min(int(n), int(known[c]))
        if int(n) > int(known[c]):
            overridden[c] = f"claimed {n} samples, the server's partition holds {known[c]}: weighted by {known[c]}"
    return counts, overridden


def min_updates(robust) -> int:
    """Fewest updates the robust pipeline accepts (Krum needs n > 2f + 2; bucketing in front needs more)."""
    return int(robust.min_rows())


def ctx_support_size(compressor, ctx) -> int:
    return int(compressor.support(ctx).numel())
