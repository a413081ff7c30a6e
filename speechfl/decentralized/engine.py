"""The gossip engine (``engine: gossip``): every speaker-node in this process, resumable, recorded.

Per round: :meth:`GossipCore.run_round` (local steps -> messages -> mixing), then the
network metrics (consensus distance ``1/h sum_i ||x_i - xbar||^2`` over the ``h`` honest
nodes, bytes each node sent), validation of the honest nodes' average ``xbar`` every
``eval_every`` rounds, optional recording of what the nodes received, and an atomic
checkpoint (tensors and plain containers, read back with ``weights_only=True``, tied to the
configuration's fingerprint): rerunning the same command resumes after the last completed
round with bit-identical models.

The run's "global" model (what ``results.json``'s ``test`` section and ``model.pt`` hold) is
the honest nodes' average ``xbar``; the engine adds results.json's ``decentralized`` section
(:meth:`GossipEngine.section`: topology, spectral gap, consensus distance and bytes per node
per round, and the CER of ``gossip.eval_nodes`` honest nodes' own models with their spread).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from tqdm.auto import tqdm

from speechfl.decentralized.config import GossipConfig, check_composition
from speechfl.decentralized.core import GossipCore, GossipState
from speechfl.federated.checkpoint import (check_fingerprint, config_fingerprint, load_checkpoint, resume_mode,
                                           save_checkpoint)
from speechfl.federated.engines import register_engine
from speechfl.federated.update import load_flat_params
from speechfl.io import atomic_torch_save
from speechfl.metrics.asr import mean_loss, summarize, transcribe

logger = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
NODES = "nodes.pt"


class GossipEngine:
    """Runs the rounds of one decentralized experiment (all nodes, or the ones a rank hosts)."""

    def __init__(self, setup, out, progress: bool = True, transport=None, hosted=None, distributed: bool = False):
        self.setup = setup
        self.cfg = GossipConfig.from_hparams(setup.hparams)
        check_composition(setup, self.cfg, distributed)
        self.core = GossipCore(setup, self.cfg, hosted=hosted, transport=transport)
        self.out = Path(out)
        self.progress = progress
        self.distributed = distributed
        self.lead = self.core.transport.rank == 0
        self.state = self.core.initial_state()
        if not distributed:
            self._resume()

    # -- checkpoint ------------------------------------------------------------------------------
    def _resume(self) -> None:
        path = self.out / CHECKPOINT
        if not path.exists() or resume_mode(self.setup.hparams) == "fresh":
            return
        saved = load_checkpoint(path)
        check_fingerprint(saved, config_fingerprint(self.setup.hparams), path)
        if "gossip" not in saved:
            raise ValueError(f"{path} is not a gossip checkpoint (another engine wrote it); use another output_folder")
        self.state = GossipState.from_dict(saved["gossip"])
        logger.info("resuming gossip after round %d from %s", self.state.round, path)

    def _save(self) -> None:
        save_checkpoint({"round": self.state.round, "gossip": self.state.to_dict(),
                         "config_fingerprint": config_fingerprint(self.setup.hparams)}, self.out / CHECKPOINT)

    # -- network-wide numbers (summed over ranks) -----------------------------------------------
    def _network(self, out: dict) -> Tuple[torch.Tensor, dict]:
        core, st = self.core, self.state
        honest = [i for i in core.hosted if i not in core.byzantine]
        d = self.setup.layout.dim
        losses = [out["meta"][i]["train_loss"] for i in honest]
        scalars = torch.tensor([
            sum(float(st.x[i].double().pow(2).sum()) for i in honest),
            sum(losses), len(losses), sum(out["sent_bytes"].values()),
            sum(m["seconds"] for m in out["meta"].values()),
        ], dtype=torch.float64)
        total = torch.zeros(d, dtype=torch.float64)
        for i in honest:
            total += st.x[i].double()
        packed = core.transport.all_sum(torch.cat([scalars, total]))
        s2, loss_sum, n_loss, sent, secs = packed[:5].tolist()
        h = len(core.honest)
        mean = packed[5:] / h
        cd = max(0.0, s2 / h - float(mean.pow(2).sum()))
        return mean.to(torch.float32), {"consensus_distance": cd, "train_loss": loss_sum / n_loss if n_loss else None,
                                        "bytes_up": int(sent), "client_seconds": secs}

    def gather_nodes(self, which: Optional[List[int]] = None) -> Dict[int, torch.Tensor]:
        """Every (or ``which``) node's model on every rank: a sum where only the host adds a non-zero (exact)."""
        which = list(range(self.core.graph.n)) if which is None else which
        d = self.setup.layout.dim
        buf = torch.zeros(len(which), d, dtype=torch.float32)
        for k, i in enumerate(which):
            if i in self.state.x:
                buf[k] = self.state.x[i]
        buf = self.core.transport.all_sum(buf)
        return {i: buf[k].clone() for k, i in enumerate(which)}

    # -- rounds ----------------------------------------------------------------------------------
    def run_round(self, prev_mean: torch.Tensor) -> Tuple[dict, torch.Tensor]:
        s, core = self.setup, self.core
        out = core.run_round(self.state)
        r = self.state.round
        mean, net = self._network(out)
        n = core.graph.n
        record = {
            "round": r, "clients": list(core.ids), "malicious": sorted(s.malicious),
            "train_loss": net["train_loss"], "bytes_up": net["bytes_up"], "bytes_down": 0,
            "client_seconds": net["client_seconds"], "rejected": out["rejected"], "weights": {},
            "update_norm": float((mean - prev_mean).norm()),
            "consensus_distance": net["consensus_distance"], "bytes_per_node": net["bytes_up"] / n,
        }
        eps = [m["epsilon"] for m in out["meta"].values() if "epsilon" in m]
        if eps:  # local DP-SGD (dp_sample) on the nodes this process hosts
            record["epsilon_sample_max"] = max(eps)
        self._record(r, out)
        eval_every = int(s.hparams.get("eval_every", 1))
        if self.lead and eval_every > 0 and (r % eval_every == 0 or r == int(s.hparams["rounds"])):
            record.update(self.validate(mean))
        record["seconds"] = out["seconds"]
        self.state.history.append(record)
        if not self.distributed:
            self._save()
        return record, mean

    def _record(self, r: int, out: dict) -> None:
        """Opt-in (``record_updates``): what the nodes' neighbours received, for the privacy attackers.

        ``updates[j]`` is node ``j``'s message minus its model before the round: its local update as
        the coalition of its neighbours reconstructs it (under Muffliato it includes the noise);
        ``models[j]`` is the message itself (the half-step model each neighbour of ``j`` received);
        ``global`` is the honest nodes' average before the round, so ``global + updates[j]`` (what
        the federated attackers use, e.g. source inference) equals ``j``'s model only at consensus.
        ``neighbours`` says which nodes received what.
        """
        if r not in (self.setup.hparams.get("record_updates") or []) or self.distributed:
            return
        core = self.core
        prev = out["half"]
        seen = {core.ids[j]: (prev[j] - self._before[j]).to(torch.float16) for j in sorted(prev)}
        atomic_torch_save({
            "round": r, "global": self._before_mean.clone(), "updates": seen,
            "models": {core.ids[j]: prev[j].to(torch.float16) for j in sorted(prev)},
            "n_samples": {c: len(self.setup.partition.utterances[c]) for c in core.ids},
            "secure_aggregation": False, "malicious": sorted(self.setup.malicious),
            "observer": "neighbours", "neighbours": {core.ids[i]: [core.ids[j] for j in core.graph.neighbours(i)]
                                                     for i in range(core.graph.n)},
        }, self.out / "recorded" / f"round_{r:04d}.pt")

    def validate(self, mean: torch.Tensor) -> dict:
        model = self.model_at(mean)
        loader = self.setup.eval_loader("valid")
        rates = summarize(transcribe(model, loader, self.setup.corpus.tokenizer, self.setup.device))
        return {"valid_wer": rates["wer"], "valid_cer": rates["cer"],
                "valid_loss": mean_loss(model, loader, self.setup.device)}

    def model_at(self, flat: torch.Tensor):
        load_flat_params(self.setup.model, self.setup.layout, flat.to(self.setup.device))
        return self.setup.model

    def run(self) -> Tuple[List[dict], torch.Tensor, dict]:
        """Train every round; returns (history, honest nodes' average, ``{"decentralized": section}``)."""
        total = int(self.setup.hparams["rounds"])
        mean = self._honest_mean()
        bar = tqdm(total=total, initial=self.state.round, desc="gossip rounds",
                   disable=not (self.progress and self.lead))
        while self.state.round < total:
            self._before = {i: x.clone() for i, x in self.state.x.items()}
            self._before_mean = mean
            rec, mean = self.run_round(mean)
            bar.update(1)
            bar.set_postfix({k: round(v, 3) for k, v in rec.items()
                             if k in ("train_loss", "valid_cer", "consensus_distance") and v is not None})
        bar.close()
        nodes = self.gather_nodes()
        section = {}
        if self.lead:
            atomic_torch_save({self.core.ids[i]: x for i, x in nodes.items()}, self.out / NODES)
            section = self.section(nodes)
        return self.state.history, mean, {"decentralized": section}

    def _honest_mean(self) -> torch.Tensor:
        nodes = self.gather_nodes(self.core.honest)
        acc = torch.zeros(self.setup.layout.dim, dtype=torch.float64)
        for i in self.core.honest:
            acc += nodes[i].double()
        return (acc / len(self.core.honest)).to(torch.float32)

    # -- the decentralized section ---------------------------------------------------------------
    def section(self, nodes: Dict[int, torch.Tensor]) -> dict:
        """The ``decentralized`` results section, from every node's final model ``nodes``."""
        core, cfg = self.core, self.cfg
        hist = self.state.history
        evaluated = core.honest if cfg.eval_nodes is None else core.honest[:int(cfg.eval_nodes)]
        cers = {}
        for i in evaluated:
            model = self.model_at(nodes[i])
            cers[core.ids[i]] = summarize(transcribe(model, self.setup.eval_loader("test"),
                                                     self.setup.corpus.tokenizer, self.setup.device))["cer"]
        vals = list(cers.values())
        mean_cer = sum(vals) / len(vals)
        section = {
            "topology": core.graph.name, "topology_spec": cfg.topology, "n_nodes": core.graph.n,
            "n_edges": len(core.graph.edges), "degrees": [core.graph.degree(i) for i in range(core.graph.n)],
            "algorithm": cfg.algorithm, "gamma": cfg.gamma if cfg.algorithm == "choco" else None,
            "mixing": "random_pairing" if cfg.pairing else "metropolis_hastings",
            "spectral_gap": core.gap,
            "neighbour_rule": ("clipped_gossip" if cfg.clipping is not None else
                               core.setup.robust.name if core.robust_rule else "gossip_average"),
            "byzantine_nodes": sorted(core.ids[i] for i in core.byzantine),
            "consensus_distance": [r["consensus_distance"] for r in hist],
            "bytes_per_node_per_round": [r["bytes_per_node"] for r in hist],
            "node_test": {"evaluated": [core.ids[i] for i in evaluated],
                          "which": "all honest nodes" if len(evaluated) == len(core.honest) else
                          f"the first {len(evaluated)} of {len(core.honest)} honest nodes in id order",
                          "cer": cers, "cer_mean": mean_cer, "cer_min": min(vals), "cer_max": max(vals),
                          "cer_std": math.sqrt(sum((v - mean_cer) ** 2 for v in vals) / len(vals))},
        }
        if core.noise is not None:
            section["muffliato"] = self._privacy()
        return section

    def _privacy(self) -> dict:
        from speechfl.decentralized.muffliato import pairwise_rdp

        core, noise = self.core, self.core.noise
        eps = pairwise_rdp(core.w, noise.noise_multiplier, int(self.setup.hparams["rounds"]), noise.alpha)
        by_dist: Dict[int, List[float]] = {}
        for u in range(core.graph.n):
            dist = core.graph.distances(u)
            for v in range(core.graph.n):
                if u != v:
                    by_dist.setdefault(dist[v], []).append(float(eps[u, v]))
        return {"renyi_order": noise.alpha, "clip": noise.clip, "noise_multiplier": noise.noise_multiplier,
                "pairwise_rdp_max_by_hops": {str(k): max(v) for k, v in sorted(by_dist.items())},
                "pairwise_rdp_max": max(max(v) for v in by_dist.values()),
                "guarantee": "pairwise network Renyi DP against one honest-but-curious node seeing its neighbours' "
                             "messages; no protection against colluding nodes or an observer of every link"}


@register_engine("gossip")
def run_gossip(setup, out: Path, progress: bool):
    """Every speaker-node gossiping in this process (the deterministic embedded default)."""
    engine = GossipEngine(setup, out, progress)
    return engine.run()
