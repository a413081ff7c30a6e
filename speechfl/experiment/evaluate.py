"""``speechfl evaluate RUN_DIR``: privacy attackers and fairness metrics on a finished run.

Everything is computed afresh from the run's files (results.json, model.pt, recorded/):

* representations: encoder outputs of up to ``max_per_speaker`` utterances of every speaker
  (train, dev and test), plus their raw Fbank (the no-protection reference);
* server-side threats from the opt-in recorded rounds (``record_updates``): update linkage
  (each client's latest recorded update against its earlier ones, see :func:`linkage_sets`),
  gender from every recorded update, and source inference with the local models the server
  can reconstruct for the last recorded round (global model at the round start + decoded update);
* membership inference on the final model: members are training utterances, non-members
  utterances of speakers never trained on; the calibrated variant subtracts each utterance's
  loss under the run's initial model (a per-utterance difficulty reference);
* fairness of the test WER/CER by gender and by speaker, and of the robust aggregator's
  exclusions by gender and by role (honest / malicious).

Adds ``privacy`` and ``fairness`` sections to results.json (schema in the README).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from speechfl.data.dataset import make_dataset, make_loader, read_manifest
from speechfl.io import atomic_write_json, read_json

logger = logging.getLogger(__name__)


def _cap_per_speaker(rows: List[dict], cap: int) -> List[str]:
    by: Dict[str, List[str]] = {}
    for r in sorted(rows, key=lambda r: r["ID"]):
        by.setdefault(r["spk_id"], []).append(r["ID"])
    return [u for spk in sorted(by) for u in by[spk][:cap]]


@torch.no_grad()
def extract(model, csv, ids, corpus, device="cpu"):
    """(representations, fbank) as attacker ``UtteranceSet`` s, plus per-utterance losses."""
    from speechfl.attackers.types import UtteranceSet

    model.eval()
    ds = make_dataset(csv, corpus.tokenizer, corpus.cache, ids=ids)
    reps, fbank, spk, gen, uid = [], [], [], [], []
    for batch in make_loader(ds, 16, shuffle=False):
        feats, lens = batch.feats.data.to(device), batch.feats.lengths.to(device)
        r, rl = model.encode(feats, lens)
        for i in range(len(batch.id)):
            reps.append(r[i, : max(1, int(round(float(rl[i]) * r.shape[1])))].cpu())
            fbank.append(feats[i, : max(1, int(round(float(lens[i]) * feats.shape[1])))].cpu())
        spk += list(batch.spk_id)
        gen += list(batch.gender)
        uid += list(batch.id)
    return (UtteranceSet(frames=reps, spk_ids=spk, genders=gen, utt_ids=uid),
            UtteranceSet(frames=fbank, spk_ids=spk, genders=gen, utt_ids=uid))


@torch.no_grad()
def utterance_losses(model, csv, ids, corpus, device="cpu") -> Dict[str, float]:
    """Per-utterance CTC loss (per reference character) of ``model``."""
    model.eval()
    out: Dict[str, float] = {}
    ds = make_dataset(csv, corpus.tokenizer, corpus.cache, ids=ids)
    for batch in make_loader(ds, 16, shuffle=False):
        o = model(batch.feats.data.to(device), batch.feats.lengths.to(device))
        T = o.log_probs.shape[1]
        in_lens = (o.lengths * T).round().long().clamp(1, T)
        tok, tl = batch.tokens.data, (batch.tokens.lengths * batch.tokens.data.shape[1]).round().long()
        loss = F.ctc_loss(o.log_probs.transpose(0, 1).cpu(), tok, in_lens.cpu(), tl, blank=0, reduction="none",
                          zero_infinity=True)
        for i, u in enumerate(batch.id):
            out[u] = float(loss[i]) / max(int(tl[i]), 1)
    return out


def _recorded(run_dir: Path) -> List[dict]:
    files = sorted((run_dir / "recorded").glob("round_*.pt"))
    return [torch.load(f, weights_only=False) for f in files]


def linkage_sets(recorded: List[dict]):
    """(enroll, probe, history) for the server-side attacks, from every recorded round (oldest first).

    ``history``: client -> its recorded updates in round order. A client seen in two or more
    recorded rounds is a probe with its latest update, enrolled with its earlier ones; a client
    seen once is enrolled only (a distractor). With partial participation this links far more
    clients than two fixed rounds would. ``enroll``/``probe`` are None when fewer than two
    clients are enrolled or nobody was seen twice.
    """
    history: Dict[str, List[torch.Tensor]] = {}
    for rec in recorded:
        for c, u in rec["updates"].items():
            history.setdefault(c, []).append(u.float())
    enroll = {c: torch.stack(us[:-1]) if len(us) > 1 else us[0] for c, us in history.items()}
    probe = {c: us[-1] for c, us in history.items() if len(us) > 1}
    if len(enroll) < 2 or not probe:
        return None, None, history
    return enroll, probe, history


def _update_gender_precondition(updates: Dict[str, torch.Tensor], genders: Optional[Dict[str, str]]) -> Optional[str]:
    """Why gender inference from updates cannot run (held-out evaluation needs 2 clients per gender), or None."""
    if genders is None:
        return "no recorded client speaks for a single gender"
    per: Dict[str, int] = {}
    for c in updates:
        g = genders.get(c, "unknown")
        if g != "unknown":
            per[g] = per.get(g, 0) + 1
    if len(per) < 2 or min(per.values()) < 2:
        return (f"needs at least 2 recorded single-gender clients of each of 2 genders, got {per} "
                "(mixed-gender clients are left out)")
    return None


def _client_gender(partition_genders: Dict[str, List[str]]) -> Optional[Dict[str, str]]:
    """Client -> gender; a client speaking for several genders is "unknown" (left out by the attack).

    None when no client has a single gender (nothing to infer).
    """
    out = {c: (g[0] if len(g) == 1 else "unknown") for c, g in partition_genders.items()}
    return out if any(v != "unknown" for v in out.values()) else None


def exclusion_rates(rounds: List[dict]) -> Dict[str, float]:
    """Share of a client's sampled rounds in which the defense rejected it or gave it < half its fair weight."""
    sampled: Dict[str, int] = {}
    excluded: Dict[str, int] = {}
    for r in rounds:
        n = max(len(r["weights"]), 1)
        for c in r["clients"]:
            sampled[c] = sampled.get(c, 0) + 1
            w = r["weights"].get(c)
            if c in r["rejected"] or w is None or w < 0.5 / n:
                excluded[c] = excluded.get(c, 0) + 1
    return {c: excluded.get(c, 0) / k for c, k in sampled.items()}


def _summary(report: dict, results: dict) -> dict:
    """Flat, fixed-shape summary of the privacy section (what sweep tables read)."""
    def strongest_of(rep):
        if not rep:
            return {"skipped": "not computed"}
        fam = rep["families"][rep["strongest_id"]]
        return {"family": rep["strongest_id"], "top1": rep["best_top1"], "chance": rep["chance"],
                "eer": rep["best_eer"], "eer_family": rep["strongest_verification"],
                "eer_same_gender": fam.get("eer_same_gender")}

    notes = report.get("notes", {})
    link = report.get("update_linkage")
    src = report.get("source_inference")
    mia = report.get("membership")
    return {
        "representations": {"strongest": strongest_of(report.get("speaker"))},
        "fbank": {"strongest": strongest_of(report.get("fbank_speaker"))},
        "gender_inference": ({"auc": report["gender"]["auc"], "accuracy": report["gender"]["accuracy"]}
                             if report.get("gender") else {"skipped": notes.get("gender", "not computed")}),
        "linkage": ({"accuracy": link["accuracy"], "chance": link["chance"], "eer": link["eer"]} if link
                    else {"skipped": notes.get("update_linkage", "not computed")}),
        "update_gender": ({k: report["update_gender"][k] for k in ("auc", "accuracy", "chance", "strongest", "n_items")}
                          if report.get("update_gender")
                          else {"skipped": notes.get("update_gender", "not computed")}),
        "source_inference": ({"accuracy": src["accuracy"], "chance": src["chance"]} if src
                             else {"skipped": notes.get("source_inference", "not computed")}),
        "membership": ({"auc": mia["best_auc"], "strongest": mia["strongest"],
                        "tpr_at_1fpr": max((s or {}).get("tpr_at_1pct_fpr", 0.0) for s in mia["utterance"].values())}
                       if mia else {"skipped": notes.get("membership", "not computed")}),
    }


def _gender_fairness(test: dict) -> dict:
    groups = test["by_group"]["gender"]
    out = {"groups": groups}
    if {"F", "M"} <= set(groups):
        out["gap_abs"] = groups["F"]["wer"] - groups["M"]["wer"]  # signed: > 0 means women fare worse
        lo = min(groups["F"]["wer"], groups["M"]["wer"])
        out["gap_rel"] = abs(out["gap_abs"]) / lo if lo > 0 else None
    else:
        out["gap_abs"] = None
        out["gap_rel"] = None
        out["note"] = f"needs F and M test speakers, have {sorted(groups)}"
    out["worst_group"] = max(groups, key=lambda g: groups[g]["wer"])
    return out


def evaluate_run(run_dir, *, attackers: Optional[Sequence[str]] = None, baseline: Optional[str] = None,
                 max_per_speaker: int = 20, seed: int = 0, progress: bool = True) -> dict:
    """Run the privacy attackers and fairness metrics on a finished run; returns updated results."""
    from speechfl.attackers import SPEAKER_ATTACKERS
    from speechfl.attackers.speaker_id import DEFAULT_FAMILIES
    from speechfl.attackers.suite import fairness_section, run_privacy_suite
    from speechfl.data.partition import partition_speakers, pooled_partition
    from speechfl.experiment.corpus import prepare_corpus
    from speechfl.experiment.run import load_run_model
    from speechfl.federated.update import ParamLayout, load_flat_params
    from speechfl.metrics.fairness import UttResult

    start = time.time()
    run_dir = Path(run_dir)
    if not (run_dir / "results.json").exists() or not (run_dir / "model.pt").exists():
        raise FileNotFoundError(f"{run_dir} is not a finished run (needs results.json and model.pt)")
    families = list(attackers) if attackers else list(DEFAULT_FAMILIES)
    unknown = [f for f in families if f not in SPEAKER_ATTACKERS]
    if unknown:
        raise ValueError(f"unknown attacker families {unknown}; valid: {', '.join(SPEAKER_ATTACKERS.names())}")
    hparams, results, state = load_run_model(run_dir)
    device = str(hparams.get("device", "cpu"))
    corpus = prepare_corpus(hparams, progress=False)
    model = hparams["model"].to(device)  # freshly built with the run's seed: the initial model
    rows = {role: read_manifest(csv) for role, csv in corpus.manifests.items()}
    if hparams.get("adversary"):
        # The run's updates and model.pt include the adversary heads: rebuild them so layouts match.
        from speechfl.privacy.adversarial import build_adversary

        label_maps = {"speaker": {s: i for i, s in enumerate(sorted({r["spk_id"] for r in rows["train"]}))},
                      "gender": {g: i for i, g in enumerate(sorted({r["gender"] for r in rows["train"]}))}}
        model.attach_adversary(build_adversary(hparams["adversary"], rep_dim=model.rep_dim, label_maps=label_maps,
                                               total_steps=1, seed=int(hparams["seed"])).to(device))

    role_of = {r["ID"]: role for role, rs in rows.items() for r in rs}

    def losses_of(m, ids):
        out: Dict[str, float] = {}
        for role in ("train", "valid", "test"):
            sel = [u for u in ids if role_of[u] == role]
            if sel:
                out.update(utterance_losses(m, corpus.manifests[role], sel, corpus, device))
        return out

    # Membership reference first: losses under the initial model (per-utterance difficulty).
    members = _cap_per_speaker(rows["train"], max(1, max_per_speaker // 2))
    nonmembers = _cap_per_speaker(rows["valid"] + rows["test"], max(1, max_per_speaker // 2))
    ref = losses_of(model, members + nonmembers)
    model.load_state_dict(state)

    # Representations and Fbank of every speaker (capped), from all splits.
    parts = [extract(model, corpus.manifests[role], _cap_per_speaker(rows[role], max_per_speaker), corpus, device)
             for role in ("train", "valid", "test")]
    reps, fbank = _concat([p[0] for p in parts]), _concat([p[1] for p in parts])
    base_reps = None
    if baseline:
        bh, _, bstate = load_run_model(baseline)
        bmodel = bh["model"].to(device)
        bmodel.load_state_dict({k: v for k, v in bstate.items() if not k.startswith("adversary.")})
        base_reps = _concat([extract(bmodel, corpus.manifests[role], list(p[0].utt_ids), corpus, device)[0]
                             for role, p in zip(("train", "valid", "test"), parts)])

    # Membership on the final model.
    fin = losses_of(model, members + nonmembers)
    meta = {r["ID"]: r for rs in rows.values() for r in rs}
    membership = dict(
        member_scores=[fin[u] for u in members], nonmember_scores=[fin[u] for u in nonmembers],
        member_groups=[meta[u]["gender"] for u in members], nonmember_groups=[meta[u]["gender"] for u in nonmembers],
        member_speakers=[meta[u]["spk_id"] for u in members],
        nonmember_speakers=[meta[u]["spk_id"] for u in nonmembers],
        reference_member_scores=[ref[u] for u in members], reference_nonmember_scores=[ref[u] for u in nonmembers])

    # Server-side threats from recorded rounds.
    recorded = _recorded(run_dir)
    enroll = probe = updates = genders = losses = owner = client_ids = None
    server_side_note = gender_note = None
    if recorded and len(recorded[-1]["updates"]) < 2:
        server_side_note = "fewer than 2 clients per recorded round (e.g. a centralized run): nothing to link or infer"
    if recorded and not recorded[-1].get("secure_aggregation") and server_side_note is None:
        last = recorded[-1]
        genders = _client_gender(results["partition"].get("genders", {}))
        enroll, probe, history = linkage_sets(recorded)
        updates = {c: torch.stack(us) for c, us in history.items()}  # every recorded update of a client
        gender_note = _update_gender_precondition(updates, genders)
        if gender_note:
            genders = None
        # Source inference: local model of client c = global at round start + its decoded update.
        part = (pooled_partition(rows["train"]) if hparams.get("engine") == "centralized" else
                partition_speakers(rows["train"], int(hparams.get("speakers_per_client", 1)),
                                   int(hparams.get("min_utterances", 1)), int(hparams["seed"])))
        client_ids = sorted(c for c in last["updates"] if c in part.utterances)
        if len(client_ids) >= 2:
            known = [u for c in client_ids for u in sorted(part.utterances[c])[:4]]
            owner = torch.tensor([client_ids.index(c) for c in client_ids for _ in sorted(part.utterances[c])[:4]])
            layout = ParamLayout.from_module(model)
            cols = []
            full_state = model.state_dict()
            for c in client_ids:
                load_flat_params(model, layout, (last["global"] + last["updates"][c].float()).to(device))
                lc = utterance_losses(model, corpus.manifests["train"], known, corpus, device)
                cols.append(torch.tensor([lc[u] for u in known]))
            model.load_state_dict(full_state)
            losses = torch.stack(cols, dim=1)
        else:
            client_ids = None

    report = run_privacy_suite(
        representations=reps, fbank=fbank, baseline_representations=base_reps,
        linkage_enroll=enroll, linkage_probe=probe, client_updates=updates, client_genders=genders,
        source_losses=losses, source_owner=owner, source_client_ids=client_ids, membership=membership,
        families=families, seed=seed, progress=progress)
    if recorded and recorded[-1].get("secure_aggregation"):
        report.notes["server_side"] = "secure aggregation: the server only saw masked updates"
    if server_side_note:
        report.notes["server_side"] = server_side_note
    if gender_note:
        report.notes["update_gender"] = gender_note
    privacy = report.to_dict()
    privacy.update(_summary(privacy, results))

    utts = read_json(run_dir / "test_utterances.json")
    fair = fairness_section(
        [UttResult(u["utt_id"], u["spk_id"], {"gender": u["gender"]}, u["word_errors"], u["n_words"],
                   u["char_errors"], u["n_chars"]) for u in utts],
        privacy=report,
        exclusions=(ex := exclusion_rates(results.get("rounds", []))) or None,
        exclusion_groups={c: ("/".join(g)) for c, g in results.get("partition", {}).get("genders", {}).items()}
        if ex else None)
    fair["gender"] = _gender_fairness(results["test"])
    ind = fair.pop("individual")  # flat WER distribution (schema), CER and per-speaker values beside it
    fair["individual"] = dict(ind["wer"])
    fair["individual_cer"] = ind["cer"]
    fair["per_speaker"] = {"wer": ind["per_speaker_wer"], "cer": ind["per_speaker_cer"]}
    if ex:
        from speechfl.metrics.fairness import group_breakdown

        mal = set(results.get("partition", {}).get("malicious", []))
        fair.setdefault("robustness", {})["exclusion_by_role"] = group_breakdown(
            ex, {c: ("malicious" if c in mal else "honest") for c in ex})
    results["privacy"] = privacy
    results["fairness"] = fair
    results["evaluation"] = {"seconds": time.time() - start, "attackers": families,
                             "max_per_speaker": max_per_speaker, "baseline": baseline}
    atomic_write_json(run_dir / "results.json", results)
    return results


def _concat(sets):
    from speechfl.attackers.types import UtteranceSet

    return UtteranceSet(frames=[f for s in sets for f in s.frames], spk_ids=[x for s in sets for x in s.spk_ids],
                        genders=[x for s in sets for x in s.genders], utt_ids=[x for s in sets for x in s.utt_ids])
