"""Random-k sparsification with a mask shared by all clients and the server in a round."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from speechfl.compression.base import COMPRESSORS, CompressionContext, derive_seed
from speechfl.compression.sparse import Sparsifier


def shared_mask(seed: int, round: int, dim: int, k: int) -> np.ndarray:
    """Sorted uniform k-subset of ``range(dim)`` drawn from ``(seed, round)`` only.

    For small ``k / dim``: a Bernoulli(p) subset, with ``p`` a little above
    ``k / dim``, drawn as already-sorted positions from geometric gaps; then a
    uniform random surplus is dropped. Given its size a Bernoulli subset is a
    uniform subset of that size, so the result is a uniform k-subset, with no sort
    and no hash set (about twice as fast as ``Generator.choice``).
    """
    rng = np.random.Generator(np.random.PCG64(derive_seed(seed, round, "randk-mask", dim)))
    p = (k + 4.0 * math.sqrt(k) + 16.0) / dim
    if p > 0.25:
        idx = rng.choice(dim, size=k, replace=False).astype(np.int64)
        idx.sort()
        return idx
    while True:
        chunk = int(p * dim + 6.0 * math.sqrt(p * dim) + 16.0)
        pos = np.cumsum(rng.geometric(p, chunk)) - 1
        while pos[-1] < dim:  # rarely: the gaps did not reach the end yet
            pos = np.concatenate([pos, pos[-1] + np.cumsum(rng.geometric(p, chunk))])
        pos = pos[: np.searchsorted(pos, dim)]
        if pos.size >= k:
            break
        p = min(0.5, 1.25 * p)  # rarely: fewer than k successes, draw again
    surplus = pos.size - k
    if surplus:
        pos = np.delete(pos, rng.choice(pos.size, size=surplus, replace=False))
    return pos.astype(np.int64)


@COMPRESSORS.register("randk")
class RandK(Sparsifier):
    """Random-k (Stich et al. 2018; Konecny et al. 2016) with a shared per-round mask.

    The support ``S`` is a uniform k-subset drawn from ``(ctx.seed, ctx.round)``,
    identical on every client and on the server, so the body is only a 4-byte tag
    of the mask (checked on decode: a payload from another round fails) and the
    ``k`` float32 values (``16 + 4 k`` bytes in all), and the server may aggregate the
    ``[n, k]`` values (``decode_values``) before ``expand``. Decoded vector:
    ``C(x)_i = s x_i`` for ``i`` in ``S``, else 0, with ``s = d / k`` (unbiased:
    ``E[C(x)] = x``, variance ``(d/k - 1)||x||^2``) or ``s = 1`` when
    ``unbiased=False`` (biased but contractive; use that one under error feedback).

    Parameters
    ----------
    fraction, k : see :class:`speechfl.compression.topk.TopK`.
    unbiased : bool
        Rescale kept values by ``d / k`` (default True).
    """

    name = "randk"
    kind_id = 5
    shared_support = True
    linear = True  # x -> x[S] with S shared by all clients

    def __init__(self, fraction: Optional[float] = None, k: Optional[int] = None, unbiased: bool = True):
        super().__init__(fraction=fraction, k=k)
        if not isinstance(unbiased, bool):
            raise TypeError(f"randk: unbiased must be a bool, got {unbiased!r}")
        self.unbiased = unbiased

    def is_contractive(self, dim: int) -> bool:
        return (not self.unbiased) or dim / self.k_for(dim) - 1 < 1

    def support_np(self, ctx: CompressionContext) -> np.ndarray:
        return shared_mask(ctx.seed, ctx.round, ctx.dim, self.k_for(ctx.dim))

    def mask_tag(self, ctx: CompressionContext) -> int:
        return derive_seed(ctx.seed, ctx.round, "randk-mask", ctx.dim, self.k_for(ctx.dim)) & 0xFFFFFFFF

    def value_scale(self, ctx: CompressionContext) -> float:
        return ctx.dim / self.k_for(ctx.dim) if self.unbiased else 1.0

    def select(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> np.ndarray:
        return self.support_np(ctx)
