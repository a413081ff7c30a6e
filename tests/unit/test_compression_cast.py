"""fp16 / bf16 casts: equal to torch's rounding, 2 bytes per value, overflow is an error."""

import numpy as np
import pytest
import torch

from speechfl.compression import CompressionContext, CompressionError, get_compressor


@pytest.mark.parametrize("name,dtype", [("fp16", torch.float16), ("bf16", torch.bfloat16)])
def test_cast_round_trip_equals_torch_cast(name, dtype):
    x = torch.randn(1001, generator=torch.Generator().manual_seed(0)) * 100
    x[0], x[1], x[2] = float("nan"), float("inf"), 1e-30  # carried / flushed exactly as torch does
    ctx = CompressionContext.flat(1001)
    comp = get_compressor(name)
    payload = comp.encode(x, {}, ctx)
    assert len(payload) == 12 + 2 * 1001
    # same bits as torch's cast (NaN payload bits are implementation-defined, so from index 1 on)
    assert payload.data[14:] == x[1:].to(dtype).view(torch.int16).numpy().astype("<i2").tobytes()
    out = comp.decode(payload, ctx)
    assert out.dtype == torch.float32
    assert torch.equal(out[1:], x[1:].to(dtype).float()) and torch.isnan(out[0])


def test_fp16_overflow_is_an_error_not_inf():
    x = torch.tensor([1.0, 70000.0, -2.0])
    with pytest.raises(CompressionError, match=r"1 finite values overflow fp16 \(e.g. x\[1\] = 70000.0\)"):
        get_compressor("fp16").encode(x, {}, CompressionContext.flat(3))
    ctx = CompressionContext.flat(3)
    out = get_compressor("bf16").decode(get_compressor("bf16").encode(x, {}, ctx), ctx)
    assert torch.equal(out, x.bfloat16().float())


def test_bits_equal_torch_on_hard_values():
    # rounding ties, subnormals, signed zeros, the largest finite values, infinities
    rng = np.random.default_rng(0)
    bits = np.concatenate([
        rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32),
        np.array([0x3F808000, 0x3F818000, 0x3F80FFFF, 0x00000001, 0x80000000, 0x7F7FFFFF, 0x7F7F8000,
                  0x7F7F7FFF, 0x7F800000, 0xFF800000, 0x477FE000, 0x477FF000, 0x477FEFFF, 0x33000001], np.uint32),
    ])
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        ref = torch.from_numpy(x.copy()).to(dtype)
        finite_ok = ~(torch.isinf(ref).numpy() & np.isfinite(x))
        xs = torch.from_numpy(x[finite_ok].copy())
        ctx = CompressionContext.flat(xs.numel())
        out = get_compressor(name).decode(get_compressor(name).encode(xs, {}, ctx), ctx)
        assert torch.equal(out.view(torch.int32), xs.to(dtype).float().view(torch.int32))
