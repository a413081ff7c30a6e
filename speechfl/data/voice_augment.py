"""Voice and tempo perturbation of log-mel feature batches: VTLP-style frequency warping and tempo change.

Unseen voices, not fitting, limit held-out-speaker CER on our corpora, so training sees more
voices than it has speakers:

* **Vocal-tract-length perturbation** (Jaitly & Hinton 2013, "Vocal Tract Length Perturbation
  (VTLP) improves speech recognition"): each utterance's spectrum is warped in frequency,
  ``S'(f) = S(f / alpha)`` with ``alpha ~ U[alpha_low, alpha_high]`` drawn per utterance. On
  log-mel features this is a resampling of the mel axis: output bin ``i`` (centre ``f_i`` Hz)
  reads the input at the fractional mel bin of ``f_i / alpha``, linearly interpolated; bins whose
  source lies above the top band repeat the top band.
* **Tempo perturbation** (Ko et al. 2015, "Audio augmentation for speech recognition", without its
  pitch change): the whole padded batch is resampled in time by ``rate ~ U[rate_low, rate_high]``
  (one draw per batch), so every utterance's *relative* length is unchanged and the caller's
  ``lengths`` stay valid. ``rate > 1`` is faster speech (fewer frames).

Applied to cached features (never written to: the output is a new tensor), so it costs no
feature extraction; random draws use the global torch generator, which every engine seeds per
(run, round, client). Compose with SpecAugment via ``torch.nn.Sequential``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def hz_to_mel(f):
    """HTK mel scale (SpeechBrain's ``Fbank`` default): 2595 log10(1 + f / 700)."""
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_centres(n_mels: int, sample_rate: int = 16000, f_min: float = 0.0, f_max: float = None) -> torch.Tensor:
    """Centre frequencies (Hz) of ``n_mels`` triangular filters equally spaced in mel from f_min to f_max."""
    f_max = sample_rate / 2 if f_max is None else f_max
    m = torch.linspace(float(hz_to_mel(torch.tensor(f_min, dtype=torch.float64))),
                       float(hz_to_mel(torch.tensor(f_max, dtype=torch.float64))), n_mels + 2, dtype=torch.float64)
    return mel_to_hz(m[1:-1])


def warp_frequency(feats: torch.Tensor, alpha: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """Warp each utterance of [B, T, F] log-mel features by its factor ``alpha`` [B]: out(f) = in(f / alpha)."""
    B, T, n = feats.shape
    centres = mel_centres(n, sample_rate).to(torch.float64)  # float64: alpha = 1 must give the input back
    m = hz_to_mel(centres)
    step = m[1] - m[0] if n > 1 else torch.tensor(1.0, dtype=torch.float64)
    src = hz_to_mel(centres[None, :] / alpha[:, None].to(torch.float64))  # [B, F] source mel
    pos = ((src - m[0]) / step).clamp(0, n - 1)  # fractional source bin
    pos = torch.where((pos - pos.round()).abs() < 1e-9, pos.round(), pos)
    lo = pos.floor().long().clamp(max=n - 1)
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo.to(pos.dtype)).to(feats.dtype)[:, None, :]
    take = lambda idx: torch.gather(feats, 2, idx[:, None, :].expand(B, T, n))  # noqa: E731
    return take(lo) * (1 - w) + take(hi) * w


def change_tempo(feats: torch.Tensor, rate: float) -> torch.Tensor:
    """Resample [B, T, F] in time to ``round(T / rate)`` frames (linear interpolation)."""
    B, T, n = feats.shape
    new_t = max(1, int(round(T / rate)))
    if new_t == T:
        return feats.clone()
    out = F.interpolate(feats.transpose(1, 2), size=new_t, mode="linear", align_corners=True)
    return out.transpose(1, 2).contiguous()


class VoicePerturb(torch.nn.Module):
    """Random VTLP warp per utterance and tempo change per batch of [B, T, F] log-mel features.

    Parameters
    ----------
    alpha_low, alpha_high : float
        Range of the frequency-warp factor (1 = off). Jaitly & Hinton use 0.9-1.1.
    rate_low, rate_high : float
        Range of the tempo factor (1 = off). Ko et al. use 0.9, 1.0, 1.1.
    sample_rate : int
        Sample rate the features were computed at (places the mel centres).
    """

    def __init__(self, alpha_low: float = 0.9, alpha_high: float = 1.1, rate_low: float = 0.9,
                 rate_high: float = 1.1, sample_rate: int = 16000):
        super().__init__()
        for name, lo, hi in (("alpha", alpha_low, alpha_high), ("rate", rate_low, rate_high)):
            if not 0 < lo <= hi or not math.isfinite(hi):
                raise ValueError(f"{name} range must satisfy 0 < {name}_low <= {name}_high, got [{lo}, {hi}]")
        self.alpha = (float(alpha_low), float(alpha_high))
        self.rate = (float(rate_low), float(rate_high))
        self.sample_rate = int(sample_rate)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if feats.dim() != 3:
            raise ValueError(f"feats must be [B, T, F], got {tuple(feats.shape)}")
        B = feats.shape[0]
        lo, hi = self.alpha
        alpha = lo + (hi - lo) * torch.rand(B)
        out = warp_frequency(feats, alpha, self.sample_rate)
        lo, hi = self.rate
        rate = lo + (hi - lo) * float(torch.rand(()))
        return change_tempo(out, rate)
