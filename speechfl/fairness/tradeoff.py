"""The accuracy x privacy x fairness trade-off of one finished run, at group and individual level.

* :func:`gender_gap`: per-gender test CER/WER and the signed F - M gap.
* :func:`privacy_group_gaps`: per-group success of every privacy attack in ``privacy.reports``
  (speaker identification top-1 and EER per family, membership AUC, source inference by the
  client's gender) and the gap between groups (fairness *of* privacy).
* :func:`individual_level`: per-speaker privacy risk on the *test* speakers (the speakers whose
  WER is measured) and who pays (:func:`speechfl.metrics.individual.who_pays`). The attackers
  work on the encoder representations of each test speaker's utterances, split into enrolment
  (even positions) and probes (odd positions): the speaker-attacker families of ``speechfl
  evaluate`` (linear, MLP, x-vector, ECAPA) trained afresh on the enrolment utterances with one
  class per test speaker (:func:`speechfl.metrics.individual.trained_trials`), and a
  training-free cosine scorer (:func:`speechfl.metrics.individual.cosine_trials`). A speaker's
  risk is the strongest attacker's (the one with the highest mean risk); ``worst_case`` is the
  maximum over attackers. The cosine scorer on the input Fbank is reported beside it as
  ``raw_fbank_reference`` (what the audio itself leaks; it does not depend on the model, so it
  is never the "strongest attacker" of a model).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from speechfl.metrics.fairness import group_breakdown
from speechfl.metrics.individual import (cosine_trials, individual_privacy, speaker_risks, tradeoff_point,
                                         trained_trials, who_pays)

# the trained families of the individual level when the caller names none (speechfl evaluate passes its own)
INDIVIDUAL_FAMILIES = ("linear", "mlp", "xvector")


def gender_gap(results: Mapping, metric: str = "cer") -> dict:
    """``{"F": x, "M": y, "gap": F - M, "mean": pooled}`` from ``results['test']`` (gap None without both)."""
    groups = results["test"]["by_group"]["gender"]
    out = {g: float(v[metric]) for g, v in sorted(groups.items())}
    out["gap"] = out["F"] - out["M"] if {"F", "M"} <= set(groups) else None
    out["mean"] = float(results["test"][metric])
    return out


def _gap(values: Dict[str, Optional[float]]) -> Optional[float]:
    v = [x for x in values.values() if x is not None]
    return max(v) - min(v) if len(v) >= 2 else None


def privacy_group_gaps(reports: Mapping, client_genders: Optional[Mapping[str, str]] = None) -> dict:
    """Per-group success of each attack in ``results['privacy']['reports']`` and the gap (max - min).

    ``client_genders`` (client -> gender) groups source inference's per-client accuracy. An
    attack absent from ``reports`` is absent from the output.
    """
    out: dict = {}
    for view in ("speaker", "fbank_speaker"):
        rep = reports.get(view)
        if not rep:
            continue
        for fam, res in sorted(rep["families"].items()):
            per = res.get("per_gender") or {}
            top1 = {g: v.get("top1") for g, v in sorted(per.items())}
            eer = {g: v.get("eer") for g, v in sorted(per.items())}
            out[f"{view}/{fam}"] = {"top1": top1, "top1_gap": _gap(top1), "eer": eer, "eer_gap": _gap(eer)}
    mia = reports.get("membership")
    if mia and mia.get("per_group"):
        for variant in sorted(next(iter(mia["per_group"].values()))):
            auc = {g: (v.get(variant) or {}).get("auc") for g, v in sorted(mia["per_group"].items())}
            out[f"membership/{variant}"] = {"auc": auc, "auc_gap": _gap(auc)}
    src = reports.get("source_inference")
    if src and src.get("per_client_accuracy") and client_genders:
        acc = {c: float(a) for c, a in src["per_client_accuracy"].items() if c in client_genders}
        if acc:
            out["source_inference"] = group_breakdown(acc, dict(client_genders))
    return out


def _pooled(frames) -> np.ndarray:
    """Utterance embedding: mean and standard deviation of its frames (statistics pooling)."""
    return np.stack([np.concatenate([f.numpy().mean(axis=0), f.numpy().std(axis=0)]) for f in frames])


def individual_level(run_dir, max_per_speaker: int = 20, device: str = "cpu",
                     families: Sequence[str] = INDIVIDUAL_FAMILIES, seed: int = 0) -> dict:
    """Per-speaker privacy risk beside per-speaker WER on a finished run's test speakers.

    Loads the run folder and calls :func:`individual_level_of`.
    """
    from speechfl.data.dataset import read_manifest
    from speechfl.experiment.corpus import prepare_corpus
    from speechfl.experiment.evaluate import _build_model
    from speechfl.experiment.finished_run import load_finished_run

    run = load_finished_run(run_dir)
    corpus = prepare_corpus(run.hparams, progress=False)
    model = _build_model(run, read_manifest(corpus.manifests["train"]), device)
    model.load_state_dict(run.state)
    return individual_level_of(model, corpus, run.results, max_per_speaker=max_per_speaker, device=device,
                               families=families, seed=seed)


def individual_level_of(model, corpus, results: Mapping, max_per_speaker: int = 20, device: str = "cpu",
                        families: Sequence[str] = INDIVIDUAL_FAMILIES, seed: int = 0) -> dict:
    """Per-speaker privacy risk of ``model`` on ``corpus``'s test speakers beside their WER in ``results``.

    Returns ``{"attackers", "strongest_attacker", "risk", "worst_case", "detail", "who_pays",
    "privacy_by_gender", "tradeoff_point", "genders", "left_out", "raw_fbank_reference"}`` (see the module docstring), or
    ``{"skipped": reason}`` when fewer than two test speakers have two utterances.
    """
    from speechfl.data.dataset import read_manifest
    from speechfl.experiment.evaluate import extract

    rows = sorted(read_manifest(corpus.manifests["test"]), key=lambda r: (r["spk_id"], r["ID"]))
    kept, count = [], {}
    for r in rows:
        if count.get(r["spk_id"], 0) < max_per_speaker:
            kept.append(r["ID"])
            count[r["spk_id"]] = count.get(r["spk_id"], 0) + 1
    if sum(n >= 2 for n in count.values()) < 2:
        return {"skipped": f"needs two test speakers with >= 2 utterances, have {dict(sorted(count.items()))}"}
    reps, fbank = extract(model, corpus.manifests["test"], kept, corpus, device)
    genders = dict(zip(reps.spk_ids, reps.genders))
    per_attacker, left = {}, []
    scores, true, speakers, left = cosine_trials(_pooled(reps.frames), reps.spk_ids)
    per_attacker["representations/cosine"] = speaker_risks(scores, true, speakers)
    for family in families:  # trained afresh on the enrolment half of each test speaker's utterances
        scores, true, speakers, _ = trained_trials(reps.frames, reps.spk_ids, family, seed=seed)
        per_attacker[f"representations/{family}"] = speaker_risks(scores, true, speakers)
    ind = individual_privacy(per_attacker)
    # the same attacker on the input Fbank: what the raw audio leaks whatever the model (a reference, not a
    # success against the model, so it never counts as the strongest attacker)
    raw = speaker_risks(*cosine_trials(_pooled(fbank.frames), fbank.spk_ids)[:3])
    raw_reference = {"mean": float(np.mean([r.risk for r in raw.values()])),
                     "risk": {s: r.risk for s, r in sorted(raw.items())}}
    wer = {s: float(v["wer"]) for s, v in results["test"]["by_speaker"].items()}
    pays = who_pays(wer, ind.risk, genders)
    group_wer = {g: float(v["wer"]) for g, v in results["test"]["by_group"]["gender"].items()}
    return {"attackers": ind.per_attacker_mean, "strongest_attacker": ind.strongest_attacker, "risk": ind.risk,
            "worst_case": ind.worst_case, "detail": ind.detail, "who_pays": pays.to_dict(),
            "privacy_by_gender": group_breakdown(ind.risk, genders),
            "tradeoff_point": tradeoff_point(mean_wer=float(results["test"]["wer"]), group_wer=group_wer,
                                             attacker_success=ind.per_attacker_mean[ind.strongest_attacker],
                                             individual_risk=ind.risk),
            "genders": {s: genders[s] for s in ind.risk}, "left_out": left, "raw_fbank_reference": raw_reference}


def client_genders(results: Mapping) -> Dict[str, str]:
    """Client -> gender from ``results['partition']['genders']`` (clients holding one gender only)."""
    genders = (results.get("partition") or {}).get("genders") or {}
    return {c: g[0] for c, g in genders.items() if isinstance(g, list) and len(set(g)) == 1}


def evaluation_sections(reports: Mapping, results: Mapping, model, corpus, device: str = "cpu",
                        max_per_speaker: int = 20, families: Sequence[str] = INDIVIDUAL_FAMILIES,
                        seed: int = 0) -> dict:
    """What ``speechfl evaluate`` adds under ``fairness``: ``privacy_by_group`` and ``individual_privacy``."""
    return {"privacy_by_group": privacy_group_gaps(reports, client_genders(results)),
            "individual_privacy": individual_level_of(model, corpus, results, max_per_speaker=max_per_speaker,
                                                      device=device, families=families, seed=seed)}
