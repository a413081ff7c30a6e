"""Bootstrap intervals over speakers for the speaker attacks' top-1 accuracy and EER.

Both resample whole speakers with replacement
(:func:`speechfl.metrics.privacy.speaker_bootstrap_ci`); a speaker drawn ``c``
times counts ``c`` times:

* top-1: ``sum_s c_s hits_s / sum_s c_s n_s`` (``hits_s`` correct of the
  ``n_s`` identification test utterances of speaker ``s``): the pooled
  accuracy of the resampled speakers;
* EER: a target trial of speaker ``s`` has weight ``c_s``, a non-target trial
  of speakers ``(a, b)`` weight ``c_a c_b``; undefined (skipped) when a
  resample has no non-target trial (all draws of one speaker). Above
  ``max_trials`` trials per side, a seeded uniform subset of each side is
  resampled (the interval is about speakers, not trial count);
* membership AUC (:func:`auc_interval`): member and non-member scores of a
  speaker drawn ``c`` times count ``c`` times;
* any pooled rate, e.g. source-inference or linkage accuracy over clients:
  :func:`top1_interval` with the client as the unit.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from speechfl.attackers.verification import TrialScores
from speechfl.metrics.privacy import BootstrapCI, roc_auc, speaker_bootstrap_ci, weighted_eer

N_BOOT = 200


def top1_interval(hit: np.ndarray, spk: Sequence[str], *, seed: int = 0, n_boot: int = N_BOOT,
                  unit: str = "speaker") -> Optional[BootstrapCI]:
    """Bootstrap interval of the pooled rate of ``hit`` (bool or credit in [0, 1]) per item owned by ``spk``."""
    speakers, inv = np.unique(np.asarray(spk), return_inverse=True)
    hits = np.bincount(inv, weights=np.asarray(hit, dtype=np.float64), minlength=len(speakers))
    n = np.bincount(inv, minlength=len(speakers)).astype(np.float64)

    def stat(c: np.ndarray) -> Optional[float]:
        den = float(c @ n)
        return float(c @ hits) / den if den > 0 else None

    return speaker_bootstrap_ci(stat, len(speakers), n_boot=n_boot, seed=seed, unit=unit)


def _cap(scores: np.ndarray, pairs: np.ndarray, max_trials: int, rng: np.random.Generator):
    if scores.size <= max_trials:
        return scores, pairs
    keep = np.sort(rng.choice(scores.size, size=max_trials, replace=False))
    return scores[keep], pairs[keep]


def eer_interval(ts: TrialScores, n_speakers: int, *, seed: int = 0, n_boot: int = N_BOOT,
                 max_trials: int = 50_000) -> Optional[BootstrapCI]:
    """Bootstrap interval of the EER of ``ts`` over its ``n_speakers`` speakers (indices in ``*_spk``)."""
    if ts.target_spk is None or ts.nontarget_spk is None:
        raise ValueError("eer_interval needs trial speaker indices (TrialScores.target_spk / nontarget_spk)")
    if ts.target.size == 0 or ts.nontarget.size == 0:
        return None
    rng = np.random.default_rng(seed)
    t, tp = _cap(ts.target, ts.target_spk, max_trials, rng)
    nt, npairs = _cap(ts.nontarget, ts.nontarget_spk, max_trials, rng)

    def stat(c: np.ndarray) -> Optional[float]:
        return weighted_eer(t, nt, c[tp[:, 0]], c[npairs[:, 0]] * c[npairs[:, 1]])

    return speaker_bootstrap_ci(stat, n_speakers, n_boot=n_boot, seed=seed)


def auc_interval(member: np.ndarray, nonmember: np.ndarray, member_units: Sequence[str],
                 nonmember_units: Sequence[str], *, seed: int = 0, n_boot: int = N_BOOT) -> Optional[BootstrapCI]:
    """Bootstrap interval of the ROC AUC of member vs non-member attack scores, resampling their speakers.

    A speaker may own scores on both sides (utterance-level membership when
    splits share speakers); a resample with no member or no non-member
    weight is skipped.
    """
    units, inv = np.unique(np.concatenate([np.asarray(member_units), np.asarray(nonmember_units)]),
                           return_inverse=True)
    m_idx, n_idx = inv[: len(member)], inv[len(member):]
    m, n = np.asarray(member, dtype=np.float64), np.asarray(nonmember, dtype=np.float64)

    def stat(c: np.ndarray) -> Optional[float]:
        wm, wn = c[m_idx], c[n_idx]
        if wm.sum() == 0 or wn.sum() == 0:
            return None
        return roc_auc(np.repeat(m, wm), np.repeat(n, wn))

    return speaker_bootstrap_ci(stat, len(units), n_boot=n_boot, seed=seed)
