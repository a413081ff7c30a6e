"""In-process simulation engine: the round loop, checkpoint/resume, results.json.

Per round: sample clients -> broadcast (downlink payload) -> local training ->
[malicious corruption] -> uplink encode (or secure-aggregation mask) -> server
aggregate -> evaluate every ``eval_every`` rounds -> atomic checkpoint.
Rerunning the same command resumes after the last completed round; because every
random draw is seeded by (seed, round, client), a resumed run ends with
bit-identical parameters. The checkpoint holds tensors and plain containers only
(loaded with ``weights_only=True``) and a fingerprint of the configuration: a
rerun with other settings is refused, naming the differing keys, unless
``resume: fresh`` (see :mod:`speechfl.federated.checkpoint`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import List

import torch
from tqdm.auto import tqdm

from speechfl.federated.checkpoint import (check_fingerprint, check_plain, config_fingerprint, load_checkpoint,
                                           resume_mode, save_checkpoint)
from speechfl.federated.round import InProcessExecutor, round_record
from speechfl.federated.server import Server
from speechfl.federated.setup import FederatedSetup
from speechfl.federated.update import load_flat_params
from speechfl.io import atomic_torch_save
from speechfl.metrics.asr import mean_loss, summarize, transcribe

logger = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


def compression_context(setup: FederatedSetup, round_: int):
    from speechfl.compression import CompressionContext

    return CompressionContext(round=round_, seed=setup.seed, layout=setup.layout.as_list(), dim=setup.layout.dim)


class Simulation:
    """Runs the rounds of one federated experiment in this process."""

    def __init__(self, setup: FederatedSetup, output_folder: str | Path, progress: bool = True, executor=None):
        self.setup = setup
        self.executor = executor if executor is not None else InProcessExecutor(setup, progress)
        self.out = Path(output_folder)
        self.out.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        self.server = Server(global_flat=setup.init_flat, optimizer=setup.server_optimizer, uplink=setup.uplink,
                             robust=setup.robust, dp_user=setup.dp_user, secagg=setup.secagg,
                             sample_counts={c: len(u) for c, u in setup.partition.utterances.items()})
        self.client_view = setup.init_flat.clone()  # the model clients hold (differs under downlink compression)
        self.downlink_state: dict = {"client_seed": 0}
        self.history: List[dict] = []
        self.round = 0
        self.step_offset = 0
        self.vq_initialised: dict = {}  # codebook parameter -> round whose start fit it (public k-means)
        self.fingerprint = config_fingerprint(setup.hparams)
        self.resume_mode = resume_mode(setup.hparams)
        self._resume()

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "round": self.round,
            "step_offset": self.step_offset,
            "vq_initialised": dict(self.vq_initialised),
            "server": self.server.state_dict(),
            "client_view": self.client_view,
            "client_states": self.executor.state_dict(),
            "downlink_state": self.downlink_state,
            "history": self.history,
            "torch_rng": torch.get_rng_state(),
            "config_fingerprint": self.fingerprint,
        }

    def _resume(self) -> None:
        path = self.out / CHECKPOINT
        if not path.exists():
            return
        if self.resume_mode == "fresh":
            self._set_aside(path)
            return
        state = load_checkpoint(path)
        check_fingerprint(state, self.fingerprint, path)
        self.round = state["round"]
        self.step_offset = state["step_offset"]
        self.vq_initialised = dict(state.get("vq_initialised", {}))
        self.server.load_state_dict(state["server"])
        self.client_view = state["client_view"]
        self.executor.load_state_dict(state["client_states"])
        self.downlink_state = state["downlink_state"]
        self.history = state["history"]
        torch.set_rng_state(state["torch_rng"])
        logger.info("resuming after round %d from %s", self.round, path)

    def _set_aside(self, path: Path) -> None:
        """``resume: fresh``: move the old checkpoint and recorded updates to ``superseded-<n>/`` (never mixed in)."""
        n = 1
        while (self.out / f"superseded-{n}").exists():
            n += 1
        dest = self.out / f"superseded-{n}"
        dest.mkdir()
        path.replace(dest / CHECKPOINT)
        if (self.out / "recorded").is_dir():
            (self.out / "recorded").replace(dest / "recorded")
        logger.warning("resume=fresh: the previous run's checkpoint (and recorded updates) moved to %s; starting "
                       "from round 0", dest)

    # -- one round -------------------------------------------------------------------------------
    def _broadcast(self, ctx, n_clients: int) -> int:
        """Update the clients' view of the global model; returns downlink bytes."""
        down = self.setup.downlink
        if down is None:
            from speechfl.compression import get_compressor

            payload = get_compressor("identity").encode(self.server.global_flat, {}, ctx)
            self.client_view = self.server.global_flat.clone()
        else:
            payload = down.encode(self.server.global_flat - self.client_view, self.downlink_state, ctx)
            self.client_view = self.client_view + down.decode(payload, ctx)
        return len(payload) * n_clients

    def run_round(self) -> dict:
        s = self.setup
        r = self.round + 1
        t0 = time.perf_counter()
        ctx = compression_context(s, r)
        sampled = s.sample_clients(r)
        fitted = self._fit_codebooks(r)
        bytes_down = self._broadcast(ctx, len(sampled))

        received, malicious = self.executor.run(sampled, self.client_view, r, self.step_offset, ctx)
        self.step_offset += max(rec.metadata["steps"] for rec in received)
        self._record(r, received, ctx)

        agg = self.server.aggregate(received, ctx, participants=sampled)
        self.round = r
        record = round_record(s, r, sampled, malicious, received, agg, bytes_down)
        if fitted:
            record["vq_codebook_fit"] = fitted
        eval_every = int(s.hparams.get("eval_every", 1))
        if eval_every > 0 and (r % eval_every == 0 or r == int(s.hparams["rounds"])):
            record.update(self.validate())
        record["seconds"] = time.perf_counter() - t0
        self.history.append(record)
        save_checkpoint(self.state_dict(), self.out / CHECKPOINT)
        return record

    def _fit_codebooks(self, r: int) -> List[str]:
        """At the first round that starts at or after a VQ stage's warm-up, replace its codebook in the global
        model by k-means of the public pool's representations (:func:`speechfl.privacy.bottleneck.public_codebook`);
        returns the codebooks fit now."""
        from speechfl.privacy.bottleneck import public_codebook

        fitted = []
        for item in self.setup.vq_inits:
            if item["param"] in self.vq_initialised or self.step_offset < item["warmup_steps"]:
                continue
            book = public_codebook(self.global_model(), item["stage"], item["feats"], item["iterations"],
                                   seed=self.setup.seed + r, device=self.setup.device)
            sl = self.setup.layout.slices()[item["param"]]
            flat = self.server.global_flat.clone()
            flat[sl] = book.reshape(-1).to(flat.dtype)
            self.server.global_flat = flat
            self.vq_initialised[item["param"]] = r
            fitted.append(item["param"])
        return fitted

    def _record(self, r: int, received, ctx) -> None:
        """Opt-in: keep what an honest-but-curious server sees (decoded payloads), for the attackers."""
        rounds = self.setup.hparams.get("record_updates") or []
        if r not in rounds:
            return
        seen = {}
        for rec in received:
            try:
                seen[rec.client_id] = self.server.observe(rec, ctx).to(torch.float16)
            except ValueError:  # a payload the server rejects is not an observation
                continue
        observed = {"round": r, "global": self.client_view.clone(), "updates": seen,
                    "n_samples": {rec.client_id: int(rec.n_samples) for rec in received},
                    "secure_aggregation": self.setup.secagg is not None,
                    "malicious": sorted(self.setup.malicious)}
        check_plain(observed, f"recorded round {r}")  # read back with weights_only=True by `speechfl evaluate`
        atomic_torch_save(observed, self.out / "recorded" / f"round_{r:04d}.pt")

    def global_model(self):
        load_flat_params(self.setup.model, self.setup.layout, self.server.global_flat.to(self.setup.device))
        return self.setup.model

    def validate(self) -> dict:
        model = self.global_model()
        loader = self.setup.eval_loader("valid")
        rates = summarize(transcribe(model, loader, self.setup.corpus.tokenizer, self.setup.device))
        return {"valid_wer": rates["wer"], "valid_cer": rates["cer"],
                "valid_loss": mean_loss(model, loader, self.setup.device)}

    def run(self) -> List[dict]:
        total = int(self.setup.hparams["rounds"])
        bar = tqdm(total=total, initial=self.round, desc="rounds", disable=not self.progress)
        while self.round < total:
            rec = self.run_round()
            bar.update(1)
            bar.set_postfix({k: round(v, 2) for k, v in rec.items() if k in ("train_loss", "valid_cer")})
        bar.close()
        return self.history
