"""Top-k: exact selection (both code paths) against a full sort, exact bytes, parameter checks."""

import struct

import numpy as np
import pytest
import torch

from speechfl.compression import CompressionContext, CompressionError, Payload, get_compressor
from speechfl.compression.base import HEADER
from speechfl.compression.topk import topk_indices


def _oracle(x, k):
    """Slow obvious top-k: full stable sort by decreasing magnitude."""
    return np.sort(np.argsort(-np.abs(x), kind="stable")[:k])


@pytest.mark.parametrize("d,k", [(1, 1), (10, 3), (10, 10), (1000, 1), (1000, 137), (300_000, 3000), (300_000, 30_000)])
def test_topk_indices_match_full_sort(d, k):
    # distinct magnitudes, so the top-k set is unique; d = 300k takes the sampled-threshold path
    x = np.random.default_rng(d + k).permutation(d).astype(np.float32) + 0.5
    x *= np.where(np.random.default_rng(k).random(d) < 0.5, -1, 1).astype(np.float32)
    assert np.array_equal(topk_indices(x, k), _oracle(x, k))


def test_threshold_path_survives_ties_and_heavy_tails():
    rng = np.random.default_rng(3)
    # many exact ties at the threshold, and a few huge values
    x = rng.integers(-5, 6, 300_000).astype(np.float32)
    x[rng.choice(300_000, 50, replace=False)] = 1e6
    k = 20_000
    got = topk_indices(x, k)
    assert got.size == k and np.unique(got).size == k
    assert np.array_equal(np.sort(np.abs(x[got])), np.sort(np.abs(x[_oracle(x, k)])))


def test_decode_keeps_exact_values_and_zeros_elsewhere():
    x = torch.randn(5000, generator=torch.Generator().manual_seed(1))
    ctx = CompressionContext.flat(5000, round=4, seed=2)
    comp = get_compressor("topk", fraction=0.02)
    out = comp.decode(comp.encode(x, {}, ctx), ctx)
    keep = _oracle(x.numpy(), 100)
    assert torch.equal(out[keep], x[keep])
    rest = np.setdiff1d(np.arange(5000), keep)
    assert torch.count_nonzero(out[rest]) == 0


def test_hand_example_bytes():
    # k = 3 of d = 8 keeps x[1], x[3], x[6]; the bitmap (1 byte: 0b01010010) beats 3 varint bytes
    x = torch.tensor([0.1, -5.0, 0.2, 3.0, 0.0, -0.3, 4.0, 0.05])
    ctx = CompressionContext.flat(8)
    payload = get_compressor("topk", k=3).encode(x, {}, ctx)
    body = struct.pack("<BQQ", 2, 3, 1) + bytes([0x52]) + struct.pack("<3f", -5.0, 3.0, 4.0)
    assert payload.data == HEADER.pack(b"SF", 1, 4, 8) + body
    assert len(payload) == 12 + 17 + 1 + 12


def test_k_resolution_and_parameter_errors():
    ctx = CompressionContext.flat(10)
    x = torch.arange(10, dtype=torch.float32)
    for fraction, k in [(0.25, 3), (0.01, 1), (1.0, 10), (0.35, 4)]:  # round half up, at least 1
        assert get_compressor("topk", fraction=fraction).k_for(10) == k
        payload = get_compressor("topk", fraction=fraction).encode(x, {}, ctx)
        assert torch.count_nonzero(get_compressor("topk", fraction=fraction).decode(payload, ctx)) == min(k, 9)
    assert get_compressor("topk", fraction=0.01).k_for(10_000_000) == 100_000
    with pytest.raises(ValueError, match="exactly one of fraction or k"):
        get_compressor("topk", fraction=0.1, k=3)
    with pytest.raises(ValueError, match="exactly one of fraction or k"):
        get_compressor("topk")
    with pytest.raises(ValueError, match="fraction must be in"):
        get_compressor("topk", fraction=1.5)
    with pytest.raises(ValueError, match="k must be an int"):
        get_compressor("topk", k=0)
    with pytest.raises(ValueError, match="k = 11 exceeds"):
        get_compressor("topk", k=11).encode(x, {}, ctx)


def test_decoder_with_other_k_rejects_payload():
    ctx = CompressionContext.flat(100)
    payload = get_compressor("topk", k=5).encode(torch.randn(100), {}, ctx)
    with pytest.raises(CompressionError, match="keeps 5 coordinates, this decoder expects k = 6"):
        get_compressor("topk", k=6).decode(payload, ctx)
    assert isinstance(payload, Payload)
