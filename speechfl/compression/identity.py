"""Identity compressor: the float32 vector as is (the uncompressed baseline)."""

from __future__ import annotations

import numpy as np

from speechfl.compression.base import COMPRESSORS, CompressionContext, Compressor
from speechfl.compression.wire import Reader, buffer


@COMPRESSORS.register("identity")
class Identity(Compressor):
    """No compression: body = ``d`` little-endian float32 values (``12 + 4 d`` bytes in all).

    NaN and Inf are carried unchanged, so the server's own validation sees them.
    """

    name = "identity"
    kind_id = 1
    accepts_nonfinite = True
    linear = True

    def is_contractive(self, dim: int) -> bool:
        return True

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        return [buffer(x.astype("<f4", copy=False))]

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        return reader.array("<f4", ctx.dim, "float32 values").copy()
