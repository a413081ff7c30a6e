"""Sparsifiers: keep k coordinates of the vector and send their values.

A sparsifier chooses a sorted support ``S`` (``select``) and sends ``x[S]``. If
the support is private to the client (top-k) it is sent as an index block
(:mod:`speechfl.compression.indices`); if it is shared (random-k with a per-round
mask) only a 4-byte tag of the mask and the values go over the wire. Standalone body::

    index block (private support) | mask tag uint32 (shared support)
    k float32 values

:class:`speechfl.compression.compose.Compose` reuses ``select``/``read_support``
to send the values through another compressor instead of raw float32.
"""

from __future__ import annotations

import math
import struct
from typing import Optional

import numpy as np
import torch

from speechfl.compression.base import CompressionContext, Compressor, Payload
from speechfl.compression.indices import decode_indices, encode_indices
from speechfl.compression.wire import CompressionError, Reader, buffer

MASK_TAG = struct.Struct("<I")


def resolve_k(fraction: Optional[float], k: Optional[int], dim: int, who: str) -> int:
    """Number of kept coordinates from exactly one of ``fraction`` (of ``dim``) or ``k``."""
    if k is not None:
        if k > dim:
            raise ValueError(f"{who}: k = {k} exceeds the vector length {dim}")
        return k
    return max(1, min(dim, int(math.floor(fraction * dim + 0.5))))  # round half up, not to even


def check_k_params(fraction: Optional[float], k: Optional[int], who: str) -> None:
    """Constructor check: exactly one of ``fraction`` in (0, 1] or integer ``k`` >= 1."""
    if (fraction is None) == (k is None):
        raise ValueError(f"{who}: give exactly one of fraction or k (got fraction={fraction!r}, k={k!r})")
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ValueError(f"{who}: k must be an int >= 1, got {k!r}")
    bad_type = isinstance(fraction, bool) or not isinstance(fraction, (int, float))
    if fraction is not None and (bad_type or not 0 < fraction <= 1):
        raise ValueError(f"{who}: fraction must be in (0, 1], got {fraction!r}")


class Sparsifier(Compressor):
    """Base for top-k and random-k; ``k`` comes from exactly one of ``fraction`` or ``k``."""

    def __init__(self, fraction: Optional[float] = None, k: Optional[int] = None):
        check_k_params(fraction, k, self.name)
        self.fraction = fraction
        self.k = k

    def k_for(self, dim: int) -> int:
        return resolve_k(self.fraction, self.k, dim, self.name)

    def select(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> np.ndarray:
        """Sorted int64 indices of the kept coordinates."""
        raise NotImplementedError(f"{type(self).__name__} does not implement select")

    def value_scale(self, ctx: CompressionContext) -> float:
        """Factor applied to the kept values on decode (1 unless the sparsifier unbiases)."""
        return 1.0

    def support_np(self, ctx: CompressionContext) -> np.ndarray:
        raise TypeError(f"{self.name!r} has no shared support")

    def mask_tag(self, ctx: CompressionContext) -> int:
        """32-bit fingerprint of a shared mask (so a payload decoded in the wrong round fails)."""
        raise TypeError(f"{self.name!r} has no shared support")

    def write_support(self, idx: np.ndarray, ctx: CompressionContext) -> list:
        """Byte parts describing the support: an index block, or a 4-byte mask tag if shared."""
        if self.shared_support:
            return [MASK_TAG.pack(self.mask_tag(ctx))]
        return encode_indices(idx, ctx.dim)

    def check_mask_tag(self, reader: Reader, ctx: CompressionContext) -> None:
        """Read the 4-byte tag of a shared-mask payload; raise unless it is this round's mask."""
        (tag,) = reader.unpack(MASK_TAG, "shared mask tag")
        if tag != self.mask_tag(ctx):
            raise CompressionError(
                f"{self.name} payload was made with another shared mask (tag {tag:#010x}, expected "
                f"{self.mask_tag(ctx):#010x}): wrong round, run seed or k"
            )

    def read_support(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        """The support of a payload: from the index block, or recomputed if shared."""
        if self.shared_support:
            self.check_mask_tag(reader, ctx)
            return self.support_np(ctx)
        idx = decode_indices(reader, ctx.dim)
        k = self.k_for(ctx.dim)
        if idx.size != k:
            raise CompressionError(f"{self.name} payload keeps {idx.size} coordinates, this decoder expects k = {k}")
        return idx

    def scatter(self, idx: np.ndarray, values: np.ndarray, ctx: CompressionContext) -> np.ndarray:
        out = np.zeros(ctx.dim, np.float32)
        scale = self.value_scale(ctx)
        out[idx] = values if scale == 1.0 else values * np.float32(scale)
        return out

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        idx = self.select(x, state, ctx)
        return [*self.write_support(idx, ctx), buffer(x[idx].astype("<f4"))]

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        idx = self.read_support(reader, ctx)
        values = reader.array("<f4", idx.size, "kept values")
        return self.scatter(idx, values, ctx)

    # ---- shared-support API: only meaningful when shared_support is True ---------------------
    def support(self, ctx: CompressionContext) -> torch.Tensor:
        return torch.from_numpy(self.support_np(ctx))

    def decode_values(self, payload: Payload, ctx: CompressionContext) -> torch.Tensor:
        if not self.shared_support:
            return super().decode_values(payload, ctx)
        reader = self.open(payload, ctx)
        self.check_mask_tag(reader, ctx)
        values = reader.array("<f4", self.k_for(ctx.dim), "kept values").copy()
        reader.finish()
        return torch.from_numpy(values)

    def expand(self, values_k: torch.Tensor, ctx: CompressionContext) -> torch.Tensor:
        if not self.shared_support:
            return super().expand(values_k, ctx)
        return expand_on_support(self, values_k, ctx)


def expand_on_support(sparsifier: Sparsifier, values_k: torch.Tensor, ctx: CompressionContext) -> torch.Tensor:
    """Scatter ``[k]`` values onto the shared support, times the sparsifier's scale."""
    k = sparsifier.k_for(ctx.dim)
    if not isinstance(values_k, torch.Tensor) or values_k.dim() != 1 or values_k.numel() != k:
        raise ValueError(f"expected a tensor of shape [{k}], got {getattr(values_k, 'shape', type(values_k))}")
    values = values_k.detach().cpu().to(torch.float32).numpy()
    return torch.from_numpy(sparsifier.scatter(sparsifier.support_np(ctx), values, ctx))
