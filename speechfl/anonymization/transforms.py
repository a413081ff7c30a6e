"""Model-free voice transforms other than McAdams: pitch shift, VTLN-like warping, speed perturbation.

Pure functions ``(wav [N] float, sample_rate, value) -> wav`` on numpy arrays.

* :func:`pitch_shift`: phase-vocoder time stretch by ``2^(s/12)`` then resampling back;
  duration preserved, formants move with the pitch.
* :func:`vtln_warp`: piecewise-linear frequency warping of the STFT magnitude (the VTLN warp
  of Kaldi / Lee & Rose 1998): a source frequency ``f`` moves to ``alpha f`` below the knee
  ``f_0 = 0.8 * nyquist * min(1, 1/alpha)`` and linearly onto ``nyquist`` above it; the phase of
  each output bin is kept, so duration and pitch are preserved while formants move.
* :func:`speed_perturb`: resampling by ``factor`` played at the original rate (Ko et al. 2015):
  pitch, formants and tempo all scale by ``factor``; the length becomes ``ceil(N / factor)``
  (the only transform here that changes duration, by design).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch

_N_FFT = 512
_HOP = 128


def pitch_shift(wav: np.ndarray, sample_rate: int, semitones: float) -> np.ndarray:
    """Shift the pitch by ``semitones`` (same length).

    Phase-vocoder time stretch by ``r = 2^(s/12)`` (``torchaudio.functional.phase_vocoder``),
    then resampling by ``1/r`` (``r`` approximated by a fraction of denominator <= 100, so the
    shift is exact to about 0.02 semitones) and trimming/padding to the input length.
    """
    import torchaudio.functional as AF

    x = torch.as_tensor(np.asarray(wav, dtype=np.float64))
    if semitones == 0:
        return x.numpy().copy()
    ratio = Fraction(2 ** (semitones / 12)).limit_denominator(100)
    window = torch.hann_window(_N_FFT, dtype=torch.float64)
    spec = torch.stft(x, _N_FFT, _HOP, window=window, return_complex=True, center=True)
    advance = torch.linspace(0, math.pi * _HOP, spec.shape[0], dtype=torch.float64)[..., None]
    stretched = AF.phase_vocoder(spec, 1.0 / float(ratio), advance)
    longer = torch.istft(stretched, _N_FFT, _HOP, window=window, center=True,
                         length=int(round(x.numel() * float(ratio))))
    y = AF.resample(longer.float(), ratio.numerator, ratio.denominator).double()
    return _fit_length(y, x.numel()).numpy()


def _fit_length(y: torch.Tensor, n: int) -> torch.Tensor:
    return y[:n] if y.numel() >= n else torch.nn.functional.pad(y, (0, n - y.numel()))


def vtln_source_frequency(f: np.ndarray, alpha: float, nyquist: float) -> np.ndarray:
    """Inverse of the piecewise-linear warp: the source frequency that lands on output ``f``."""
    knee_src = 0.8 * nyquist * min(1.0, 1.0 / alpha)
    knee_out = alpha * knee_src
    lower = f / alpha
    upper = knee_src + (f - knee_out) * (nyquist - knee_src) / (nyquist - knee_out)
    return np.where(f <= knee_out, lower, upper)


def vtln_warp(wav: np.ndarray, sample_rate: int, alpha: float) -> np.ndarray:
    """Warp the spectral envelope by ``alpha`` (>1 raises formants); same length."""
    if alpha <= 0:
        raise ValueError(f"warp factor must be > 0, got {alpha}")
    x = torch.as_tensor(np.asarray(wav, dtype=np.float64))
    if alpha == 1:
        return x.numpy().copy()
    window = torch.hann_window(_N_FFT, dtype=torch.float64)
    spec = torch.stft(x, _N_FFT, _HOP, window=window, return_complex=True, center=True)
    mag, phase = spec.abs().numpy(), spec.angle()
    bins = np.arange(mag.shape[0], dtype=np.float64)
    nyquist_bin = mag.shape[0] - 1
    src = vtln_source_frequency(bins, alpha, float(nyquist_bin))
    lo = np.clip(np.floor(src).astype(int), 0, nyquist_bin)
    hi = np.clip(lo + 1, 0, nyquist_bin)
    w = (src - lo)[:, None]
    warped = torch.as_tensor((1 - w) * mag[lo] + w * mag[hi])
    out = torch.istft(torch.polar(warped, phase), _N_FFT, _HOP, window=window, center=True, length=x.numel())
    return out.numpy()


def speed_perturb(wav: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """Resample so the audio plays ``factor`` times faster (length ``ceil(N / factor)``)."""
    import torchaudio.functional as AF

    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if factor == 1:
        return x.double().numpy()
    # a rational approximation of the factor keeps the polyphase filter small
    frac = Fraction(factor).limit_denominator(100)
    y = AF.resample(x, frac.numerator, frac.denominator)
    return _fit_length(y, math.ceil(x.numel() / factor)).double().numpy()
