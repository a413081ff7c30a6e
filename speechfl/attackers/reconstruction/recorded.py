"""Reconstruction threats on the rounds a run recorded (``speechfl evaluate``): what the real server saw.

Recorded rounds hold the server's decoded view of every client's update (after
the run's own compressor, error feedback and all), the global model of that
round, and nothing of the clients' data. So here:

* ``labels``: the character set of everything the client trained on that round
  (its partition's transcripts) from its update's CTC head; the sign rule's
  guarantee holds for SGD and Adam clients, the ratio rule assumes SGD;
* ``local_model``: the footprint attack, each update against its own round's
  global model, same client = same speaker (the true local models are not
  recorded, so no recovery error);
* ``inversion`` is not run: the recorded updates are many local Adam steps over
  a client's whole data, which the FedSGD / few-step attack does not model, and
  inverting every client would take hours (the benchmark measures it on
  updates it controls).
"""

from __future__ import annotations

import time
from typing import Dict, List, Sequence

import torch

from speechfl.attackers.reconstruction.labels import recover_char_set, score_sets, true_char_set
from speechfl.attackers.reconstruction.local_model import footprint_eer, footprints
from speechfl.attackers.reconstruction.reports import LabelRecoveryScore, LocalModelScore, ReconstructionReport
from speechfl.attackers.reconstruction.run import HEAD_BIAS, HEAD_WEIGHT
from speechfl.federated.update import ParamLayout

VIEW = "recorded"


def reconstruction_from_recorded(recorded: Sequence[dict], model: torch.nn.Module, layout: ParamLayout,
                                 client_tokens: Dict[str, List[List[int]]], client_speaker: Dict[str, str],
                                 indicator: Sequence[torch.Tensor]) -> ReconstructionReport:
    """Label-set and footprint attacks on recorded rounds (see the module docstring).

    Parameters
    ----------
    recorded : sequence of dict
        ``recorded/round_*.pt`` contents: ``global`` ``[d]`` and ``updates`` {client: ``[d]``}.
    client_tokens : dict
        Client -> token ids of every transcript it trains on (the ground truth).
    client_speaker : dict
        Client -> speaker label (footprint targets: same label).
    indicator : sequence of torch.Tensor
        The footprint attack's indicator utterances ``[T, F]``.
    """
    start = time.perf_counter()
    if not {HEAD_BIAS, HEAD_WEIGHT} <= set(layout.names):
        raise ValueError(f"label recovery reads {HEAD_BIAS!r}/{HEAD_WEIGHT!r}, absent from the model's layout")
    sl = layout.slices()
    shape = dict(zip(layout.names, layout.shapes))[HEAD_WEIGHT]
    deltas, bases, speakers, both, sign = [], [], [], [], []
    notes: Dict[str, str] = {}
    for rec in recorded:
        base = rec["global"].float()
        for c, u in sorted(rec["updates"].items()):
            if c not in client_tokens or c not in client_speaker:
                notes.setdefault("skipped_clients", "")
                notes["skipped_clients"] += f"{c} "
                continue
            u = u.float()
            if u.numel() != layout.dim:
                raise ValueError(f"recorded update of {c!r} has {u.numel()} values, the model's layout {layout.dim}")
            truth = true_char_set(client_tokens[c])
            both.append(score_sets(recover_char_set(u[sl[HEAD_BIAS]], u[sl[HEAD_WEIGHT]].view(shape)), truth))
            sign.append(score_sets(recover_char_set(u[sl[HEAD_BIAS]]), truth))
            deltas.append(u)
            bases.append(base)
            speakers.append(client_speaker[c])
    if not deltas:
        raise ValueError("no recorded update belongs to a client with known transcripts")
    n = len(both)
    labels = LabelRecoveryScore(
        precision=sum(s.precision for s in both) / n, recall=sum(s.recall for s in both) / n,
        f1=sum(s.f1 for s in both) / n, exact=sum(1.0 for s in both if s.n_correct == s.n_pred == s.n_true) / n,
        sign_precision=sum(s.precision for s in sign) / n, sign_recall=sum(s.recall for s in sign) / n,
        sign_f1=sum(s.f1 for s in sign) / n, n_updates=n)
    lm_notes = {"relative_error": "the true local models are not recorded", "cosine": "the true local models are not recorded"}
    try:
        eer_, nt, nn = footprint_eer(footprints(model, layout, bases, deltas, list(indicator)), speakers)
    except ValueError as exc:
        eer_, nt, nn = None, 0, 0
        lm_notes["footprint_eer"] = str(exc)
    local = LocalModelScore(relative_error=None, cosine=None, footprint_eer=eer_, n_updates=n, n_target_trials=nt,
                            n_nontarget_trials=nn, notes=lm_notes)
    notes["inversion"] = ("not run on recorded updates (many local Adam steps over a client's data); "
                          "see benchmarks/bench_compression_privacy.py")
    return ReconstructionReport(labels={VIEW: labels}, inversion={}, local_model={VIEW: local},
                                seconds=time.perf_counter() - start, notes=notes)


def reconstruction_section(run, recorded: Sequence[dict], model: torch.nn.Module, roles, corpus,
                           device: str = "cpu", n_indicator: int = 6) -> dict:
    """The ``privacy.reconstruction`` section of ``speechfl evaluate``: :func:`reconstruction_from_recorded`
    on a finished run, with its cost in ``seconds``, or ``{"skipped": reason}``.

    Ground truth from the run's own partition (same as the other server-side attacks); the
    indicator set is the first ``n_indicator`` utterances of the ``valid`` role, else of the
    ``test`` role (never trained on).
    """
    from speechfl.data.partition import partition_speakers, pooled_partition
    from speechfl.experiment.evaluate import extract
    from speechfl.federated.update import ParamLayout

    start = time.perf_counter()
    hp = run.hparams
    if not recorded:
        return {"skipped": "no recorded rounds (set record_updates)"}
    if any(rec.get("secure_aggregation") for rec in recorded):
        return {"skipped": "secure aggregation: the server only saw masked updates"}
    train_rows = roles.rows["train"]
    part = (pooled_partition(train_rows) if hp.get("engine") == "centralized" else
            partition_speakers(train_rows, int(hp.get("speakers_per_client", 1)), int(hp.get("min_utterances", 1)),
                               int(hp["seed"])))
    text = {r["ID"]: r.get("wrd") for r in train_rows}
    tokens, speaker = {}, {}
    for c, utts in part.utterances.items():
        if all(text.get(u) for u in utts):
            tokens[c] = [corpus.tokenizer.encode(text[u]) for u in utts]
            spks = part.clients[c]
            speaker[c] = spks[0] if len(spks) == 1 else c
    if not tokens:
        return {"skipped": "the training manifest has no transcripts: no ground truth for the character sets"}
    role = next((r for r in ("valid", "test") if roles.rows.get(r)), None)
    if role is None:
        return {"skipped": "no valid or test utterances for the footprint indicator set"}
    held = sorted(roles.rows[role], key=lambda r: r["ID"])[:n_indicator]
    indicator = extract(model, corpus.manifests[role], [r["ID"] for r in held], corpus, device)[1].frames
    report = reconstruction_from_recorded(recorded, model, ParamLayout.from_module(model), tokens, speaker,
                                          indicator)
    out = report.to_dict()
    out["seconds"] = time.perf_counter() - start
    return out
