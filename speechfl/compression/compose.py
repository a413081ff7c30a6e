"""Composition: a sparsifier picks coordinates, another compressor codes their values."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from speechfl.compression.base import COMPRESSORS, CompressionContext, Compressor, Payload, build_nested
from speechfl.compression.qsgd import QSGD
from speechfl.compression.sparse import Sparsifier, expand_on_support
from speechfl.compression.topk import TopK
from speechfl.compression.wire import Reader


@COMPRESSORS.register("compose")
class Compose(Compressor):
    """``C(x) = S^T V(S x)``: sparsifier ``S`` (top-k or random-k), then ``V`` on the kept values.

    ``stages = [sparsifier, values]``; with more stages the tail is composed
    recursively (``[topk, randk, qsgd]`` = top-k, then random-k of those, then
    QSGD). Example: ``{name: compose, stages: [{name: topk, fraction: 0.01},
    {name: qsgd, levels: 127}]}`` (also registered as ``topk_q8``).

    Wire: body = the sparsifier's index block (delta-varint or bitmap, the smaller;
    a 4-byte mask tag for a shared random-k mask), then the values compressor's complete
    payload for the ``k``-vector (its own 12-byte header included).
    A random-k first stage keeps the shared-support API (``support``,
    ``decode_values``, ``expand``). Contractive iff both stages are.
    """

    name = "compose"
    kind_id = 9

    def __init__(self, stages: Sequence[Any]):
        if not isinstance(stages, (list, tuple)) or len(stages) < 2:
            raise ValueError(f"compose: stages must be a list of at least 2 compressor specs, got {stages!r}")
        first = build_nested(stages[0], "compose stage 1")
        if not isinstance(first, Sparsifier):
            raise ValueError(
                f"compose: the first stage must be a sparsifier (topk or randk), got {first.name!r}; "
                "quantizers go after it"
            )
        self.sparsifier = first
        if len(stages) > 2:
            self.values = Compose(list(stages[1:]))
        else:
            self.values = build_nested(stages[1], "compose stage 2")
        self.shared_support = first.shared_support
        self.linear = first.linear and self.values.linear

    def is_contractive(self, dim: int) -> bool:
        return self.sparsifier.is_contractive(dim) and self.values.is_contractive(self.sparsifier.k_for(dim))

    def _values_ctx(self, ctx: CompressionContext) -> CompressionContext:
        return ctx.child("values", self.sparsifier.k_for(ctx.dim))

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        idx = self.sparsifier.select(x, state, ctx)
        sub = self.values.encode(torch.from_numpy(x[idx]), state, self._values_ctx(ctx))
        return [*self.sparsifier.write_support(idx, ctx), sub.data]

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        idx = self.sparsifier.read_support(reader, ctx)
        values = self.values.decode(Payload(reader.rest()), self._values_ctx(ctx)).numpy()
        return self.sparsifier.scatter(idx, values, ctx)

    def support(self, ctx: CompressionContext) -> torch.Tensor:
        if not self.shared_support:
            return super().support(ctx)
        return self.sparsifier.support(ctx)

    def decode_values(self, payload: Payload, ctx: CompressionContext) -> torch.Tensor:
        if not self.shared_support:
            return super().decode_values(payload, ctx)
        reader = self.open(payload, ctx)
        self.sparsifier.check_mask_tag(reader, ctx)
        return self.values.decode(Payload(reader.rest()), self._values_ctx(ctx))

    def expand(self, values_k: torch.Tensor, ctx: CompressionContext) -> torch.Tensor:
        if not self.shared_support:
            return super().expand(values_k, ctx)
        return expand_on_support(self.sparsifier, values_k, ctx)

    def __repr__(self) -> str:
        return f"Compose({self.sparsifier!r} -> {self.values!r})"


@COMPRESSORS.register("topk_q8")
class TopKQ8(Compose):
    """Top-k, then 8-bit QSGD (127 levels, bucketed norms) of the kept values.

    Same wire format as ``compose`` with ``[topk, qsgd(levels=127)]``.
    """

    name = "topk_q8"

    def __init__(self, fraction: Optional[float] = None, k: Optional[int] = None, bucket_size: Optional[int] = 512):
        super().__init__([TopK(fraction=fraction, k=k), QSGD(levels=127, bucket_size=bucket_size)])
