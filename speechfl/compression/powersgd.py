"""PowerSGD: rank-r approximation of matrix-shaped parameters by one power step."""

from __future__ import annotations

import struct
from typing import Any, List, Tuple

import numpy as np
import torch

from speechfl.compression.base import (
    COMPRESSORS,
    CompressionContext,
    Compressor,
    Payload,
    build_nested,
    derive_seed,
)
from speechfl.compression.wire import CompressionError, Reader, buffer

BODY = struct.Struct("<HI")  # rank, number of compressed matrices
STATE_KEY = "powersgd_q"

Matrix = Tuple[int, int, int, int]  # offset, n rows, m columns, effective rank


@COMPRESSORS.register("powersgd")
class PowerSGD(Compressor):
    """Rank-r PowerSGD (Vogels, Karimireddy & Jaggi, NeurIPS 2019), one client at a time.

    Each parameter of 2 or more dimensions is viewed as ``M`` of shape
    ``[shape[0], prod(shape[1:])]`` and, with ``Q`` of shape ``[m, r]``::

        P = M Q,   P <- orthonormalize(P) (reduced QR),   Q = M^T P,   M_hat = P Q^T

    ``M_hat = P P^T M`` is the projection of ``M`` onto ``span(P)``: exact when
    ``rank(M) <= r`` (for a generic ``Q``) and contractive otherwise. With
    ``warm_start`` the new ``Q`` is kept in ``state["powersgd_q"]`` and starts the
    next round's power step (the paper's warm start); the first ``Q``, and any
    all-zero column of a stored ``Q``, is drawn N(0, 1) from ``(seed, round)``.
    A matrix is compressed only if ``r (n + m) < n m`` with ``r = min(rank, n, m)``;
    vectors and such small matrices are concatenated (in layout order) and sent
    through ``fallback`` (default identity float32).

    Wire: body = rank uint16, number of compressed matrices uint32, then per
    compressed matrix ``P`` ``[n, r]`` and ``Q`` ``[m, r]`` as float32, then the
    fallback's own payload (absent when nothing falls back).

    Parameters
    ----------
    rank : int
        Target rank ``r`` >= 1.
    fallback : spec
        Compressor spec for the leftover coordinates (None = identity).
    warm_start : bool
        Reuse the previous round's ``Q`` (default True).
    """

    name = "powersgd"
    kind_id = 8

    def __init__(self, rank: int = 4, fallback: Any = None, warm_start: bool = True):
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank < 2**16:
            raise ValueError(f"powersgd: rank must be an int in [1, 65535], got {rank!r}")
        if not isinstance(warm_start, bool):
            raise TypeError(f"powersgd: warm_start must be a bool, got {warm_start!r}")
        self.rank = rank
        self.fallback = build_nested(fallback, "powersgd fallback")
        self.warm_start = warm_start

    def is_contractive(self, dim: int) -> bool:
        # each matrix: an orthogonal projection; leftovers: the fallback (checked at d, an upper bound)
        return self.fallback.is_contractive(dim)

    def plan(self, ctx: CompressionContext) -> Tuple[List[Matrix], np.ndarray]:
        """Compressed matrices ``(offset, n, m, r)`` and the flat indices that fall back."""
        if not ctx.layout:
            raise ValueError("powersgd needs ctx.layout (parameter shapes) to find matrices")
        mats, rest, off = [], [], 0
        for _, shape in ctx.layout:
            size = int(np.prod(shape, dtype=np.int64))
            if len(shape) >= 2:
                n, m = int(shape[0]), size // max(int(shape[0]), 1)
                r = min(self.rank, n, m)
                if r * (n + m) < n * m:
                    mats.append((off, n, m, r))
                    off += size
                    continue
            rest.append(np.arange(off, off + size, dtype=np.int64))
            off += size
        return mats, (np.concatenate(rest) if rest else np.zeros(0, np.int64))

    def _start_q(self, state: dict, mats: List[Matrix], ctx: CompressionContext) -> List[np.ndarray]:
        need = sum(m * r for _, _, m, r in mats)
        stored = state.get(STATE_KEY) if self.warm_start else None
        if stored is not None:
            if not isinstance(stored, torch.Tensor) or stored.dim() != 1 or stored.numel() != need:
                raise ValueError(
                    f"state[{STATE_KEY!r}] has shape {tuple(getattr(stored, 'shape', ()))}, this layout and "
                    f"rank need [{need}]: the model layout or the rank changed between rounds"
                )
            flat = stored.detach().cpu().to(torch.float32).numpy()
        rng = np.random.Generator(np.random.PCG64(derive_seed(ctx.seed, ctx.round, "powersgd-init", ctx.dim)))
        out, pos = [], 0
        for _, _, m, r in mats:
            fresh = rng.standard_normal((m, r), dtype=np.float32)
            if stored is None:
                out.append(fresh)
                continue
            q = flat[pos : pos + m * r].reshape(m, r).copy()
            dead = ~(np.abs(q).sum(axis=0) > 0)  # all-zero (or NaN) columns cannot restart the iteration
            q[:, dead] = fresh[:, dead]
            out.append(q)
            pos += m * r
        return out

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        mats, rest = self.plan(ctx)
        parts, new_q = [BODY.pack(self.rank, len(mats))], []
        for (off, n, m, r), q in zip(mats, self._start_q(state, mats, ctx)):
            mat = x[off : off + n * m].reshape(n, m)
            p = np.linalg.qr(mat @ q, mode="reduced")[0].astype(np.float32)  # numpy: ~10x faster than torch here
            q_new = (mat.T @ p).astype(np.float32)
            parts += [buffer(p), buffer(q_new)]
            new_q.append(q_new.reshape(-1))
        if self.warm_start:
            state[STATE_KEY] = torch.from_numpy(np.concatenate(new_q) if new_q else np.zeros(0, np.float32))
        if rest.size:
            sub = self.fallback.encode(torch.from_numpy(x[rest]), state, ctx.child("powersgd_rest", int(rest.size)))
            parts.append(sub.data)
        return parts

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        mats, rest = self.plan(ctx)
        rank, count = reader.unpack(BODY, "powersgd parameters")
        if rank != self.rank or count != len(mats):
            raise CompressionError(
                f"powersgd payload has rank {rank} and {count} matrices; decoder expects rank "
                f"{self.rank} and {len(mats)} matrices for this layout"
            )
        out = np.empty(ctx.dim, np.float32)
        for off, n, m, r in mats:
            p = reader.array("<f4", n * r, "powersgd P").reshape(n, r)
            q = reader.array("<f4", m * r, "powersgd Q").reshape(m, r)
            np.matmul(p, q.T, out=out[off : off + n * m].reshape(n, m))  # written in place
        if rest.size:
            sub = Payload(reader.rest())
            out[rest] = self.fallback.decode(sub, ctx.child("powersgd_rest", int(rest.size))).numpy()
        return out
