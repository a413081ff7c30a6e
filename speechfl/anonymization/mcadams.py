"""McAdams-coefficient anonymization: move the LPC formant poles by raising their angles to ``alpha``.

Patino et al. 2021, "Speaker anonymisation using the McAdams coefficient" (VoicePrivacy
baseline B2). Per frame (20 ms Hann window, 10 ms hop):

1. LPC of order 20 (autocorrelation method, :mod:`speechfl.anonymization.lpc`):
   ``A(z) = prod_k (1 - p_k z^-1)``.
2. Residual ``e = A(z) x`` (inverse filtering).
3. Every complex pole ``p_k = |p_k| e^{j phi_k}`` with ``0 < phi_k < pi`` moves to
   ``|p_k| e^{j phi_k^alpha}`` (angle in radians; its conjugate follows); real poles stay.
   New angles are capped at ``pi - 1e-3`` so a conjugate pair never meets at Nyquist.
4. Synthesis ``y = e / A'(z)``; frames are overlap-added; for ``alpha != 1`` the output is
   rescaled to the input's RMS (moving poles changes the filter gain).

The periodic Hann window at 50 % overlap sums to one, so with ``alpha = 1`` (poles unchanged)
the output equals the input up to numerical error. Magnitudes are kept, so ``1/A'(z)`` is
stable whenever ``1/A(z)`` is. Duration is preserved exactly. This is our own implementation;
the VPC one relies on a private librosa function.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from speechfl.anonymization.lpc import lpc, poly, roots

_MAX_ANGLE = np.pi - 1e-3


def mcadams_poles(a: np.ndarray, alpha: float) -> np.ndarray:
    """Predictor polynomials ``[F, p+1]`` with complex pole angles raised to ``alpha`` (step 3 above)."""
    if alpha <= 0:
        raise ValueError(f"McAdams alpha must be > 0, got {alpha}")
    p = roots(a)
    ang = np.angle(p)
    moved = np.abs(ang) > 1e-9
    mag = np.abs(p)
    new = np.where(moved, np.sign(ang) * np.minimum(np.abs(ang) ** alpha, _MAX_ANGLE), ang)
    # real poles (angle 0 or pi) keep their exact value
    real = ~moved | (np.abs(np.abs(ang) - np.pi) < 1e-9)
    out = np.where(real, p, mag * np.exp(1j * new))
    return poly(out)


def frame_signal(x: np.ndarray, win: int, hop: int):
    """Zero-padded frames ``[F, win]`` covering ``x`` and the padding used (``win`` each side)."""
    padded = np.concatenate([np.zeros(win), x, np.zeros(win + hop)])
    n_frames = (len(padded) - win) // hop + 1
    idx = np.arange(win)[None, :] + hop * np.arange(n_frames)[:, None]
    return padded[idx], len(padded)


def mcadams(wav: np.ndarray, sample_rate: int, alpha: float, order: int = 20, frame_ms: float = 20.0,
            hop_ms: float = 10.0) -> np.ndarray:
    """McAdams transform of a mono waveform (same length, float64); see the module docstring."""
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"expected a non-empty 1-D waveform, got shape {x.shape}")
    win = int(round(sample_rate * frame_ms / 1000))
    hop = int(round(sample_rate * hop_ms / 1000))
    if win != 2 * hop:
        raise ValueError(f"frame ({win} samples) must be twice the hop ({hop}) for Hann overlap-add")
    window = np.hanning(win + 1)[:win]  # periodic Hann: shifted copies at hop win/2 sum to 1
    frames, total = frame_signal(x, win, hop)
    frames = frames * window
    a = lpc(frames, order)
    a_new = a if alpha == 1 else mcadams_poles(a, alpha)
    out = np.zeros(total)
    for f in range(frames.shape[0]):
        if not frames[f].any():
            continue
        residual = lfilter(a[f], [1.0], frames[f])
        out[f * hop : f * hop + win] += lfilter([1.0], a_new[f], residual)
    y = out[win : win + x.size]
    if not np.isfinite(y).all():
        raise FloatingPointError("McAdams synthesis diverged (non-finite samples)")
    if alpha != 1:
        # moving poles changes the filter gain; keep the input's loudness (VPC rescales too)
        rms_in, rms_out = np.sqrt(np.mean(x * x)), np.sqrt(np.mean(y * y))
        if rms_out > 0:
            y = y * (rms_in / rms_out)
    return y
