"""Client executor that runs the sampled clients on Flower nodes (simulation or deployment).

Plugs into :class:`speechfl.federated.simulation.Simulation` in place of the
in-process executor: ``run`` sends one ``train`` message per sampled client to the
node serving it, through the ServerApp's ``Grid``, and returns the
:class:`~speechfl.federated.server.Received` objects rebuilt from the replies in
the sampled order, so the server pipeline is unchanged. At the first round a
``query`` handshake maps every client id to a node and checks that each node built
the same experiment (:func:`~speechfl.federated.flower.experiment.experiment_fingerprint`).
"""

from __future__ import annotations

import logging
import time
from typing import Dict, Iterable, List, Optional

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict

from speechfl.federated.flower.client_step import check_attack_is_local
from speechfl.federated.flower.experiment import ExperimentSpec, experiment_fingerprint
from speechfl.federated.flower.records import content_to_received, flat_to_arrays
from speechfl.federated.server import Received, UnencodablePayload

logger = logging.getLogger(__name__)
ENGINE_TAG = "flower"


class FlowerExecutor:
    """Runs clients through ``grid``.

    Parameters
    ----------
    grid : flwr.serverapp.Grid
    setup : FederatedSetup
        The server's setup (nodes rebuild theirs from ``spec``).
    spec : ExperimentSpec
        What the nodes build; must give the same experiment as ``setup``.
    reply_timeout : float, optional
        Seconds to wait for a round's replies (None: no limit).
    connect_timeout : float
        Seconds to wait for nodes that together serve every client.
    """

    def __init__(self, grid, setup, spec: ExperimentSpec, *, reply_timeout: Optional[float] = None,
                 connect_timeout: float = 300.0):
        check_attack_is_local(setup)
        self.grid = grid
        self.setup = setup
        self.spec = spec
        self.reply_timeout = reply_timeout
        self.connect_timeout = connect_timeout
        self.fingerprint = experiment_fingerprint(setup)
        self.nodes: Optional[Dict[str, int]] = None  # client id -> node id
        self.last_round: Dict[str, int] = {}  # round after which each client's node state was last produced

    # -- handshake --------------------------------------------------------------------------
    def connect(self) -> Dict[str, int]:
        """Query the nodes until every client of the partition is served by exactly one node."""
        wanted = set(self.setup.partition.client_ids)
        deadline = time.monotonic() + self.connect_timeout
        nodes: Dict[str, int] = {}
        queried: set = set()
        while True:
            new = [n for n in self.grid.get_node_ids() if n not in queried]
            if new:
                msgs = [self._message(MessageType.QUERY, n, {}) for n in new]
                for node, reply in self._exchange(msgs, new, max(1.0, deadline - time.monotonic()), "handshake"):
                    cfg = reply.content["config"]
                    if str(cfg["fingerprint"]) != self.fingerprint:
                        raise RuntimeError(
                            f"node {node} built a different experiment than the server (fingerprints differ): check "
                            "that it has the same corpus and speechfl version, and that the overrides given to the "
                            "engine are those that produced the server's hparams")
                    for cid in cfg["clients"]:
                        if cid in nodes:
                            raise RuntimeError(f"client {cid} is served by two nodes ({nodes[cid]} and {node}); "
                                               "give each SuperNode disjoint partition-ids")
                        nodes[str(cid)] = node
                queried.update(new)
            missing = sorted(wanted - set(nodes))
            if not missing:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"after {self.connect_timeout:.0f} s, no node serves clients {missing[:10]} ({len(missing)} "
                    f"missing); {len(queried)} node(s) connected serve {sorted(nodes)[:10]}")
            time.sleep(0.2)
        self.nodes = nodes
        logger.info("Flower handshake: %d clients on %d nodes", len(nodes), len(set(nodes.values())))
        return nodes

    # -- rounds -----------------------------------------------------------------------------
    def run(self, sampled: List[str], client_view: torch.Tensor, round_: int, step_offset: int, ctx):
        if self.nodes is None:
            self.connect()
        model = flat_to_arrays(client_view, self.setup.layout)
        msgs = []
        for cid in sampled:
            cfg = {"client-id": cid, "round": int(round_), "step-offset": int(step_offset),
                   "state-round": int(self.last_round.get(cid, 0)), "participants": list(sampled)}
            msgs.append(self._message(MessageType.TRAIN, self.nodes[cid], cfg, model, group=str(round_)))
        received = {}
        replies = self._exchange(msgs, sampled, self.reply_timeout, f"round {round_}", allow_missing=True)
        for cid, reply in replies:
            rec = content_to_received(reply.content)
            if rec.client_id != cid:
                raise RuntimeError(f"round {round_}: the reply for client {cid} is from client {rec.client_id}")
            received[cid] = rec
            self.last_round[cid] = int(round_)
        for cid in sampled:
            if cid not in received:  # a dropout: rejected (or, under secure aggregation, its masks recovered)
                logger.warning("round %d: no reply from client %s within %s s; treated as dropped",
                               round_, cid, self.reply_timeout)
                received[cid] = missing_reply(cid, self.reply_timeout)
        malicious = sorted(c for c in sampled if c in self.setup.malicious)
        return [received[c] for c in sampled], malicious

    def evaluate(self, flat: torch.Tensor, clients: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
        """Federated evaluation: each client's mean CTC loss of ``flat`` on its own data, computed on its node."""
        if self.nodes is None:
            self.connect()
        clients = list(self.setup.partition.client_ids if clients is None else clients)
        model = flat_to_arrays(flat.to(torch.float32), self.setup.layout)
        msgs = [self._message(MessageType.EVALUATE, self.nodes[c], {"client-id": c}, model) for c in clients]
        out = {}
        for cid, reply in self._exchange(msgs, clients, self.reply_timeout, "evaluation"):
            metrics = reply.content["metrics"]
            out[cid] = {"loss": float(metrics["loss"]), "n_samples": int(metrics["n-samples"])}
        return out

    # -- messaging --------------------------------------------------------------------------
    def _message(self, kind: str, node: int, config: dict, model: Optional[ArrayRecord] = None,
                 group: str = "") -> Message:
        records = {"config": ConfigRecord({**self.spec.to_config(), **config})}
        if model is not None:
            records["model"] = ArrayRecord.from_array_dict(dict(model.items()))
        return Message(RecordDict(records), dst_node_id=int(node), message_type=kind, group_id=group)

    def _exchange(self, msgs: List[Message], keys: Iterable, timeout: Optional[float], what: str,
                  allow_missing: bool = False):
        """Send ``msgs`` and return ``(key, reply)`` in send order; raise on error replies, and on missing
        replies unless ``allow_missing`` (then the missing keys are left out)."""
        keys = list(keys)
        replies = {r.metadata.reply_to_message_id: r for r in self.grid.send_and_receive(msgs, timeout=timeout)}
        errors, missing, out = [], [], []
        for key, msg in zip(keys, msgs):
            reply = replies.get(msg.metadata.message_id)
            if reply is None:
                missing.append(key)
            elif reply.has_error():
                errors.append(f"{key} (node {msg.metadata.dst_node_id}): {reply.error.reason}")
            else:
                out.append((key, reply))
        if errors:
            raise RuntimeError(f"{what}: {len(errors)} client(s) failed: " + "; ".join(errors))
        if missing and not allow_missing:
            raise TimeoutError(f"{what}: no reply within {timeout} s for {missing[:10]} ({len(missing)})")
        return out

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Only bookkeeping: the clients' states themselves stay on their nodes."""
        return {"engine": ENGINE_TAG, "last_round": dict(self.last_round)}

    def load_state_dict(self, states: dict) -> None:
        if states.get("engine") != ENGINE_TAG:
            raise ValueError("this checkpoint was written by the in-process engine (it holds the clients' states); "
                             "resume it with engine=inprocess, or start the Flower run in a fresh output folder")
        self.last_round = {str(k): int(v) for k, v in states["last_round"].items()}


def missing_reply(client_id: str, timeout: Optional[float]) -> Received:
    """What reaches the server from a client that never replied: nothing to aggregate, nothing sent."""
    return Received(client_id, UnencodablePayload(f"no reply within {timeout} s"), 0,
                    {"bytes_up": 0, "seconds": 0.0, "steps": 0})
