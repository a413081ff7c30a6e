"""Privacy risk per speaker, beside per-speaker WER: the individual level of the trade-off.

Input of an attacker: a score matrix ``S`` of shape ``[n_utts, n_speakers]`` (row ``i``: a
probe utterance; column ``j``: an enrolled speaker model; higher = more likely the same
speaker) and ``true[i]``, the column of utterance ``i``'s own speaker.

Definitions (every risk is in [0, 1], higher = less private):

* identification rank of utterance ``i``: ``r_i = 1 + #{j != t: S_ij > S_it}
  + 0.5 #{j != t: S_ij = S_it}`` (mid-rank for ties), ``t = true[i]``;
* a speaker's *identification risk*: the mean reciprocal rank of its utterances,
  ``MRR_s = mean_{i of s} 1 / r_i`` (1: always ranked first; chance ``H_n / n`` with ``n``
  speakers), and its top-1 rate ``mean_{i of s} [r_i = 1]``;
* a speaker's *EER* (verification): with speaker ``s``'s column as its model, target trials
  are ``S_is`` for its own utterances and non-target trials ``S_is`` for every other speaker's
  utterances; ``EER_s`` as :func:`speechfl.metrics.privacy.eer`. Its *linkability risk* is
  ``1 - 2 min(EER_s, 0.5)`` (0 at chance, 1 when perfectly separable);
* a speaker's privacy risk against one attacker: ``max(MRR_s, 1 - 2 min(EER_s, .5))``, the
  larger of the two (each attacker can be used as identifier or verifier);
* the *strongest attacker*: the one with the highest mean risk over speakers; the
  *worst-case* risk of a speaker is its maximum over attackers.

"Who pays": with per-speaker WER ``w_s`` and risk ``p_s``, Pearson and Spearman correlation,
the mean risk of the worst-served quarter of speakers (top 25% WER) against the rest, and
the overlap of the top-k WER and top-k risk sets. The trade-off of a configuration is the
point ``(mean WER, worst-group WER, strongest-attacker success, worst-individual risk)``,
every coordinate minimised; :func:`tradeoff_pareto` gives the non-dominated configurations.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from speechfl.experiment.pareto import pareto_mask
from speechfl.metrics.fairness import group_breakdown
from speechfl.metrics.privacy import eer


def _check(scores, true) -> tuple:
    s = np.asarray(scores, dtype=float)
    t = np.asarray(true)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"scores must be [n_utts, n_speakers >= 2], got shape {s.shape}")
    if t.shape != (s.shape[0],) or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"true must be integer column indices of shape ({s.shape[0]},), got {t.dtype} {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= s.shape[1]):
        raise ValueError(f"true holds a column outside [0, {s.shape[1]})")
    if not np.isfinite(s).all():
        raise ValueError("scores hold NaN or Inf")
    return s, t


def identification_ranks(scores, true) -> np.ndarray:
    """Mid-rank of each utterance's own speaker among all columns (1 = identified), float ``[n_utts]``."""
    s, t = _check(scores, true)
    own = s[np.arange(len(t)), t][:, None]
    higher = (s > own).sum(axis=1)
    ties = (s == own).sum(axis=1) - 1  # the own column always ties with itself
    return 1.0 + higher + 0.5 * ties


@dataclass(frozen=True)
class SpeakerRisk:
    """One speaker's exposure to one attacker."""

    n_utts: int
    mrr: float
    top1: float
    eer: Optional[float]  # None when the speaker has no target or no non-target trial
    risk: float


def speaker_risks(scores, true, speakers: Sequence[str]) -> Dict[str, SpeakerRisk]:
    """Per-speaker identification and verification risk of one attacker (module docstring).

    ``speakers[j]`` names column ``j``. Speakers with no probe utterance are absent.
    """
    s, t = _check(scores, true)
    if len(speakers) != s.shape[1]:
        raise ValueError(f"{len(speakers)} speaker names for {s.shape[1]} columns")
    ranks = identification_ranks(s, t)
    out = {}
    for j, name in enumerate(speakers):
        own = t == j
        if not own.any():
            continue
        mrr = float(np.mean(1.0 / ranks[own]))
        top1 = float(np.mean(ranks[own] == 1.0))
        e = eer(s[own, j], s[~own, j]) if (~own).any() else None
        link = 0.0 if e is None else 1.0 - 2.0 * min(e, 0.5)
        out[str(name)] = SpeakerRisk(n_utts=int(own.sum()), mrr=mrr, top1=top1, eer=e, risk=max(mrr, link))
    return out


@dataclass(frozen=True)
class IndividualPrivacy:
    """Per-speaker risk under the strongest attacker and in the worst case over attackers."""

    strongest_attacker: str
    per_attacker_mean: Dict[str, float]
    risk: Dict[str, float]  # the strongest attacker's risk per speaker
    worst_case: Dict[str, float]  # max over attackers per speaker
    detail: Dict[str, Dict[str, dict]]  # attacker -> speaker -> SpeakerRisk as a dict

    def to_dict(self) -> dict:
        return asdict(self)


def individual_privacy(per_attacker: Mapping[str, Mapping[str, SpeakerRisk]]) -> IndividualPrivacy:
    """Combine :func:`speaker_risks` of several attackers; every attacker must cover the same speakers."""
    if not per_attacker:
        raise ValueError("individual_privacy needs at least one attacker")
    names = sorted(per_attacker)
    speakers = set(per_attacker[names[0]])
    for a in names[1:]:
        if set(per_attacker[a]) != speakers:
            raise ValueError(f"attackers {names[0]!r} and {a!r} score different speakers")
    means = {a: float(np.mean([r.risk for r in per_attacker[a].values()])) for a in names}
    strongest = max(names, key=lambda a: (means[a], -names.index(a)))
    return IndividualPrivacy(
        strongest_attacker=strongest, per_attacker_mean=means,
        risk={s: per_attacker[strongest][s].risk for s in sorted(speakers)},
        worst_case={s: max(per_attacker[a][s].risk for a in names) for s in sorted(speakers)},
        detail={a: {s: asdict(r) for s, r in sorted(per_attacker[a].items())} for a in names})


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(v):
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=float)
        for value in np.unique(v):  # average ranks over ties
            r[v == value] = r[v == value].mean()
        return r

    return _pearson(ranks(x), ranks(y))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class WhoPays:
    """The joint distribution of per-speaker WER and privacy risk, and who carries both."""

    n_speakers: int
    pearson: float  # NaN when either variable is constant
    spearman: float
    worst_served: List[str]  # top quarter by WER (at least one speaker)
    risk_worst_served: float  # their mean risk
    risk_rest: Optional[float]  # the others' mean risk (None when nobody is left)
    topk_overlap: float  # |top-k WER ∩ top-k risk| / k with k = len(worst_served)
    by_group: Optional[dict]  # {"wer": group_breakdown, "risk": group_breakdown}
    points: Dict[str, Dict[str, float]]  # speaker -> {"wer", "risk"}

    def to_dict(self) -> dict:
        return asdict(self)


def who_pays(wer: Mapping[str, float], risk: Mapping[str, float],
             groups: Optional[Mapping[str, str]] = None) -> WhoPays:
    """Correlation of per-speaker WER and privacy risk over the speakers present in both.

    Ties in the top-k choices are broken by speaker id, so the result is deterministic.
    """
    common = sorted(set(wer) & set(risk))
    if not common:
        raise ValueError("no speaker has both a WER and a privacy risk")
    w = np.array([float(wer[s]) for s in common])
    p = np.array([float(risk[s]) for s in common])
    k = max(1, len(common) // 4)
    by_wer = sorted(common, key=lambda s: (-float(wer[s]), s))[:k]
    by_risk = sorted(common, key=lambda s: (-float(risk[s]), s))[:k]
    rest = [s for s in common if s not in by_wer]
    by_group = None
    if groups is not None:
        by_group = {"wer": group_breakdown({s: float(wer[s]) for s in common}, groups),
                    "risk": group_breakdown({s: float(risk[s]) for s in common}, groups)}
    return WhoPays(
        n_speakers=len(common), pearson=_pearson(w, p), spearman=_spearman(w, p), worst_served=by_wer,
        risk_worst_served=float(np.mean([risk[s] for s in by_wer])),
        risk_rest=float(np.mean([risk[s] for s in rest])) if rest else None,
        topk_overlap=len(set(by_wer) & set(by_risk)) / k, by_group=by_group,
        points={s: {"wer": float(wer[s]), "risk": float(risk[s])} for s in common})


TRADEOFF_AXES = ("mean_wer", "worst_group_wer", "attacker_success", "worst_individual_risk")


def tradeoff_point(*, mean_wer: float, group_wer: Mapping[str, float], attacker_success: float,
                   individual_risk: Mapping[str, float]) -> Dict[str, float]:
    """One configuration's point on the four axes of :data:`TRADEOFF_AXES` (all minimised)."""
    if not group_wer or not individual_risk:
        raise ValueError("tradeoff_point needs per-group WERs and per-speaker risks")
    return {"mean_wer": float(mean_wer), "worst_group_wer": float(max(group_wer.values())),
            "attacker_success": float(attacker_success),
            "worst_individual_risk": float(max(individual_risk.values()))}


def tradeoff_pareto(points: Mapping[str, Mapping[str, float]]) -> List[str]:
    """Names of the configurations no other one dominates on :data:`TRADEOFF_AXES`."""
    names = sorted(points)
    if not names:
        return []
    missing = [n for n in names if set(TRADEOFF_AXES) - set(points[n])]
    if missing:
        raise ValueError(f"configurations {missing[:3]} lack axes; each needs {TRADEOFF_AXES}")
    mask = pareto_mask([[float(points[n][a]) for a in TRADEOFF_AXES] for n in names])
    return [n for n, keep in zip(names, mask) if keep]


def enrol_probe_rows(spk_ids: Sequence[str]) -> tuple:
    """Each speaker's rows (in the given order) split into enrolment (even positions) and probe (odd positions).

    Returns ``(speakers, enrol, probe_rows, true, left_out)``: the speakers with >= 2 rows (sorted), the
    enrolment rows as ``(row, column of its speaker)`` pairs, the probe rows with their columns ``true``,
    and the speakers left out (one row: they cannot be both enrolled and probed).
    """
    rows: Dict[str, List[int]] = {}
    for i, s in enumerate(spk_ids):
        rows.setdefault(str(s), []).append(i)
    speakers = sorted(s for s, r in rows.items() if len(r) >= 2)
    left_out = sorted(s for s, r in rows.items() if len(r) < 2)
    if len(speakers) < 2:
        raise ValueError(f"per-speaker trials need two speakers with >= 2 utterances, got {speakers}")
    enrol = [(i, j) for j, s in enumerate(speakers) for i in rows[s][0::2]]
    probes = [(i, j) for j, s in enumerate(speakers) for i in rows[s][1::2]]
    return speakers, enrol, [i for i, _ in probes], np.array([j for _, j in probes], dtype=np.int64), left_out


def cosine_trials(embeddings, spk_ids: Sequence[str]) -> tuple:
    """A training-free attacker's score matrix: cosine similarity to per-speaker enrolment means.

    Each speaker's utterances (in the given order) alternate enrolment (even positions) and
    probe (odd positions); a speaker model is the mean of its length-normalised enrolment
    embeddings, and ``S[i, j]`` is the cosine of probe ``i`` with model ``j``. Speakers with
    fewer than two utterances cannot be both enrolled and probed and are left out.

    Returns
    -------
    (scores [n_probes, n_speakers], true [n_probes], speakers, left_out)
    """
    x = np.asarray(embeddings, dtype=float)
    if x.ndim != 2 or x.shape[0] != len(spk_ids):
        raise ValueError(f"embeddings must be [n_utts, dim] with one speaker id per row, got {x.shape} "
                         f"and {len(spk_ids)} ids")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    speakers, enrol, probe_rows, true, left_out = enrol_probe_rows(spk_ids)
    models = np.stack([x[[i for i, c in enrol if c == j]].mean(axis=0) for j in range(len(speakers))])
    models = models / np.maximum(np.linalg.norm(models, axis=1, keepdims=True), 1e-12)
    return x[probe_rows] @ models.T, true, speakers, left_out


def trained_trials(frames, spk_ids: Sequence[str], family: str, params: Optional[Mapping] = None,
                   seed: int = 0) -> tuple:
    """A trained attacker's score matrix: a speaker-attacker family fitted afresh on the enrolment utterances.

    The same enrolment / probe split as :func:`cosine_trials` (even / odd positions of each speaker's
    utterances). The family (:data:`speechfl.attackers.families.SPEAKER_ATTACKERS`: ``linear``, ``mlp``,
    ``xvector``, ``ecapa``) is trained from scratch on the enrolment frames with one class per speaker,
    and ``S[i, j]`` is its log-probability of speaker ``j`` for probe ``i`` (closed-set identification
    over these speakers; each column also serves as speaker ``j``'s verification model).

    Returns ``(scores [n_probes, n_speakers], true [n_probes], speakers, left_out)``.
    """
    import torch

    from speechfl.attackers.families import SPEAKER_ATTACKERS

    if len(frames) != len(spk_ids):
        raise ValueError(f"{len(frames)} utterances but {len(spk_ids)} speaker ids")
    attacker = SPEAKER_ATTACKERS.build(family, **dict(params or {}))
    speakers, enrol, probe_rows, true, left_out = enrol_probe_rows(spk_ids)
    labels = torch.tensor([j for _, j in enrol], dtype=torch.long)
    attacker.fit([frames[i] for i, _ in enrol], labels, len(speakers), seed=seed)
    with torch.no_grad():
        scores = torch.log_softmax(attacker.logits([frames[i] for i in probe_rows]).double(), dim=1)
    return scores.numpy(), true, speakers, left_out
