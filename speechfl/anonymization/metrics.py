"""Anonymization metrics beyond EER: linkability, gain of voice distinctiveness, pitch correlation.

* :func:`linkability`: ``D_sys`` of Maouche et al. 2020 ("A comparative study of speech
  anonymization metrics", Interspeech). With mated (target) and non-mated score densities
  ``p(s|H_m)``, ``p(s|H_n)`` estimated by histograms on common bins and prior ratio ``omega = 1``,
  ``D(s) = max(0, 2 * omega LR(s) / (1 + omega LR(s)) - 1)`` with ``LR = p(s|H_m) / p(s|H_n)``
  (``D = 1`` where only mated scores fall), and ``D_sys = sum_bins p(s|H_m) D(s) ds``. 0: scores
  carry no link; 1: mated and non-mated scores never overlap.
* :func:`gain_of_voice_distinctiveness`: ``G_VD = 10 log10(D_diag(M_aa) / D_diag(M_oo))`` (Noé et
  al. 2020, "Speech pseudonymisation assessment using voice similarity matrices"), where
  ``M[i, j] = sigmoid(mean of the calibrated LLR scores between utterances of speakers i and j)``
  and ``D_diag(M) = |mean(diag M) - mean(offdiag M)|``. 0 dB: distinctiveness kept; negative:
  voices became harder to tell apart.
* :func:`pitch_correlation`: VPC 2022's ``rho_F0``, the Pearson correlation between the F0
  contours (YIN) of an original and its anonymized utterance over frames voiced in both (the
  anonymized contour is linearly re-timed to the original's frame count, so speed changes are
  compared at equal positions), averaged over utterances.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from speechfl.metrics.privacy import as_scores


def linkability(mated, non_mated, n_bins: int = 100, omega: float = 1.0) -> float:
    """``D_sys`` of Maouche et al. 2020 (see the module docstring)."""
    m = as_scores(mated, "mated scores")
    n = as_scores(non_mated, "non-mated scores")
    lo, hi = min(m.min(), n.min()), max(m.max(), n.max())
    if hi == lo:
        return 0.0
    edges = np.linspace(lo, hi, n_bins + 1)
    width = edges[1] - edges[0]
    pm = np.histogram(m, bins=edges)[0] / (m.size * width)
    pn = np.histogram(n, bins=edges)[0] / (n.size * width)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.where(pn > 0, pm / np.where(pn > 0, pn, 1.0), np.inf)
        d = np.where(np.isinf(lr), 1.0, 2 * omega * lr / (1 + omega * lr) - 1)
    d = np.clip(d, 0.0, 1.0)
    return float(np.sum(pm * d * width))


def calibrate(target, nontarget, l2: float = 1e-4) -> tuple:
    """Affine ``(a, b)`` mapping scores to log-likelihood ratios (prior-weighted logistic regression).

    The slope has a small L2 penalty ``l2 * a^2``: on separable scores (EER 0) the unpenalised
    slope grows without bound and every LLR would saturate.
    """
    import torch

    t, n = as_scores(target, "target scores"), as_scores(nontarget, "non-target scores")
    x = torch.tensor(np.concatenate([t, n]))
    y = torch.tensor(np.concatenate([np.ones(t.size), np.zeros(n.size)]))
    w = torch.tensor(np.concatenate([np.full(t.size, 0.5 / t.size), np.full(n.size, 0.5 / n.size)]))
    ab = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (w * torch.nn.functional.binary_cross_entropy_with_logits(ab[0] * x + ab[1], y, reduction="none")).sum()
        loss = loss + l2 * ab[0] ** 2
        loss.backward()
        return loss

    opt.step(closure)
    return float(ab[0].detach()), float(ab[1].detach())


def similarity_matrix(llr: np.ndarray, spk_a: Sequence[str], spk_b: Sequence[str], speakers: Sequence[str]) -> np.ndarray:
    """``M[i, j] = sigmoid(mean LLR over utterance pairs (a of speaker i, b of speaker j))``."""
    a, b = np.asarray(spk_a), np.asarray(spk_b)
    out = np.zeros((len(speakers), len(speakers)))
    for i, si in enumerate(speakers):
        for j, sj in enumerate(speakers):
            out[i, j] = 1 / (1 + np.exp(-llr[np.ix_(a == si, b == sj)].mean()))
    return out


def diagonal_dominance(m: np.ndarray) -> float:
    off = ~np.eye(m.shape[0], dtype=bool)
    return float(abs(np.diag(m).mean() - m[off].mean()))


def gain_of_voice_distinctiveness(m_oo: np.ndarray, m_aa: np.ndarray) -> float:
    """``10 log10(D_diag(M_aa) / D_diag(M_oo))`` in dB."""
    d_oo, d_aa = diagonal_dominance(m_oo), diagonal_dominance(m_aa)
    if d_oo <= 0:
        raise ValueError("G_VD undefined: the original similarity matrix has no diagonal dominance")
    return float(10 * np.log10(max(d_aa, 1e-12) / d_oo))


def f0_contour(wav: np.ndarray, sample_rate: int, hop_s: float = 0.01) -> np.ndarray:
    """F0 per 10 ms frame (NaN where unvoiced): YIN (de Cheveigne & Kawahara 2002, librosa), 60-400 Hz.

    A frame is voiced when its RMS is above 10 % of the utterance's 95th-percentile frame RMS and
    its YIN estimate is strictly inside the search range (YIN returns the range ends on noise) and
    within 0.75 octave of the utterance's median voiced F0 (octave errors are dropped, not scored).
    """
    import librosa

    x = np.asarray(wav, dtype=np.float64)
    hop = int(round(sample_rate * hop_s))
    frame = 4 * hop * 2
    f0 = librosa.yin(x, fmin=60, fmax=400, sr=sample_rate, frame_length=frame, hop_length=hop)
    rms = librosa.feature.rms(y=x, frame_length=frame, hop_length=hop)[0][: f0.size]
    loud = rms > 0.1 * np.percentile(rms, 95)
    voiced = loud & (f0 > 61) & (f0 < 399)
    if voiced.any():
        # octave / sub-harmonic errors: frames more than 0.75 octave from the median are dropped
        voiced &= np.abs(np.log2(f0 / np.median(f0[voiced]))) < 0.75
    return np.where(voiced, f0, np.nan)


def contour_correlation(f0_orig: np.ndarray, f0_anon: np.ndarray) -> Optional[float]:
    """Pearson correlation over frames voiced in both (anonymized contour re-timed); None below 3 frames."""
    if f0_anon.size != f0_orig.size:
        pos = np.linspace(0, f0_anon.size - 1, f0_orig.size)
        near = np.rint(pos).astype(int)  # nearest frame: interpolating across unvoiced NaNs would erase frames
        f0_anon = f0_anon[near]
    both = np.isfinite(f0_orig) & np.isfinite(f0_anon)
    if both.sum() < 3 or np.std(f0_orig[both]) == 0 or np.std(f0_anon[both]) == 0:
        return None
    return float(np.corrcoef(f0_orig[both], f0_anon[both])[0, 1])


def pitch_correlation(pairs: Mapping[str, tuple], load) -> Dict[str, object]:
    """Mean ``rho_F0`` over ``pairs`` (utt id -> (original path, anonymized path)); ``load(path) -> (wav, sr)``."""
    values = []
    for utt in sorted(pairs):
        (x, sr_x), (y, sr_y) = load(pairs[utt][0]), load(pairs[utt][1])
        rho = contour_correlation(f0_contour(x, sr_x), f0_contour(y, sr_y))
        if rho is not None:
            values.append(rho)
    return {"rho_f0": float(np.mean(values)) if values else None, "n_utterances": len(values),
            "n_skipped": len(pairs) - len(values)}
