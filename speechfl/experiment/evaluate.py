"""``speechfl evaluate RUN_DIR``: privacy attackers and fairness metrics on a finished run.

Everything is computed afresh from the run's files (results.json with the run's own hparams text,
model.pt, initial_model.pt, recorded/; see :mod:`speechfl.experiment.finished_run`):

* representations: encoder outputs of up to ``max_per_speaker`` utterances of every speaker
  (train, dev and test; an utterance in several splits is attacked once, see
  :mod:`speechfl.experiment.eval_data`), plus their raw Fbank (the no-protection reference);
* server-side threats from the opt-in recorded rounds (``record_updates``): update linkage
  (each client's latest recorded update against its earlier ones, see :func:`linkage_sets`),
  gender from every recorded update, and source inference with the local models the server
  can reconstruct for the last recorded round (global model at the round start + decoded update);
* membership inference on the final model: members are training utterances, non-members
  dev/test utterances never trained on; the calibrated variant subtracts each utterance's
  loss under the run's initial model, ``initial_model.pt`` (a per-utterance difficulty reference);
* fairness of the test WER/CER by gender and by speaker, and of the robust aggregator's
  exclusions by gender and by role (honest / malicious).

An attack the corpus cannot support (one gender, too few speakers or clients) is skipped with
its reason in ``privacy.notes``; the others still run and are written.

Adds ``privacy`` (flat summaries, ``strongest``, ``notes``, ``seconds``, the full typed reports
under ``reports`` and the attacked utterances per role under ``data``) and ``fairness`` sections
to results.json (schema in the README).
"""

from __future__ import annotations

import logging
import time
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from speechfl.data.dataset import make_dataset, make_loader, read_manifest
from speechfl.experiment.privacy_summary import privacy_summary
from speechfl.io import atomic_write_json, read_json

logger = logging.getLogger(__name__)


@torch.no_grad()
def extract(model, csv, ids, corpus, device="cpu", transforms=None):
    """(representations, fbank) as attacker ``UtteranceSet`` s.

    ``transforms`` (a :class:`speechfl.data.dataset.DataTransforms`) changes the audio first: a run trained
    with the ``anonymize`` defense is attacked on what its clients' devices compute, from anonymized audio.
    """
    from speechfl.attackers.types import UtteranceSet

    model.eval()
    ds = make_dataset(csv, corpus.tokenizer, corpus.cache, ids=ids, transforms=transforms)
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


def observed_transforms(hparams, rows, corpus):
    """The audio transform a run's clients apply before features (the ``anonymize`` defense), or ``None``.

    The representation and Fbank attackers then see what a client's device computes and could leak, not the
    clean recording. Membership keeps clean audio: its attacker queries the model with the recordings it holds.
    """
    if not hparams.get("anonymize"):
        return None
    from speechfl.anonymization.defense import with_anonymizer

    return with_anonymizer(hparams["anonymize"], None, rows=rows, seed=int(hparams["seed"]),
                           sample_rate=corpus.cache.config.sample_rate)


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


def _build_model(run, train_rows: List[dict], device: str):
    """The run's model, freshly built from its stored hparams (with the adversary and bottleneck it trained with)."""
    hparams = run.hparams
    model = hparams["model"].to(device)
    if hparams.get("adversary"):
        # The run's updates and model.pt include the adversary heads: rebuild them so layouts match.
        from speechfl.privacy.adversarial import build_adversary

        label_maps = {"speaker": {s: i for i, s in enumerate(sorted({r["spk_id"] for r in train_rows}))},
                      "gender": {g: i for i, g in enumerate(sorted({r["gender"] for r in train_rows}))}}
        model.attach_adversary(build_adversary(hparams["adversary"], rep_dim=model.rep_dim, label_maps=label_maps,
                                               total_steps=1, seed=int(hparams["seed"])).to(device))
    if hparams.get("bottleneck"):
        # The attackers must see the protected representation; a parameter-free stage would otherwise load silently.
        from speechfl.privacy.bottleneck import build_bottleneck

        model.attach_bottleneck(build_bottleneck(hparams["bottleneck"], rep_dim=model.rep_dim,
                                                 seed=int(hparams["seed"]), engine=None).to(device))
    return model


def _server_side(run, recorded: List[dict], model, roles, corpus, device: str) -> "tuple[dict, Dict[str, str]]":
    """Keyword arguments of the suite's server-side attacks from the recorded rounds, and notes on what cannot run."""
    from speechfl.data.partition import partition_speakers, pooled_partition
    from speechfl.federated.update import ParamLayout, load_flat_params

    hparams, results = run.hparams, run.results
    kw: dict = {}
    notes: Dict[str, str] = {}
    if not recorded:
        return kw, notes
    if len(recorded[-1]["updates"]) < 2:
        notes["server_side"] = "fewer than 2 clients per recorded round (e.g. a centralized run): nothing to link or infer"
        return kw, notes
    if recorded[-1].get("secure_aggregation"):
        notes["server_side"] = "secure aggregation: the server only saw masked updates"
        return kw, notes
    last = recorded[-1]
    genders = _client_gender(results.get("partition", {}).get("genders", {}))
    enroll, probe, history = linkage_sets(recorded)
    updates = {c: torch.stack(us) for c, us in history.items()}  # every recorded update of a client
    gender_note = _update_gender_precondition(updates, genders)
    if gender_note:
        notes["update_gender"] = gender_note
        genders = None
    kw.update(linkage_enroll=enroll, linkage_probe=probe, client_updates=updates, client_genders=genders)
    # Source inference: local model of client c = global at round start + its decoded update.
    train_rows = roles.rows["train"]
    part = (pooled_partition(train_rows) if hparams.get("engine") == "centralized" else
            partition_speakers(train_rows, int(hparams.get("speakers_per_client", 1)),
                               int(hparams.get("min_utterances", 1)), int(hparams["seed"])))
    client_ids = sorted(c for c in last["updates"] if c in part.utterances)
    if len(client_ids) < 2:
        return kw, notes
    known = [u for c in client_ids for u in sorted(part.utterances[c])[:4]]
    owner = torch.tensor([client_ids.index(c) for c in client_ids for _ in sorted(part.utterances[c])[:4]])
    layout = ParamLayout.from_module(model)
    full_state = {k: v.clone() for k, v in model.state_dict().items()}
    cols = []
    for c in client_ids:
        load_flat_params(model, layout, (last["global"] + last["updates"][c].float()).to(device))
        lc = utterance_losses(model, corpus.manifests["train"], known, corpus, device)
        cols.append(torch.tensor([lc[u] for u in known]))
    model.load_state_dict(full_state)
    kw.update(source_losses=torch.stack(cols, dim=1), source_owner=owner, source_client_ids=client_ids)
    return kw, notes


OPT_IN_THREATS = ("reconstruction",)  # costly server-side attacks, run only when asked


def evaluate_run(run_dir, *, attackers: Optional[Sequence[str]] = None, baseline: Optional[str] = None,
                 max_per_speaker: int = 20, seed: int = 0, progress: bool = True,
                 threats: Sequence[str] = ()) -> dict:
    """Run the privacy attackers and fairness metrics on a finished run; returns updated results.

    The run is rebuilt from its own files (:func:`speechfl.experiment.finished_run.load_finished_run`:
    stored hparams text, tensors-only model files). Utterances shared by several
    roles are attacked once (:mod:`speechfl.experiment.eval_data`). An attack the
    corpus cannot support is skipped with its reason; what ran is written. ``threats`` adds opt-in
    attacks (:data:`OPT_IN_THREATS`): ``reconstruction`` writes ``privacy.reconstruction``
    (:func:`speechfl.attackers.reconstruction.recorded.reconstruction_section`, with its seconds).
    """
    from speechfl.attackers import SPEAKER_ATTACKERS
    from speechfl.attackers.speaker_id import DEFAULT_FAMILIES
    from speechfl.attackers.suite import fairness_section, run_privacy_suite
    from speechfl.experiment.corpus import prepare_corpus
    from speechfl.experiment.eval_data import ROLES, assign_roles, cap_per_speaker, membership_sets
    from speechfl.experiment.finished_run import RunFolderError, load_finished_run, load_recorded
    from speechfl.metrics.fairness import UttResult

    start = time.time()
    families = list(attackers) if attackers else list(DEFAULT_FAMILIES)
    unknown = [f for f in families if f not in SPEAKER_ATTACKERS]
    if unknown:
        raise ValueError(f"unknown attacker families {unknown}; valid: {', '.join(SPEAKER_ATTACKERS.names())}")
    bad_threats = [t for t in threats if t not in OPT_IN_THREATS]
    if bad_threats:
        raise ValueError(f"unknown threat(s) {bad_threats}; valid: {', '.join(OPT_IN_THREATS)}")
    run = load_finished_run(run_dir)
    run_dir = run.run_dir
    recorded = load_recorded(run_dir)  # before any work: a tampered or truncated file fails here
    utts_path = run_dir / "test_utterances.json"
    if not utts_path.is_file():
        raise RunFolderError(f"{utts_path} not found: the run did not write its per-utterance test results; retrain it")
    results, hparams = run.results, run.hparams
    device = str(hparams.get("device", "cpu"))
    corpus = prepare_corpus(hparams, progress=False)
    roles = assign_roles({role: read_manifest(csv) for role, csv in corpus.manifests.items()})
    model = _build_model(run, roles.rows["train"], device)

    def losses_of(m, ids):
        out: Dict[str, float] = {}
        for role in ROLES:
            sel = [u for u in ids if roles.role_of[u] == role]
            if sel:
                out.update(utterance_losses(m, corpus.manifests[role], sel, corpus, device))
        return out

    # Membership: calibrated by each utterance's loss under the run's own initial model (initial_model.pt).
    members, nonmembers = membership_sets(roles, max(1, max_per_speaker // 2))
    ref = None
    if run.initial_state is not None and members and nonmembers:
        model.load_state_dict(run.initial_state)
        ref = losses_of(model, members + nonmembers)
    model.load_state_dict(run.state)

    # Representations and Fbank of every speaker, each utterance once, capped per speaker over all roles
    # (a speaker in both dev and test is not attacked twice as often).
    attacked = set(cap_per_speaker([r for role in ROLES for r in roles.rows[role]], max_per_speaker))
    by_role = {role: [r["ID"] for r in sorted(roles.rows[role], key=lambda r: (r["spk_id"], r["ID"]))
                      if r["ID"] in attacked] for role in ROLES}
    observed = {role: observed_transforms(hparams, roles.rows[role], corpus) for role in ROLES}
    parts = [extract(model, corpus.manifests[role], by_role[role], corpus, device, observed[role])
             for role in ROLES if by_role[role]]
    reps, fbank = _concat([p[0] for p in parts]), _concat([p[1] for p in parts])
    base_reps = None
    if baseline:
        base = load_finished_run(baseline)
        bmodel = base.hparams["model"].to(device)
        bmodel.load_state_dict({k: v for k, v in base.state.items() if not k.startswith("adversary.")})
        base_reps = _concat([extract(bmodel, corpus.manifests[role], by_role[role], corpus, device, observed[role])[0]
                             for role in ROLES if by_role[role]])

    fin = losses_of(model, members + nonmembers)
    meta = {r["ID"]: r for rs in roles.rows.values() for r in rs}
    membership = dict(
        member_scores=[fin[u] for u in members], nonmember_scores=[fin[u] for u in nonmembers],
        member_groups=[meta[u]["gender"] for u in members], nonmember_groups=[meta[u]["gender"] for u in nonmembers],
        member_speakers=[meta[u]["spk_id"] for u in members],
        nonmember_speakers=[meta[u]["spk_id"] for u in nonmembers],
        reference_member_scores=None if ref is None else [ref[u] for u in members],
        reference_nonmember_scores=None if ref is None else [ref[u] for u in nonmembers])

    server_kw, server_notes = _server_side(run, recorded, model, roles, corpus, device)
    report = run_privacy_suite(
        representations=reps, fbank=fbank, baseline_representations=base_reps, membership=membership,
        families=families, seed=seed, progress=progress, **server_kw)
    report.notes.update(server_notes)
    if hparams.get("anonymize"):
        report.notes["anonymize"] = (f"representation and Fbank attackers saw features of audio anonymized as the "
                                     f"clients do ({hparams['anonymize']}); membership used the clean recordings")
    if report.membership is not None and ref is None:
        report.membership.notes["calibrated"] = run.initial_note or "no reference losses"
    full = report.to_dict()
    privacy = privacy_summary(full)
    privacy.update(strongest=full.pop("strongest"), notes=full.pop("notes"), seconds=full.pop("seconds"),
                   reports=full, data=roles.to_dict())
    if "reconstruction" in threats:
        from speechfl.attackers.reconstruction.recorded import reconstruction_section

        privacy["reconstruction"] = reconstruction_section(run, recorded, model, roles, corpus, device)

    utts = read_json(utts_path)
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
    from speechfl.fairness.tradeoff import evaluation_sections  # per-group privacy gaps, individual level

    fair.update(evaluation_sections(full, results, model, corpus, device, max_per_speaker, families, seed))
    if ex:
        from speechfl.metrics.fairness import group_breakdown

        mal = set(results.get("partition", {}).get("malicious", []))
        fair.setdefault("robustness", {})["exclusion_by_role"] = group_breakdown(
            ex, {c: ("malicious" if c in mal else "honest") for c in ex})
    results["privacy"] = privacy
    results["fairness"] = fair
    results["evaluation"] = {"seconds": time.time() - start, "attackers": families,
                             "max_per_speaker": max_per_speaker, "baseline": baseline, "threats": list(threats)}
    atomic_write_json(run_dir / "results.json", results)
    return results


def _concat(sets):
    from speechfl.attackers.types import UtteranceSet

    return UtteranceSet(frames=[f for s in sets for f in s.frames], spk_ids=[x for s in sets for x in s.spk_ids],
                        genders=[x for s in sets for x in s.genders], utt_ids=[x for s in sets for x in s.utt_ids])
