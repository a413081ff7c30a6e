"""Fairness of error rates across groups of speakers and across individual speakers.

Group level (any speaker attribute in the manifest: gender by default, accent
or age band when given): per-group corpus WER/CER, the absolute gap
``max - min`` and relative gap ``(max - min) / min`` of WER, and the worst
group. Individual level: the distribution of per-speaker WER (mean, std, p90,
max, Gini). :func:`group_breakdown` gives the same per-group summary for any
per-key value (privacy EER per speaker, robustness exclusion rate per client).

WER of a set of utterances is corpus-level (micro): ``sum(word_errors) /
sum(n_words)``, as SpeechBrain's ``ErrorRateStats`` reports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

import numpy as np


@dataclass(frozen=True)
class UttResult:
    """Recognition errors of one utterance and its speaker's attributes."""

    utt_id: str
    spk_id: str
    attrs: Dict[str, str]
    word_errors: int
    n_words: int
    char_errors: int
    n_chars: int

    def validate(self) -> None:
        for name in ("word_errors", "n_words", "char_errors", "n_chars"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"utterance {self.utt_id!r}: {name} must be a non-negative int, got {v!r}")
        if not isinstance(self.attrs, dict):
            raise TypeError(f"utterance {self.utt_id!r}: attrs must be a dict, got {type(self.attrs).__name__}")


@dataclass
class GroupStats:
    n_utts: int
    n_speakers: int
    wer: float
    cer: Optional[float]


@dataclass
class GroupFairness:
    """Per-group error rates and gaps for one attribute.

    ``relative_gap`` is ``(max - min) / min`` of WER; when the best group has
    WER 0 and the worst does not, it is unbounded: ``None`` with the reason in
    ``notes['relative_gap']``. When every group has WER 0 it is 0.
    """

    attribute: str
    groups: Dict[str, GroupStats]
    abs_gap: float
    relative_gap: Optional[float]
    cer_abs_gap: Optional[float]
    worst_group: str
    best_group: str
    notes: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Distribution:
    """Summary of a set of per-individual values."""

    n: int
    mean: float
    std: float
    p90: float
    max: float
    gini: float


@dataclass
class IndividualFairness:
    """Per-speaker WER/CER and their distributions across speakers."""

    per_speaker_wer: Dict[str, float]
    per_speaker_cer: Dict[str, Optional[float]]
    wer: Distribution
    cer: Optional[Distribution]
    notes: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def gini(values) -> float:
    """Gini coefficient ``G = sum_i sum_j |x_i - x_j| / (2 n^2 mean)`` of non-negative values.

    0 = all equal, ``(n - 1) / n`` = one individual carries everything. An
    all-zero vector is perfectly equal: 0. Computed in O(n log n) from the
    sorted values: ``G = sum_i (2 i - n - 1) x_(i) / (n^2 mean)`` (1-based i).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"gini needs a non-empty 1-D array, got shape {x.shape}")
    if not np.isfinite(x).all() or (x < 0).any():
        raise ValueError("gini needs finite non-negative values")
    n = x.size
    total = x.sum()
    if total == 0:
        return 0.0
    xs = np.sort(x)
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * xs).sum() / (n * total))


def distribution(values) -> Distribution:
    """Mean, population std (ddof=0), p90 (numpy linear interpolation), max and Gini."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("a distribution needs at least one value")
    return Distribution(
        n=int(x.size),
        mean=float(x.mean()),
        std=float(x.std()),
        p90=float(np.percentile(x, 90)),
        max=float(x.max()),
        gini=gini(x),
    )


def _check_results(results: List[UttResult]) -> None:
    if not results:
        raise ValueError("no utterance results given: fairness needs at least one utterance")
    for r in results:
        if not isinstance(r, UttResult):
            raise TypeError(f"expected UttResult, got {type(r).__name__}")
        r.validate()


def _rate(errors: int, total: int) -> Optional[float]:
    return None if total == 0 else errors / total


def group_fairness(results: List[UttResult], attribute: str = "gender") -> GroupFairness:
    """Per-group WER/CER, gaps and the worst group for ``attribute``.

    Groups are the attribute's values present in ``results`` (a group with no
    members does not appear). Every result must carry the attribute; a group
    whose utterances hold no reference words has no WER and raises. Ties for
    worst/best group are broken by group name.
    """
    _check_results(results)
    missing = [r.utt_id for r in results if attribute not in r.attrs]
    if len(missing) == len(results):
        present = sorted({k for r in results for k in r.attrs})
        raise ValueError(f"attribute {attribute!r} is absent from all results; attributes present: {present}")
    if missing:
        raise ValueError(
            f"attribute {attribute!r} is missing for {len(missing)} of {len(results)} utterances "
            f"(e.g. {missing[:3]}); fill it (e.g. 'unknown') or filter those utterances first"
        )
    members: Dict[str, List[UttResult]] = {}
    for r in results:
        members.setdefault(str(r.attrs[attribute]), []).append(r)
    groups: Dict[str, GroupStats] = {}
    notes: Dict[str, str] = {}
    for g in sorted(members):
        rs = members[g]
        nw = sum(r.n_words for r in rs)
        if nw == 0:
            raise ValueError(f"group {attribute}={g!r} has {len(rs)} utterances but no reference words: WER undefined")
        nc = sum(r.n_chars for r in rs)
        cer = _rate(sum(r.char_errors for r in rs), nc)
        if cer is None:
            notes[f"cer[{g}]"] = "no reference characters"
        groups[g] = GroupStats(
            n_utts=len(rs),
            n_speakers=len({r.spk_id for r in rs}),
            wer=sum(r.word_errors for r in rs) / nw,
            cer=cer,
        )
    names = sorted(groups)
    worst = max(names, key=lambda g: (groups[g].wer, -names.index(g)))
    best = min(names, key=lambda g: (groups[g].wer, names.index(g)))
    hi, lo = groups[worst].wer, groups[best].wer
    if lo > 0:
        rel: Optional[float] = (hi - lo) / lo
    elif hi == 0:
        rel = 0.0
    else:
        rel = None
        notes["relative_gap"] = f"best group {best!r} has WER 0: relative gap is unbounded"
    cers = [s.cer for s in groups.values()]
    cer_gap = None if any(c is None for c in cers) else max(cers) - min(cers)
    if cer_gap is None:
        notes["cer_abs_gap"] = "a group has no reference characters"
    return GroupFairness(
        attribute=attribute,
        groups=groups,
        abs_gap=hi - lo,
        relative_gap=rel,
        cer_abs_gap=cer_gap,
        worst_group=worst,
        best_group=best,
        notes=notes,
    )


def individual_fairness(results: List[UttResult]) -> IndividualFairness:
    """Per-speaker corpus WER/CER and their distribution across speakers.

    A speaker whose utterances hold no reference words has no WER and raises.
    """
    _check_results(results)
    by_spk: Dict[str, List[UttResult]] = {}
    for r in results:
        by_spk.setdefault(r.spk_id, []).append(r)
    wer: Dict[str, float] = {}
    cer: Dict[str, Optional[float]] = {}
    notes: Dict[str, str] = {}
    for s in sorted(by_spk):
        rs = by_spk[s]
        nw = sum(r.n_words for r in rs)
        if nw == 0:
            raise ValueError(f"speaker {s!r} has {len(rs)} utterances but no reference words: WER undefined")
        wer[s] = sum(r.word_errors for r in rs) / nw
        cer[s] = _rate(sum(r.char_errors for r in rs), sum(r.n_chars for r in rs))
    cer_vals = [v for v in cer.values() if v is not None]
    if len(cer_vals) < len(cer):
        notes["cer"] = f"{len(cer) - len(cer_vals)} speakers have no reference characters"
    return IndividualFairness(
        per_speaker_wer=wer,
        per_speaker_cer=cer,
        wer=distribution(list(wer.values())),
        cer=distribution(cer_vals) if len(cer_vals) == len(cer) else None,
        notes=notes,
    )


def group_breakdown(values: Dict[str, float], groups: Dict[str, str]) -> dict:
    """Per-group summary of per-key values (e.g. speaker -> EER, client -> exclusion rate).

    Returns ``{"groups": {g: {"n", "mean", "min", "max"}}, "abs_gap",
    "max_group", "min_group"}`` where ``abs_gap`` is the difference between the
    largest and smallest group means (direction-neutral: for an error rate
    ``max_group`` is the worst; for an attacker's accuracy it is the most
    exposed). Every key in ``values`` needs a group; groups with no member do
    not appear.
    """
    if not values:
        raise ValueError("group_breakdown needs at least one value")
    missing = sorted(k for k in values if k not in groups)
    if missing:
        raise ValueError(f"{len(missing)} keys have no group (e.g. {missing[:3]})")
    bad = sorted(k for k, v in values.items() if not np.isfinite(float(v)))
    if bad:
        raise ValueError(f"non-finite values for keys {bad[:3]}")
    per: Dict[str, List[float]] = {}
    for k, v in values.items():
        per.setdefault(str(groups[k]), []).append(float(v))
    out = {
        g: {"n": len(v), "mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v))}
        for g, v in sorted(per.items())
    }
    names = sorted(out)
    hi = max(names, key=lambda g: (out[g]["mean"], -names.index(g)))
    lo = min(names, key=lambda g: (out[g]["mean"], names.index(g)))
    return {"groups": out, "abs_gap": out[hi]["mean"] - out[lo]["mean"], "max_group": hi, "min_group": lo}
