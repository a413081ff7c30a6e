"""Scaled sign: bit packing hand example, round trip, contraction identity, malformed padding."""

import struct

import numpy as np
import pytest
import torch

from speechfl.compression import CompressionContext, CompressionError, Payload, get_compressor
from speechfl.compression.base import HEADER


def test_hand_example_bytes_and_decode():
    x = torch.tensor([0.5, -1.0, 2.0, -0.5, 0.0, 3.0, -2.0, 1.0, -4.0])
    ctx = CompressionContext.flat(9)
    comp = get_compressor("sign")
    payload = comp.encode(x, {}, ctx)
    # signs (0 counts as +): + - + - + + - + | -  ->  10101101 0(0000000);  scale = ||x||_1 / d = 14 / 9
    assert payload.data == HEADER.pack(b"SF", 1, 7, 9) + struct.pack("<f", 14 / 9) + bytes([0xAD, 0x00])
    a = np.float32(14 / 9)
    expected = torch.tensor([a, -a, a, -a, a, a, -a, a, -a])
    assert torch.equal(comp.decode(payload, ctx), expected)


@pytest.mark.parametrize("d", [1, 7, 8, 9, 16, 1003])
def test_round_trip_matches_numpy_sign(d):
    x = torch.randn(d, generator=torch.Generator().manual_seed(d))
    ctx = CompressionContext.flat(d)
    comp = get_compressor("sign")
    payload = comp.encode(x, {}, ctx)
    assert len(payload) == 12 + 4 + (d + 7) // 8
    out = comp.decode(payload, ctx).numpy()
    scale = out[0] * (1 if x[0] >= 0 else -1)  # one float32 scale for every coordinate ...
    assert np.isclose(scale, np.abs(x.numpy()).astype(np.float64).sum() / d, rtol=1e-6)  # ... = ||x||_1 / d
    expected = np.where(x.numpy() >= 0, scale, -scale).astype(np.float32)
    assert np.array_equal(out, expected)
    # contraction identity: ||x - C(x)||^2 = ||x||^2 - ||x||_1^2 / d
    err = float(((x.double() - torch.from_numpy(expected).double()) ** 2).sum())
    assert np.isclose(err, float((x.double() ** 2).sum() - x.double().abs().sum() ** 2 / d), rtol=1e-5)


def test_malformed_sign_payloads():
    ctx = CompressionContext.flat(9)
    data = get_compressor("sign").encode(torch.randn(9), {}, ctx).data
    with pytest.raises(CompressionError, match="padding"):
        get_compressor("sign").decode(Payload(data[:-1] + b"\x01"), ctx)
    with pytest.raises(CompressionError, match="invalid scale"):
        get_compressor("sign").decode(Payload(data[:12] + struct.pack("<f", float("nan")) + data[16:]), ctx)


def test_huge_values_do_not_overflow_the_scale():
    x = torch.tensor([3e38, -3e38, 2e38, 1.0])
    ctx = CompressionContext.flat(4)
    out = get_compressor("sign").decode(get_compressor("sign").encode(x, {}, ctx), ctx)
    a = np.float32((3e38 + 3e38 + 2e38 + 1.0) / 4)
    assert torch.equal(out, torch.tensor([a, -a, a, a]))


def test_chunked_packing_matches_numpy_packbits_across_chunk_borders():
    from speechfl.compression.sign import signs_and_l1

    x = np.random.default_rng(0).standard_normal(8 * 37 + 5).astype(np.float32)
    bits, l1 = signs_and_l1(x, chunk=16)
    assert bits.tobytes() == np.packbits(x >= 0).tobytes()
    assert np.isclose(l1, np.abs(x).astype(np.float64).sum(), rtol=1e-6)
