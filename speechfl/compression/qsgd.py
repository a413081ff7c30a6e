"""QSGD: unbiased stochastic quantization to s levels per bucket (Alistarh et al. 2017)."""

from __future__ import annotations

import math
import struct
from typing import Optional

import numpy as np

from speechfl.compression.base import COMPRESSORS, CompressionContext, Compressor, client_rng
from speechfl.compression.bitpack import pack, packed_nbytes, unpack, width_for
from speechfl.compression.wire import CompressionError, Reader, buffer

BODY = struct.Struct("<HI")  # levels s, bucket size (0 = one bucket of size d)
_CHUNK = 1 << 17  # coordinates per encoding chunk (fixed: it fixes the random stream too)


def add_stochastic_rounding(y: np.ndarray, rng: np.random.Generator) -> None:
    """In place: ``y <- floor(y / 2**16 + u)``, ``u = (U + 1/2) / 2**16``, ``U`` uniform on 16 bits.

    ``y`` comes in pre-scaled by ``2**16``, so the 16-bit draws are added as integers;
    four draws per 64-bit generator output: about twice as fast as float32 uniforms.
    ``E[floor(y / 2**16 + u)] = y / 2**16`` up to the resolution of ``u`` and of
    float32 ``y``: ``max(2**-17, |y| 2**-40)`` of a step, i.e. ``2**-17`` for
    ``|y| <= 2**23`` (s <= 127: no coarser than float32 rounding of the sum itself)
    and ``2**-9`` at most (s = 32767).
    """
    raw = rng.bit_generator.random_raw((y.size + 3) // 4).view(np.uint16)[: y.size]
    y += raw
    y += np.float32(0.5)
    y *= np.float32(2.0**-16)  # exact: a power of two
    np.floor(y, out=y)


def _scale_to_levels(xb: np.ndarray, yb: np.ndarray, s: float) -> np.ndarray:
    """Row norms of ``xb`` [rows, b]; writes ``yb = s * xb / norm`` (0 for a zero row)."""
    nb = np.sqrt(np.einsum("ij,ij->i", xb, xb)).astype(np.float32)
    scale = np.divide(np.float32(s), nb, out=np.zeros_like(nb), where=nb > 0)
    np.multiply(xb, scale[:, None], out=yb)
    # squares of very small or large values under/overflow float32: redo those rows in float64
    redo = np.flatnonzero(~((nb >= 1e-18) & (nb < np.inf)))
    if redo.size:
        x64 = xb[redo].astype(np.float64)
        nb[redo] = np.sqrt(np.einsum("ij,ij->i", x64, x64)).astype(np.float32)
        n64 = nb[redo].astype(np.float64)  # scale by the norm that is sent, so decode matches
        yb[redo] = x64 * np.divide(s, n64, out=np.zeros_like(n64), where=n64 > 0)[:, None]
    return nb


@COMPRESSORS.register("qsgd")
class QSGD(Compressor):
    """Stochastic s-level quantization with a norm per bucket.

    For each bucket ``v`` (``bucket_size`` consecutive coordinates; one bucket of
    size ``d`` if ``bucket_size`` is None)::

        Q(v_i) = ||v||_2 / s * sign(v_i) * xi_i,   xi_i = l + 1 w.p. s|v_i|/||v|| - l, else l,
        l = floor(s |v_i| / ||v||_2)

    so ``E[Q(v)] = v`` and ``E||Q(v) - v||^2 <= min(b / s^2, sqrt(b) / s) ||v||^2``
    (Alistarh et al., NeurIPS 2017, Lemma 3.1; ``b`` = bucket size). Implemented as
    stochastic rounding of the signed value, ``floor(s v_i / ||v|| + u)``, ``u ~ U[0, 1)``,
    which has exactly that distribution (``u`` has 16 random bits: unbiased up to
    ``2**-17`` of a step, see :func:`add_stochastic_rounding`).

    Wire: body = ``levels`` uint16, ``bucket_size`` uint32, one float32 norm per
    bucket, then the signed level plus ``s`` (a code in ``[0, 2s]``) bit-packed at the
    smallest width in {2, 4, 8, 16} bits that holds ``2s + 1`` codes (s = 127: one
    byte per coordinate).

    Parameters
    ----------
    levels : int
        ``s`` in [1, 32767].
    bucket_size : int or None
        Coordinates per norm (default 512, as in the paper's experiments).
    """

    name = "qsgd"
    kind_id = 6

    def __init__(self, levels: int = 127, bucket_size: Optional[int] = 512):
        if isinstance(levels, bool) or not isinstance(levels, int) or not 1 <= levels <= 32767:
            raise ValueError(f"qsgd: levels must be an int in [1, 32767], got {levels!r}")
        if bucket_size is not None and (
            isinstance(bucket_size, bool) or not isinstance(bucket_size, int) or not 1 <= bucket_size < 2**32
        ):
            raise ValueError(f"qsgd: bucket_size must be None or an int >= 1, got {bucket_size!r}")
        self.levels = levels
        self.bucket_size = bucket_size
        self.width = width_for(2 * levels + 1)

    def bucket_for(self, dim: int) -> int:
        return dim if self.bucket_size is None else min(self.bucket_size, dim)

    def variance_bound(self, dim: int) -> float:
        """omega with E||Q(v) - v||^2 <= omega ||v||^2."""
        b, s = self.bucket_for(dim), self.levels
        return min(b / s**2, math.sqrt(b) / s)

    def is_contractive(self, dim: int) -> bool:
        return self.variance_bound(dim) < 1.0

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        d, s, b = ctx.dim, self.levels, self.bucket_for(ctx.dim)
        nfull, tail = divmod(d, b)
        rng = client_rng(state, ctx, "qsgd")
        norms = np.empty(nfull + (tail > 0), np.float32)
        codes = np.empty(d, np.uint16 if self.width == 16 else np.uint8)
        # whole buckets in cache-sized chunks (reused buffer, no [d] temporaries), then the short last one
        rows = max(1, _CHUNK // b)
        spans = [(r, min(r + rows, nfull), b) for r in range(0, nfull, rows)]
        if tail:
            spans.append((nfull, nfull + 1, tail))
        buf = np.empty(min(d, rows * b), np.float32)
        for r0, r1, cols in spans:
            lo, n = r0 * b, (r1 - r0) * cols
            y = buf[:n]
            xb, yb = x[lo : lo + n].reshape(r1 - r0, cols), y.reshape(r1 - r0, cols)
            norms[r0:r1] = _scale_to_levels(xb, yb, s * 2**16)
            add_stochastic_rounding(y, rng)
            np.clip(y, -s, s, out=y)  # guards float rounding of |v_i| s / ||v|| just above s
            np.add(y, s, out=codes[lo : lo + n], casting="unsafe")
        return [BODY.pack(s, self.bucket_size or 0), buffer(norms), buffer(pack(codes, self.width))]

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        d, s, b = ctx.dim, self.levels, self.bucket_for(ctx.dim)
        levels, bucket = reader.unpack(BODY, "qsgd parameters")
        if levels != s or bucket != (self.bucket_size or 0):
            raise CompressionError(
                f"qsgd payload has levels={levels}, bucket_size={bucket}; decoder has "
                f"levels={s}, bucket_size={self.bucket_size or 0}"
            )
        nfull, tail = divmod(d, b)
        norms = reader.array("<f4", nfull + (tail > 0), "bucket norms")
        if not (np.isfinite(norms).all() and (norms >= 0).all()):
            raise CompressionError("qsgd payload has negative or non-finite bucket norms")
        codes = unpack(reader.array("u1", packed_nbytes(d, self.width), "qsgd codes"), self.width, d)
        if int(codes.max()) > 2 * s:
            raise CompressionError(f"qsgd code {int(codes.max())} is out of range [0, {2 * s}]")
        out = np.subtract(codes, s, dtype=np.float32)
        step = norms / np.float32(s)
        if nfull:
            full = out[: nfull * b].reshape(nfull, b)  # a view: scaled in place
            full *= step[:nfull, None]
        if tail:
            out[nfull * b :] *= step[-1]
        return out
