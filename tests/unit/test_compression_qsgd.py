"""QSGD: values on the two neighbouring levels, unbiased, bounded variance, exact bytes, reproducible."""

import math
import struct

import numpy as np
import pytest
import torch

from speechfl.compression import CompressionContext, CompressionError, Payload, get_compressor


def _buckets(x, b):
    return [x[i : i + b] for i in range(0, x.numel(), b)]


def _neighbours(x, s, b):
    """Per coordinate: the two levels floor/ceil(s |x_i| / ||bucket||) * ||bucket|| / s, signed (float64)."""
    lo, hi = [], []
    for v in _buckets(x.double(), b):
        norm = float(v.norm())
        y = v * s / norm if norm > 0 else torch.zeros_like(v)
        lo.append(torch.floor(y) * norm / s)
        hi.append(torch.ceil(y) * norm / s)
    return torch.cat(lo), torch.cat(hi)


def test_decoded_values_are_neighbouring_levels():
    x = torch.randn(70, generator=torch.Generator().manual_seed(0))
    ctx = CompressionContext.flat(70, round=3, seed=1)
    comp = get_compressor("qsgd", levels=4, bucket_size=32)  # buckets 32, 32, 6
    lo, hi = _neighbours(x, 4, 32)
    out = comp.decode(comp.encode(x, {"client_seed": 2}, ctx), ctx).double()
    on_lo, on_hi = (out - lo).abs() < 1e-5, (out - hi).abs() < 1e-5
    assert bool((on_lo | on_hi).all())
    assert bool(on_lo.any()) and bool((on_hi & ~on_lo).any())  # really stochastic, not plain rounding


def test_unbiased_mean_over_client_seeds():
    d, s, b, n = 40, 3, 16, 3000
    x = torch.randn(d, generator=torch.Generator().manual_seed(1))
    ctx = CompressionContext.flat(d, round=1, seed=0)
    comp = get_compressor("qsgd", levels=s, bucket_size=b)
    draws = torch.stack([comp.decode(comp.encode(x, {"client_seed": c}, ctx), ctx).double() for c in range(n)])
    mean = draws.mean(0)
    step = torch.cat([torch.full((v.numel(),), float(v.norm()) / s) for v in _buckets(x.double(), b)])
    # one draw is within one step of the mean (variance <= step^2 / 4): allow 5 standard errors
    assert bool(((mean - x.double()).abs() <= 5 * step / (2 * math.sqrt(n))).all())
    # and the variance bound of the paper, E||Q(x) - x||^2 <= min(b/s^2, sqrt(b)/s) ||x||^2, holds
    mse = float(((draws - x.double()) ** 2).sum(1).mean())
    assert mse <= comp.variance_bound(d) * float(x.double().norm() ** 2)


@pytest.mark.parametrize("levels,width", [(1, 2), (7, 4), (127, 8), (200, 16)])
def test_payload_bytes_and_code_width(levels, width):
    d = 1001
    ctx = CompressionContext.flat(d)
    comp = get_compressor("qsgd", levels=levels, bucket_size=100)  # 11 buckets
    assert comp.width == width
    payload = comp.encode(torch.randn(d), {"client_seed": 0}, ctx)
    assert len(payload) == 12 + 6 + 4 * 11 + math.ceil(d * width / 8)
    assert payload.data[12:18] == struct.pack("<HI", levels, 100)


def test_reproducible_per_client_and_round():
    x = torch.randn(500)
    ctx = CompressionContext.flat(500, round=2, seed=3)
    comp = get_compressor("qsgd", levels=2)
    a = comp.encode(x, {"client_seed": 1}, ctx)
    assert a == comp.encode(x, {"client_seed": 1}, ctx)
    assert a != comp.encode(x, {"client_seed": 2}, ctx)
    assert a != comp.encode(x, {"client_seed": 1}, CompressionContext.flat(500, round=3, seed=3))


def test_requires_client_seed():
    with pytest.raises(ValueError, match="client_seed"):
        get_compressor("qsgd").encode(torch.randn(10), {}, CompressionContext.flat(10))


def test_zero_vector_and_extreme_single_coordinate():
    ctx = CompressionContext.flat(600)
    comp = get_compressor("qsgd", levels=127, bucket_size=512)
    assert torch.count_nonzero(comp.decode(comp.encode(torch.zeros(600), {"client_seed": 0}, ctx), ctx)) == 0
    x = torch.zeros(600)
    x[3], x[550] = -2.5, 7.0  # each alone in its bucket: exactly +-s levels
    assert torch.equal(comp.decode(comp.encode(x, {"client_seed": 0}, ctx), ctx), x)


@pytest.mark.parametrize("magnitude", [1e-25, 1e-33, 1e21])
def test_tiny_and_huge_values_are_neither_flushed_nor_overflowed(magnitude):
    # x_i^2 under/overflows float32 at these magnitudes; the bucket norm must still be right
    x = torch.tensor([1.0, -2.0, 3.0, 0.5, -0.25, 2.0]) * magnitude
    ctx = CompressionContext.flat(6)
    comp = get_compressor("qsgd", levels=127, bucket_size=4)
    out = comp.decode(comp.encode(x, {"client_seed": 0}, ctx), ctx)
    assert torch.isfinite(out).all()
    lo, hi = _neighbours(x, 127, 4)
    tol = 1e-3 * (hi - lo).abs().max()
    assert bool((((out.double() - lo).abs() <= tol) | ((out.double() - hi).abs() <= tol)).all())
    assert torch.count_nonzero(out) >= 4


def test_malformed_bodies():
    ctx = CompressionContext.flat(100)
    comp = get_compressor("qsgd", levels=127, bucket_size=None)
    data = bytearray(comp.encode(torch.randn(100), {"client_seed": 0}, ctx).data)
    with pytest.raises(CompressionError, match="levels=127, bucket_size=0; decoder has levels=7"):
        get_compressor("qsgd", levels=7, bucket_size=None).decode(Payload(bytes(data)), ctx)
    bad = bytearray(data)
    bad[-1] = 255  # codes are in [0, 254] for s = 127
    with pytest.raises(CompressionError, match="code 255 is out of range"):
        comp.decode(Payload(bytes(bad)), ctx)
    bad = bytearray(data)
    bad[18:22] = struct.pack("<f", -1.0)
    with pytest.raises(CompressionError, match="negative or non-finite"):
        comp.decode(Payload(bytes(bad)), ctx)


def test_parameter_errors_and_contractiveness():
    with pytest.raises(ValueError, match="levels"):
        get_compressor("qsgd", levels=0)
    with pytest.raises(ValueError, match="bucket_size"):
        get_compressor("qsgd", bucket_size=0)
    assert get_compressor("qsgd", levels=127, bucket_size=512).is_contractive(10**7)  # omega = 512 / 127^2
    assert not get_compressor("qsgd", levels=127, bucket_size=None).is_contractive(10**7)  # sqrt(1e7) / 127
    assert np.isclose(get_compressor("qsgd", levels=4, bucket_size=None).variance_bound(64), 2.0)
