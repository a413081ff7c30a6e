"""One gossip round for the nodes a process hosts, over a transport (in-process or torch.distributed).

Round ``r`` for every hosted node ``i`` (``x_i`` its model, ``N_i`` its neighbours):

1. local training from ``x_i`` (the federated client step, :func:`speechfl.federated.round.train_client`,
   with the node's persistent state) gives ``delta_i``; the half step is ``h_i = x_i + delta_i``
   (Muffliato: ``x_i + clip(delta_i, C) + noise``);
2. messages. D-PSGD: ``h_i`` as an identity payload. CHOCO-SGD (Koloskova, Stich & Jaggi 2019,
   Alg. 2): ``q_i = Q(h_i - x_hat_i)`` with the ``uplink`` compressor and the node's compressor
   state; the public copies start at the common initial model ``x0`` (the paper starts them at 0;
   with a shared ``x0`` this only removes the initial copy error). Byzantine nodes send every
   honest neighbour its own forged model (``dissensus``);
3. the transport delivers the bytes; every received payload is decoded and checked
   (:func:`validate_update`): one that fails is dropped and its weight goes back to the receiver;
4. mixing. D-PSGD: ``x_i' = sum_j W_ij h_j`` (or ClippedGossip / a robust rule). CHOCO:
   ``x_hat_j += q_j`` for ``j in N_i + i``, then ``x_i' = h_i + gamma sum_j W_ij (x_hat_j - x_hat_i)``.

Every random draw is seeded by (seed, round, node) and every sum runs in node order, so the
in-process engine and ``gossip-dist`` give bitwise the same models.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set, Tuple

import torch

from speechfl.compression import CompressionContext, get_compressor
from speechfl.decentralized.config import GossipConfig
from speechfl.decentralized.dissensus import forge_for_receiver
from speechfl.decentralized.mixing import (expected_pairing_matrix, metropolis_hastings, random_pairing,
                                           spectral_gap)
from speechfl.decentralized.muffliato import LocalNoise
from speechfl.decentralized.neighbourhood import clipped_gossip, gossip_average, robust_neighbourhood
from speechfl.decentralized.topologies import Graph, build_topology
from speechfl.federated.client import client_seed
from speechfl.federated.round import new_client_state, train_client
from speechfl.federated.update import UpdateRejected, validate_update

logger = logging.getLogger(__name__)
Message = Tuple[int, int]  # (sender, receiver)


@dataclass
class GossipState:
    """What a process holds between rounds (tensors and plain containers: checkpointable as is)."""

    round: int = 0
    x: Dict[int, torch.Tensor] = field(default_factory=dict)  # hosted nodes' models
    x_hat: Dict[int, torch.Tensor] = field(default_factory=dict)  # CHOCO public copies (hosted + neighbours)
    node_states: Dict[str, dict] = field(default_factory=dict)  # per node: compressor memory, DP, step count
    history: List[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"round": self.round, "x": self.x, "x_hat": self.x_hat, "node_states": self.node_states,
                "history": self.history}

    @classmethod
    def from_dict(cls, d: dict) -> "GossipState":
        return cls(round=d["round"], x=dict(d["x"]), x_hat=dict(d["x_hat"]), node_states=dict(d["node_states"]),
                   history=list(d["history"]))


class InProcessTransport:
    """Every node in this process: delivering a message is handing over its bytes."""

    rank, world = 0, 1

    def exchange(self, round_: int, outgoing: Dict[Message, bytes], incoming: Set[Message]) -> Dict[Message, bytes]:
        return {m: outgoing[m] for m in incoming}

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        return t


class GossipCore:
    """The graph, the mixing rule and one round for the hosted nodes (see module doc)."""

    def __init__(self, setup, cfg: GossipConfig, hosted: Optional[List[int]] = None, transport=None):
        self.setup, self.cfg = setup, cfg
        self.ids: List[str] = sorted(setup.partition.client_ids)
        self.graph: Graph = build_topology(cfg.topology, len(self.ids), n_clients=len(self.ids), seed=setup.seed)
        self.w = metropolis_hastings(self.graph)
        # with random pairings, the gap of the run's average mixing matrix (the base graph's W is not used)
        self.gap = spectral_gap(expected_pairing_matrix(self.graph, setup.seed, int(setup.hparams.get("rounds", 1)))
                                if cfg.pairing else self.w)
        self.hosted = list(range(self.graph.n)) if hosted is None else sorted(hosted)
        self.transport = transport if transport is not None else InProcessTransport()
        self.byzantine = {k for k, c in enumerate(self.ids) if c in setup.malicious}
        self.honest = [k for k in range(self.graph.n) if k not in self.byzantine]
        self.noise = LocalNoise(**cfg.noise) if cfg.noise else None
        self.identity = get_compressor("identity")
        self.robust_rule = getattr(setup.robust, "name", "") not in ("mean", "weighted_mean")
        self._check_neighbourhoods()

    # -- setup checks --------------------------------------------------------------------------
    def _check_neighbourhoods(self) -> None:
        if self.robust_rule:
            need = int(self.setup.robust.min_rows())
            small = [(self.ids[i], self.graph.degree(i) + 1) for i in range(self.graph.n)
                     if self.graph.degree(i) + 1 < need]
            if small:
                raise ValueError(f"aggregator {self.setup.robust.name!r} needs {need} rows but node(s) "
                                 f"{[s[0] for s in small[:5]]} have closed neighbourhoods of {small[0][1]} on "
                                 f"topology {self.graph.name!r}")
        attack = self.setup.update_attack
        if self.byzantine and attack is not None and getattr(attack, "min_honest", 0):
            for i in self.honest:
                nb = self.graph.neighbours(i)
                if any(j in self.byzantine for j in nb):
                    h = sum(1 for j in nb if j not in self.byzantine)
                    if h < attack.min_honest:
                        raise ValueError(f"attack {attack.name!r} needs {attack.min_honest} honest neighbours of its "
                                         f"target, node {self.ids[i]} has {h} on topology {self.graph.name!r}")

    def initial_state(self) -> GossipState:
        st = GossipState()
        for i in self.hosted:
            st.x[i] = self.setup.init_flat.clone()
        if self.cfg.algorithm == "choco":
            # Every node starts from the same x0, which all of them know: x_hat = x0 (zero initial copy error)
            # rather than the paper's x_hat = 0, so Q codes the local progress from the start, not x0 itself.
            for j in self.known():
                st.x_hat[j] = self.setup.init_flat.clone()
        for i in self.hosted:
            st.node_states[self.ids[i]] = dict(new_client_state(self.setup.seed, self.ids[i]), step_offset=0)
        return st

    def known(self) -> List[int]:
        """Hosted nodes and their neighbours (whose public copies a CHOCO process keeps)."""
        out = set(self.hosted)
        for i in self.hosted:
            out.update(self.graph.neighbours(i))
        return sorted(out)

    def mixing_row(self, round_: int) -> torch.Tensor:
        return random_pairing(self.graph, self.setup.seed, round_) if self.cfg.pairing else self.w

    # -- one round -----------------------------------------------------------------------------
    def run_round(self, st: GossipState) -> dict:
        s, r = self.setup, st.round + 1
        t0 = time.perf_counter()
        ctx = CompressionContext(round=r, seed=s.seed, layout=s.layout.as_list(), dim=s.layout.dim)
        w = self.mixing_row(r)
        active = {i: [j for j in self.graph.neighbours(i) if w[i, j] > 0] for i in range(self.graph.n)}

        half, meta = {}, {}
        for i in self.hosted:
            nid = self.ids[i]
            state = st.node_states[nid]
            upd = train_client(s, nid, st.x[i], r, state, state["step_offset"])
            state["step_offset"] += int(upd.metadata["steps"])
            if self.noise is not None and i not in self.byzantine:
                half[i] = self.noise.apply(st.x[i], upd.delta, s.seed, r, nid)
            else:
                half[i] = st.x[i] + upd.delta
            meta[i] = upd.metadata

        outgoing, sent_bytes = self._messages(st, half, active, w, ctx, r)
        incoming = {(j, i) for i in self.hosted for j in active[i]}
        if self.cfg.algorithm == "choco":  # a node's own q_i updates its own public copy too
            incoming |= {(i, i) for i in self.hosted}
        got = self.transport.exchange(r, outgoing, incoming)

        rejected: Dict[str, str] = {}
        new_x = self._mix(st, half, got, active, w, ctx, rejected)
        st.x = new_x
        st.round = r
        return {"meta": meta, "sent_bytes": sent_bytes, "rejected": rejected, "half": half,
                "seconds": time.perf_counter() - t0}

    def _messages(self, st, half, active, w, ctx, r) -> Tuple[Dict[Message, bytes], Dict[int, int]]:
        s = self.setup
        out: Dict[Message, bytes] = {}
        sent: Dict[int, int] = {}
        for i in self.hosted:
            if self.cfg.algorithm == "choco":
                payload = s.uplink.encode(half[i] - st.x_hat[i], st.node_states[self.ids[i]], ctx).data
                out[(i, i)] = payload
                for j in active[i]:
                    out[(i, j)] = payload
                sent[i] = len(payload) * len(active[i])
                continue
            payload = self.identity.encode(half[i], {}, ctx).data
            sent[i] = 0
            for j in active[i]:
                msg = payload
                if i in self.byzantine and j not in self.byzantine and s.update_attack is not None:
                    msg = self._forge(i, j, half, w, ctx, r)
                out[(i, j)] = msg
                sent[i] += len(msg)
        return out, sent

    def _forge(self, b: int, target: int, half, w, ctx, r) -> bytes:
        """Byzantine node ``b``'s message to honest ``target`` (omniscient: in-process engine only)."""
        nb = self.graph.neighbours(target)
        hon = [j for j in nb if j not in self.byzantine]
        byz = [j for j in nb if j in self.byzantine]
        gen = torch.Generator().manual_seed(client_seed(self.setup.seed, r, f"<attack>|{self.ids[target]}"))
        forged = forge_for_receiver(self.setup.update_attack, half[target], [half[j] for j in hon],
                                    torch.tensor([float(w[target, j]) for j in hon], dtype=torch.float64),
                                    [half[j] for j in byz],
                                    torch.tensor([float(w[target, j]) for j in byz], dtype=torch.float64), gen)
        return self.identity.encode(forged[byz.index(b)].contiguous(), {}, ctx).data

    def _decode(self, data: bytes, ctx, comp, where: str, rejected: Dict[str, str]) -> Optional[torch.Tensor]:
        from speechfl.compression import Payload

        try:
            vec = comp.decode(Payload(data), ctx)
            validate_update(vec, self.setup.layout.dim)
            return vec
        except (UpdateRejected, ValueError) as exc:
            rejected[where] = str(exc)
            return None

    def _mix(self, st, half, got, active, w, ctx, rejected) -> Dict[int, torch.Tensor]:
        new_x: Dict[int, torch.Tensor] = {}
        if self.cfg.algorithm == "choco":
            q: Dict[int, Optional[torch.Tensor]] = {}
            for (j, k), data in sorted(got.items()):
                if j not in q:
                    q[j] = self._decode(data, ctx, self.setup.uplink, f"{self.ids[j]}", rejected)
            for j in sorted(q):
                if q[j] is not None:
                    st.x_hat[j] = st.x_hat[j] + q[j]
            gamma = float(self.cfg.gamma)
            for i in self.hosted:
                pull = torch.zeros_like(half[i])
                for j in active[i]:
                    pull.add_(st.x_hat[j] - st.x_hat[i], alpha=float(w[i, j]))
                new_x[i] = half[i] + gamma * pull
            return new_x
        for i in self.hosted:
            received = {}
            for j in active[i]:
                vec = self._decode(got[(j, i)], ctx, self.identity, f"{self.ids[j]}->{self.ids[i]}", rejected)
                if vec is not None:
                    received[j] = vec
            if self.cfg.clipping is not None:
                clipping = self.cfg.clipping or {}
                new_x[i] = clipped_gossip(i, half[i], received, w[i], clipping.get("radius"),
                                          int(clipping.get("farthest", 1)))
            elif self.robust_rule and received:
                new_x[i] = robust_neighbourhood(i, half[i], received, self.setup.robust)
            else:
                new_x[i] = gossip_average(i, half[i], received, w[i])
        return new_x
