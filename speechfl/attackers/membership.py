"""Membership inference on the final ASR model from per-utterance losses.

Variants (lower loss means "member"):

* ``threshold``: attack score ``-loss(x)`` (Yeom et al. 2018, "Privacy risk in
  machine learning"); any threshold on it is an attack, so it is judged by
  the whole ROC.
* ``calibrated``: ``-(loss(x) - loss_ref(x))`` where ``loss_ref`` is the loss
  under a reference model that did not train on ``x``, or any per-utterance
  difficulty estimate (Watson et al. 2022, "On the importance of difficulty
  calibration in membership inference attacks"; Carlini et al. 2022). An
  utterance that is hard for everyone is not mistaken for a non-member.

Levels: ``utterance``, and ``speaker`` (mean attack score over a speaker's
utterances; a speaker is a member if their utterances trained the model).
Speaker level needs disjoint member/non-member speakers; otherwise it is
``None`` with a note. Metrics: ROC AUC, TPR at 1% FPR and membership
advantage ``max_t (TPR - FPR)``; per group (e.g. gender) at utterance level.
"""

from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np

from speechfl.attackers.intervals import auc_interval
from speechfl.attackers.reports import MembershipReport, MIAScore
from speechfl.attackers.types import AttackPrecondition
from speechfl.metrics.privacy import as_scores, roc_auc, roc_curve, tpr_at_fpr

VARIANTS = ("threshold", "calibrated")


def mia_score(member_attack: np.ndarray, nonmember_attack: np.ndarray, member_units=None,
              nonmember_units=None) -> MIAScore:
    """AUC, TPR@1%FPR and advantage of attack scores (higher = member).

    With the speaker of each score (``*_units``), also the AUC's bootstrap
    interval over speakers (:func:`speechfl.attackers.intervals.auc_interval`).
    """
    fpr, tpr, _ = roc_curve(member_attack, nonmember_attack)
    ci, n_spk = None, 0
    if member_units is not None and nonmember_units is not None:
        ci = auc_interval(member_attack, nonmember_attack, member_units, nonmember_units)
        n_spk = len(set(np.asarray(member_units).tolist()) | set(np.asarray(nonmember_units).tolist()))
    return MIAScore(
        auc=roc_auc(member_attack, nonmember_attack),
        tpr_at_1pct_fpr=tpr_at_fpr(member_attack, nonmember_attack, 0.01),
        advantage=float((tpr - fpr).max()),
        n_members=int(member_attack.size),
        n_nonmembers=int(nonmember_attack.size),
        n_speakers=n_spk,
        auc_ci=ci,
    )


def _labels(values: Sequence[str], n: int, name: str) -> np.ndarray:
    arr = np.asarray([str(v) for v in values])
    if arr.shape != (n,):
        raise ValueError(f"{name} has {arr.size} entries for {n} scores")
    return arr


def _speaker_means(scores: np.ndarray, spk: np.ndarray) -> np.ndarray:
    return np.array([scores[spk == s].mean() for s in sorted(set(spk.tolist()))])


def membership_inference(
    member_scores,
    nonmember_scores,
    *,
    member_groups: Sequence[str],
    nonmember_groups: Sequence[str],
    member_speakers: Sequence[str],
    nonmember_speakers: Sequence[str],
    reference_member_scores=None,
    reference_nonmember_scores=None,
) -> MembershipReport:
    """Loss-threshold and calibrated membership inference; see the module docstring.

    ``*_scores`` are per-utterance losses of the target model;
    ``reference_*_scores`` the same utterances' reference losses (both or
    neither).
    """
    for name, s in (("member", member_scores), ("non-member", nonmember_scores)):
        if s is None or len(s) == 0:
            raise AttackPrecondition(f"membership inference needs {name} utterances, got none (empty)")
    m_loss = as_scores(member_scores, "member_scores")
    n_loss = as_scores(nonmember_scores, "nonmember_scores")
    m_grp = _labels(member_groups, m_loss.size, "member_groups")
    n_grp = _labels(nonmember_groups, n_loss.size, "nonmember_groups")
    m_spk = _labels(member_speakers, m_loss.size, "member_speakers")
    n_spk = _labels(nonmember_speakers, n_loss.size, "nonmember_speakers")
    notes: Dict[str, str] = {}
    attack: Dict[str, Optional[tuple]] = {"threshold": (-m_loss, -n_loss)}
    if (reference_member_scores is None) != (reference_nonmember_scores is None):
        raise ValueError("give both reference_member_scores and reference_nonmember_scores, or neither")
    if reference_member_scores is None:
        attack["calibrated"] = None
        notes["calibrated"] = "no reference scores given"
    else:
        rm = as_scores(reference_member_scores, "reference_member_scores")
        rn = as_scores(reference_nonmember_scores, "reference_nonmember_scores")
        if rm.size != m_loss.size or rn.size != n_loss.size:
            raise ValueError(
                f"reference scores have {rm.size}/{rn.size} entries for {m_loss.size}/{n_loss.size} utterances"
            )
        attack["calibrated"] = (-(m_loss - rm), -(n_loss - rn))

    utterance = {v: (None if attack[v] is None else mia_score(*attack[v], m_spk, n_spk)) for v in VARIANTS}

    shared = sorted(set(m_spk.tolist()) & set(n_spk.tolist()))
    if shared:
        notes["caveat"] = (f"{len(shared)} of the non-member speakers are also member speakers: members and "
                           "non-members are (partly) the same speakers, so this is utterance-level membership only "
                           "(is this utterance in training?), not whether a speaker took part")
    speaker: Dict[str, Optional[MIAScore]] = {}
    for v in VARIANTS:
        if attack[v] is None:
            speaker[v] = None
        elif shared:
            speaker[v] = None
            notes[f"speaker/{v}"] = f"{len(shared)} speakers are both members and non-members (e.g. {shared[:3]})"
        else:
            m_names, n_names = sorted(set(m_spk.tolist())), sorted(set(n_spk.tolist()))
            speaker[v] = mia_score(_speaker_means(attack[v][0], m_spk), _speaker_means(attack[v][1], n_spk),
                                   m_names, n_names)

    per_group: Dict[str, Dict[str, Optional[MIAScore]]] = {}
    for g in sorted(set(m_grp.tolist()) | set(n_grp.tolist())):
        mm, nm = m_grp == g, n_grp == g
        per_group[g] = {}
        for v in VARIANTS:
            if attack[v] is None:
                per_group[g][v] = None
            elif not mm.any() or not nm.any():
                per_group[g][v] = None
                notes[f"per_group/{g}/{v}"] = f"group {g!r} has {int(mm.sum())} members and {int(nm.sum())} non-members"
            else:
                per_group[g][v] = mia_score(attack[v][0][mm], attack[v][1][nm], m_spk[mm], n_spk[nm])

    candidates = [(f"{lvl}/{v}", s) for lvl, d in (("utterance", utterance), ("speaker", speaker)) for v, s in d.items() if s is not None]
    best_name, best = max(candidates, key=lambda kv: kv[1].auc)
    return MembershipReport(
        utterance=utterance, speaker=speaker, per_group=per_group, strongest=best_name, best_auc=best.auc, notes=notes,
        n_member_speakers=len(set(m_spk.tolist())), n_nonmember_speakers=len(set(n_spk.tolist())),
        n_shared_speakers=len(shared),
    )
