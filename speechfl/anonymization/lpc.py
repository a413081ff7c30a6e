"""Linear prediction on frames, vectorised over frames (pure numpy).

Autocorrelation method: for a windowed frame ``x`` and order ``p`` the predictor
``A(z) = 1 + a_1 z^-1 + ... + a_p z^-p`` minimises the prediction error
``sum_n (x[n] + sum_k a_k x[n-k])^2``; its coefficients solve the Toeplitz normal
equations ``R a = -r``, solved by the Levinson-Durbin recursion (Makhoul 1975,
"Linear prediction: a tutorial review"). The autocorrelation method gives a
minimum-phase ``A(z)`` (all poles of ``1/A(z)`` inside the unit circle).
"""

from __future__ import annotations

import numpy as np


def autocorrelation(frames: np.ndarray, order: int) -> np.ndarray:
    """``r[f, k] = sum_n x_f[n] x_f[n+k]`` for ``k = 0..order``; frames ``[F, N]`` -> ``[F, order+1]``."""
    n = frames.shape[1]
    if order >= n:
        raise ValueError(f"LPC order {order} needs frames longer than {order} samples, got {n}")
    return np.stack([np.einsum("fn,fn->f", frames[:, : n - k], frames[:, k:]) for k in range(order + 1)], axis=1)


def levinson(r: np.ndarray) -> np.ndarray:
    """Predictor polynomials ``[F, p+1]`` (leading 1) from autocorrelations ``[F, p+1]``.

    Rows with ``r[0] == 0`` (silent frames) give ``A(z) = 1``. A tiny white-noise
    floor (``r[0] * (1 + 1e-9)``) keeps the recursion stable on degenerate frames.
    """
    r = np.asarray(r, dtype=np.float64)
    n_frames, p1 = r.shape
    order = p1 - 1
    a = np.zeros((n_frames, p1))
    a[:, 0] = 1.0
    silent = r[:, 0] <= 0
    err = np.where(silent, 1.0, r[:, 0] * (1 + 1e-9))
    for i in range(1, order + 1):
        acc = r[:, i] + np.einsum("fk,fk->f", a[:, 1:i], r[:, i - 1 : 0 : -1]) if i > 1 else r[:, 1].copy()
        k = np.where(silent, 0.0, -acc / err)
        prev = a[:, 1:i].copy()
        a[:, 1:i] = prev + k[:, None] * prev[:, ::-1]
        a[:, i] = k
        err = err * (1 - k * k)
    return a


def lpc(frames: np.ndarray, order: int) -> np.ndarray:
    """LPC polynomials ``[F, order+1]`` of windowed frames ``[F, N]`` (autocorrelation method)."""
    return levinson(autocorrelation(np.asarray(frames, dtype=np.float64), order))


def roots(a: np.ndarray) -> np.ndarray:
    """Roots ``[F, p]`` of each polynomial row ``[F, p+1]`` (leading coefficient 1), via companion matrices."""
    n_frames, p1 = a.shape
    p = p1 - 1
    comp = np.zeros((n_frames, p, p))
    comp[:, 0, :] = -a[:, 1:]
    comp[:, np.arange(1, p), np.arange(p - 1)] = 1.0
    return np.linalg.eigvals(comp)


def poly(r: np.ndarray) -> np.ndarray:
    """Monic polynomial rows ``[F, p+1]`` with roots ``r`` ``[F, p]`` (real part; roots come in conjugate pairs)."""
    n_frames, p = r.shape
    c = np.zeros((n_frames, p + 1), dtype=np.complex128)
    c[:, 0] = 1.0
    for k in range(p):
        c[:, 1 : k + 2] = c[:, 1 : k + 2] - r[:, k : k + 1] * c[:, : k + 1]
    return c.real
