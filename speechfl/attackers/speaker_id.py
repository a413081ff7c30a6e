"""Speaker attacks on utterance representations: closed-set identification and open-set verification.

For each attacker family (trained from scratch, :mod:`speechfl.attackers.families`):

1. split speakers (:func:`speechfl.attackers.splits.plan_speaker_split`);
2. train on the attack speakers' training utterances;
3. closed-set identification of their remaining utterances: top-1 accuracy,
   chance ``1 / n_attack_speakers``, overall, per gender and per speaker;
4. open-set verification on the held-out speakers: embeddings through the
   back-end fitted on the training embeddings
   (:class:`speechfl.attackers.verification.CosineBackend`), cosine scores
   of all utterance pairs; EER over all pairs, over same-gender pairs pooled
   (``eer_same_gender``) and per gender.

The strongest family is the one with the highest top-1 (identification) and
the one with the lowest EER (verification), reported separately.
"""

from __future__ import annotations

import time
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from speechfl.attackers.families import SPEAKER_ATTACKERS
from speechfl.attackers.intervals import eer_interval, top1_interval
from speechfl.attackers.reports import FEW_SPEAKERS, FamilyResult, GroupScore, SpeakerAttackReport
from speechfl.attackers.splits import SpeakerSplit, plan_speaker_split
from speechfl.attackers.types import UtteranceSet, check_aligned
from speechfl.attackers.verification import CosineBackend, TrialScores, trial_scores
from speechfl.metrics.privacy import eer

DEFAULT_FAMILIES = ("linear", "mlp", "xvector")


def _eer_or_note(ts: TrialScores, where: str, notes: Dict[str, str]) -> Optional[float]:
    if ts.target.size == 0 or ts.nontarget.size == 0:
        notes["eer"] = f"{where}: {ts.target.size} target and {ts.nontarget.size} non-target trials; EER needs both"
        return None
    return eer(ts.target, ts.nontarget)


def _run_family(
    family: str,
    params: Mapping,
    train: UtteranceSet,
    test: UtteranceSet,
    enroll: UtteranceSet,
    split: SpeakerSplit,
    *,
    same_set: bool,
    lda_dim: Optional[int],
    seed: int,
) -> "tuple[FamilyResult, TrialScores]":
    t0 = time.perf_counter()
    attacker = SPEAKER_ATTACKERS.build(family, **dict(params))
    label_of = {s: k for k, s in enumerate(split.attack_speakers)}
    tr = train.subset(split.id_train)
    y_tr = torch.tensor([label_of[s] for s in tr.spk_ids], dtype=torch.long)
    attacker.fit(tr.frames, y_tr, len(label_of), seed=seed)

    te = test.subset(split.id_test)
    y_te = np.array([label_of[s] for s in te.spk_ids])
    pred = attacker.logits(te.frames).argmax(dim=1).numpy()
    hit = pred == y_te
    spk_arr, gen_arr = np.asarray(te.spk_ids), np.asarray(te.genders)
    per_speaker = {s: float(hit[spk_arr == s].mean()) for s in split.attack_speakers}

    backend = CosineBackend.fit(attacker.embed(tr.frames), y_tr, lda_dim=lda_dim)
    held_test = test.subset(split.heldout)
    e_test = backend(attacker.embed(held_test.frames))
    e_enroll = e_test if same_set else backend(attacker.embed(enroll.subset(split.heldout).frames))
    overall, per_gender_trials = trial_scores(
        e_enroll, e_test, held_test.spk_ids, held_test.genders, same_set=same_set, seed=seed
    )
    if overall.target.size == 0 or overall.nontarget.size == 0:
        raise ValueError("verification has no target or no non-target trials among held-out speakers")
    spk_gender = train.speaker_gender()
    per_gender: Dict[str, GroupScore] = {}
    for g in sorted(set(train.genders)):
        notes: Dict[str, str] = {}
        m = gen_arr == g
        top1 = float(hit[m].mean()) if m.any() else None
        if top1 is None:
            notes["top1"] = f"no identification test utterances of gender {g!r}"
        ts = per_gender_trials.get(g, TrialScores(np.zeros(0), np.zeros(0)))
        per_gender[g] = GroupScore(
            top1=top1,
            eer=_eer_or_note(ts, f"held-out gender {g!r}", notes),
            n_id_test=int(m.sum()),
            n_target_trials=int(ts.target.size),
            n_nontarget_trials=int(ts.nontarget.size),
            notes=notes,
            n_id_speakers=sum(spk_gender[s] == g for s in split.attack_speakers),
            n_eer_speakers=sum(spk_gender[s] == g for s in split.heldout_speakers),
        )
    same_gender = TrialScores(
        np.concatenate([t.target for t in per_gender_trials.values()]),
        np.concatenate([t.nontarget for t in per_gender_trials.values()]),
    )
    notes: Dict[str, str] = {}
    eer_same = _eer_or_note(same_gender, "same-gender trials", notes)
    if "eer" in notes:
        notes["eer_same_gender"] = notes.pop("eer")
    top1_ci = top1_interval(hit, te.spk_ids, seed=seed)
    eer_ci = eer_interval(overall, len(split.heldout_speakers), seed=seed)
    for name, ci in (("top1_ci", top1_ci), ("eer_ci", eer_ci)):
        if ci is None:
            notes[name] = "bootstrap over speakers undefined: too few speakers (or resamples without non-target trials)"
    return FamilyResult(
        family=family,
        top1=float(hit.mean()),
        chance=1.0 / len(label_of),
        eer=eer(overall.target, overall.nontarget),
        eer_same_gender=eer_same,
        per_gender=per_gender,
        per_speaker_top1=per_speaker,
        seconds=time.perf_counter() - t0,
        notes=notes,
        n_id_speakers=len(label_of),
        n_id_test=len(te),
        n_eer_speakers=len(split.heldout_speakers),
        n_target_trials=int(overall.target.size),
        n_nontarget_trials=int(overall.nontarget.size),
        top1_ci=top1_ci,
        eer_ci=eer_ci,
    ), overall


def speaker_attack_views(
    train: UtteranceSet,
    test: UtteranceSet,
    enroll: UtteranceSet,
    *,
    families: Sequence[str] = DEFAULT_FAMILIES,
    family_params: Optional[Mapping[str, Mapping]] = None,
    seed: int = 0,
    progress: bool = True,
    heldout_frac: float = 0.3,
    id_test_frac: float = 0.4,
    drop_singletons: bool = False,
    lda_dim: Optional[int] = 150,
) -> SpeakerAttackReport:
    """Speaker attacks where training, test and enrolment utterances may come from different views.

    The three sets hold the same utterances (checked); the attacker trains on
    ``train``, identifies and verifies ``test`` utterances, and enrolment
    sides of verification trials come from ``enroll`` (pairs ``i != j``;
    when ``enroll is test``, pairs ``i < j``). :func:`speaker_attacks` and the
    VoicePrivacy scenarios are special cases.
    """
    for view in {id(v): v for v in (train, test, enroll)}.values():
        view.validate()
    check_aligned(train, test, "train vs test view")
    check_aligned(train, enroll, "train vs enroll view")
    if not families:
        raise ValueError(f"no attacker families given; valid: {SPEAKER_ATTACKERS.names()}")
    for f in families:
        SPEAKER_ATTACKERS.factory(f)  # unknown names fail before any training
    family_params = dict(family_params or {})
    unknown = sorted(set(family_params) - set(families))
    if unknown:
        raise ValueError(f"family_params given for families not run: {unknown}; running {list(families)}")
    split = plan_speaker_split(
        train.spk_ids, train.genders, heldout_frac=heldout_frac, id_test_frac=id_test_frac,
        seed=seed, drop_singletons=drop_singletons,
    )
    same_set = enroll is test
    results: Dict[str, FamilyResult] = {}
    overall = None
    for f in tqdm(list(families), desc="speaker attackers", disable=not progress):
        results[f], overall = _run_family(
            f, family_params.get(f, {}), train, test, enroll, split, same_set=same_set, lda_dim=lda_dim, seed=seed
        )
    best_id = max(results, key=lambda f: (results[f].top1, -list(results).index(f)))
    best_ver = min(results, key=lambda f: (results[f].eer, list(results).index(f)))
    notes = {}
    if split.excluded_speakers:
        notes["excluded_speakers"] = f"{len(split.excluded_speakers)} speakers with < 2 utterances were excluded"
    n_att, n_held = len(split.attack_speakers), len(split.heldout_speakers)
    few = min(n_att, n_held) < FEW_SPEAKERS
    if few:
        notes["few_speakers"] = (f"identification rests on {n_att} speakers and verification on {n_held}: "
                                 "read top1_ci / eer_ci (bootstrap over speakers), not the point values alone")
    return SpeakerAttackReport(
        families=results,
        strongest_id=best_id,
        best_top1=results[best_id].top1,
        strongest_verification=best_ver,
        best_eer=results[best_ver].eer,
        chance=1.0 / len(split.attack_speakers),
        n_utts=len(train),
        n_speakers=len(set(train.spk_ids)),
        n_attack_speakers=len(split.attack_speakers),
        n_heldout_speakers=len(split.heldout_speakers),
        n_id_train=len(split.id_train),
        n_id_test=len(split.id_test),
        n_target_trials=int(overall.target.size),
        n_nontarget_trials=int(overall.nontarget.size),
        excluded_speakers=list(split.excluded_speakers),
        notes=notes,
        chance_note=(f"identification among the {n_att} attack speakers ({n_held} of {n_att + n_held} held out for "
                     f"verification): chance 1/{n_att} = {1.0 / n_att:.3f}"),
        few_speakers=few,
    )


def speaker_attacks(
    data: UtteranceSet,
    *,
    families: Sequence[str] = DEFAULT_FAMILIES,
    seed: int = 0,
    progress: bool = True,
    family_params: Optional[Mapping[str, Mapping]] = None,
    heldout_frac: float = 0.3,
    id_test_frac: float = 0.4,
    drop_singletons: bool = False,
    lda_dim: Optional[int] = 150,
) -> SpeakerAttackReport:
    """Closed-set identification and open-set verification on one set of representations.

    See the module docstring; ``family_params`` maps a family name to keyword
    arguments of its constructor (e.g. ``{"xvector": {"epochs": 20}}``).
    """
    return speaker_attack_views(
        data, data, data, families=families, family_params=family_params, seed=seed, progress=progress,
        heldout_frac=heldout_frac, id_test_frac=id_test_frac, drop_singletons=drop_singletons, lda_dim=lda_dim,
    )
