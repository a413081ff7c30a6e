"""Half-precision casts: fp16 (IEEE binary16) and bf16 (bfloat16), round to nearest even.

Both are computed with numpy (bf16 by integer rounding of the float32 bits), which
gives the same bits as ``torch.Tensor.to`` but avoids torch's intra-op threads:
on a shared CPU those cost more than the conversion itself.
"""

from __future__ import annotations

import numpy as np

from speechfl.compression.base import COMPRESSORS, CompressionContext, Compressor
from speechfl.compression.wire import CompressionError, Reader, buffer

BF16_NAN = np.uint16(0x7FC0)


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest even; NaN -> 0x7FC0."""
    u = x.view(np.uint32)
    r = (u >> np.uint32(16)) & np.uint32(1)
    r += np.uint32(0x7FFF)
    r += u  # wraps only for NaN bit patterns, which are overwritten below
    r >>= np.uint32(16)
    out = r.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = BF16_NAN
    return out


def from_bf16_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns -> float32 (exact)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


class _Cast(Compressor):
    """Body = ``d`` 16-bit values (``12 + 2 d`` bytes in all).

    NaN and Inf pass through; a *finite* value that overflows the 16-bit range
    raises :class:`CompressionError` (the client's update cannot be encoded: the round rejects it) instead of
    silently becoming Inf.
    """

    accepts_nonfinite = True

    def is_contractive(self, dim: int) -> bool:
        return True  # relative rounding error <= 2**-8 per coordinate

    def to_bits(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def from_bits(self, bits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        bits = self.to_bits(x)
        exp_all_ones = np.uint16(0x7F80 if self.name == "bf16" else 0x7C00)
        inf = (bits & np.uint16(0x7FFF)) == exp_all_ones
        if inf.any():
            overflow = inf & np.isfinite(x)
            if overflow.any():
                i = int(np.flatnonzero(overflow)[0])
                raise CompressionError(
                    f"{self.name}: {int(overflow.sum())} finite values overflow {self.name} "
                    f"(e.g. x[{i}] = {float(x[i])!r}); use identity or scale the update"
                )
        return [buffer(bits.astype("<u2", copy=False))]

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        return self.from_bits(reader.array("<u2", ctx.dim, f"{self.name} values"))


@COMPRESSORS.register("fp16")
class FP16(_Cast):
    """Cast to IEEE half precision (max finite 65504, 11-bit significand)."""

    name = "fp16"
    kind_id = 2

    def to_bits(self, x: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):  # overflow is detected and reported by _encode
            return x.astype(np.float16).view(np.uint16)

    def from_bits(self, bits: np.ndarray) -> np.ndarray:
        return bits.view(np.float16).astype(np.float32)


@COMPRESSORS.register("bf16")
class BF16(_Cast):
    """Cast to bfloat16 (float32 range, 8-bit significand)."""

    name = "bf16"
    kind_id = 3

    def to_bits(self, x: np.ndarray) -> np.ndarray:
        return to_bf16_bits(x)

    def from_bits(self, bits: np.ndarray) -> np.ndarray:
        return from_bf16_bits(bits)
