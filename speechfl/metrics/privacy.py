"""Privacy metrics on attacker scores: ROC, AUC, TPR at low FPR, EER.

Pure numeric functions (numpy in, Python floats out). Convention everywhere:
a *higher* score means "positive" (same speaker, member, target class). A
trial is accepted when ``score >= threshold``.

Inputs are validated: 1-D, non-empty, finite. A metric that is undefined for
the given input (e.g. no negatives) raises ``ValueError`` naming the problem,
never returns NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np


def as_scores(x, name: str) -> np.ndarray:
    """Validate and convert an array-like of scores to a float64 1-D array."""
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().double().numpy()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of scores, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: a metric needs at least one score")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} non-finite (NaN/Inf) scores")
    return arr


def _roc_counts(positive, negative):
    """Integer (tp, fp) counts per threshold, thresholds decreasing from +inf, and class sizes."""
    pos = as_scores(positive, "positive scores")
    neg = as_scores(negative, "negative scores")
    thr = np.unique(np.concatenate([pos, neg]))[::-1]
    # count of scores >= t = n - (number strictly below t)
    tp = pos.size - np.searchsorted(np.sort(pos), thr, side="left")
    fp = neg.size - np.searchsorted(np.sort(neg), thr, side="left")
    tp = np.concatenate([[0], tp]).astype(np.int64)
    fp = np.concatenate([[0], fp]).astype(np.int64)
    return tp, fp, np.concatenate([[np.inf], thr]), pos.size, neg.size


def roc_curve(positive, negative) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC points over every distinct threshold.

    Returns ``(fpr, tpr, thresholds)``, ordered by decreasing threshold. The
    first point is ``threshold = +inf`` (accept nothing: fpr = tpr = 0); each
    following point accepts every score ``>= threshold``; the last accepts all
    (fpr = tpr = 1).
    """
    tp, fp, thr, n_pos, n_neg = _roc_counts(positive, negative)
    return fp / n_neg, tp / n_pos, thr


def roc_auc(positive, negative) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos * n_neg)).

    ``AUC = P(s_pos > s_neg) + 0.5 * P(s_pos == s_neg)``, computed with
    average ranks in O(n log n) (Hanley & McNeil, 1982).
    """
    pos = as_scores(positive, "positive scores")
    neg = as_scores(negative, "negative scores")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    sorted_v = allv[order]
    ranks = np.empty(allv.size, dtype=np.float64)
    # average rank (1-based) within each run of ties
    _, start, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def tpr_at_fpr(positive, negative, max_fpr: float = 0.01) -> float:
    """Largest TPR among ROC points whose FPR is ``<= max_fpr`` (no interpolation).

    With ``n_neg`` negatives the FPR resolution is ``1 / n_neg``: below
    ``n_neg = 1 / max_fpr`` this is the TPR at zero false positives, which is
    the honest reading of "TPR at 1% FPR" on a small set (Carlini et al., 2022,
    "Membership Inference Attacks From First Principles").
    """
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
    fpr, tpr, _ = roc_curve(positive, negative)
    ok = fpr <= max_fpr + 1e-12
    return float(tpr[ok].max())


def eer_with_threshold(target, nontarget) -> Tuple[float, float]:
    """Equal error rate and the threshold where it is reached.

    Walk the ROC points ``(FPR_i, FNR_i)`` (FNR = 1 - TPR) in order of
    decreasing threshold; FPR rises and FNR falls. The EER is where the
    piecewise-linear curve crosses ``FPR == FNR``: for the adjacent points with
    ``FNR_i - FPR_i > 0 >= FNR_{i+1} - FPR_{i+1}``,
    ``s = d_i / (d_i - d_{i+1})`` with ``d = FNR - FPR`` and
    ``EER = FPR_i + s (FPR_{i+1} - FPR_i)`` (the ROC-segment interpolation used
    by NIST/Bob; exact when a ROC point lies on the diagonal). The threshold
    returned is the one of the point ``i + 1`` (the first where FPR >= FNR).
    """
    tp, fp, thr, n_t, n_n = _roc_counts(target, nontarget)
    fpr, fnr = fp / n_n, (n_t - tp) / n_t
    # sign of FNR - FPR in exact integer arithmetic, so points on the diagonal are found exactly
    d_sign = np.sign((n_t - tp) * n_n - fp * n_t)
    # d_sign[0] = +1 and d_sign[-1] = -1, so a crossing always exists
    idx = int(np.argmax(d_sign <= 0))
    if d_sign[idx] == 0:
        return float(fpr[idx]), float(thr[idx])
    i = idx - 1
    d = fnr - fpr
    s = d[i] / (d[i] - d[idx])
    return float(fpr[i] + s * (fpr[idx] - fpr[i])), float(thr[idx])


def eer(target, nontarget) -> float:
    """Equal error rate of target (same speaker) vs non-target scores; see :func:`eer_with_threshold`."""
    return eer_with_threshold(target, nontarget)[0]


def accuracy_and_chance(pred, true, n_classes: int) -> Tuple[float, float]:
    """Top-1 accuracy of integer predictions and the uniform chance level ``1 / n_classes``."""
    p = np.asarray(pred)
    t = np.asarray(true)
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"pred and true must be 1-D of equal length, got {p.shape} and {t.shape}")
    if p.size == 0:
        raise ValueError("accuracy needs at least one prediction")
    if n_classes < 1:
        raise ValueError(f"n_classes must be >= 1, got {n_classes}")
    return float((p == t).mean()), 1.0 / n_classes


@dataclass(frozen=True)
class BootstrapCI:
    """Percentile bootstrap interval of a statistic, resampling whole speakers (or clients) with replacement.

    ``n_valid`` of the ``n_boot`` resamples gave a defined statistic (e.g. an
    EER needs both target and non-target trials); the interval is taken over
    those. ``n_units`` is the number of speakers resampled: with few of them
    the interval is wide, which is the point of reporting it.
    """

    low: float
    high: float
    level: float
    n_boot: int
    n_valid: int
    n_units: int
    unit: str

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("low", "high", "level", "n_boot", "n_valid", "n_units", "unit")}


def bootstrap_counts(n_units: int, n_boot: int, seed: int) -> np.ndarray:
    """``[n_boot, n_units]`` draw counts: row b counts how often each unit is drawn in resample b.

    Resample b draws ``n_units`` unit indices uniformly with replacement
    (``numpy.random.default_rng(seed).integers``, one call per resample).
    """
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(0, n_units, n_units), minlength=n_units) for _ in range(n_boot)])


def speaker_bootstrap_ci(stat: Callable[[np.ndarray], Optional[float]], n_units: int, *, n_boot: int = 200,
                         level: float = 0.95, seed: int = 0, unit: str = "speaker",
                         min_valid: float = 0.2) -> Optional[BootstrapCI]:
    """Percentile interval of ``stat(counts)`` over speaker resamples (Efron & Tibshirani 1993, ch. 13).

    ``stat`` receives the draw counts ``c [n_units]`` of one resample and returns
    the statistic recomputed with unit ``u`` weighted ``c[u]`` times, or
    ``None`` when it is undefined for that resample. Resampling speakers, not
    utterances or trials, respects that a speaker's utterances are correlated
    (Bolle et al. 2004, "Error analysis of pattern recognition systems: the
    subsets bootstrap"). Returns ``None`` when fewer than ``min_valid * n_boot``
    resamples are defined or there is a single unit.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if n_units < 2:
        return None
    vals = [v for v in (stat(c) for c in bootstrap_counts(n_units, n_boot, seed)) if v is not None]
    if len(vals) < max(1, min_valid * n_boot):
        return None
    lo, hi = np.quantile(np.asarray(vals, dtype=np.float64), [(1 - level) / 2, (1 + level) / 2])
    return BootstrapCI(float(lo), float(hi), level, n_boot, len(vals), n_units, unit)


def weighted_eer(target, nontarget, w_target, w_nontarget) -> Optional[float]:
    """EER with integer trial weights (a trial of weight k counts k times); ``None`` if a side has no weight."""
    wt, wn = np.asarray(w_target, dtype=np.int64), np.asarray(w_nontarget, dtype=np.int64)
    if wt.sum() == 0 or wn.sum() == 0:
        return None
    return eer(np.repeat(np.asarray(target, dtype=np.float64), wt), np.repeat(np.asarray(nontarget, dtype=np.float64), wn))
