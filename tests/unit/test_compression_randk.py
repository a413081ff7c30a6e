"""Random-k with a shared per-round mask: same support everywhere, unbiased, values-only payload."""

import struct

import numpy as np
import pytest
import torch

from speechfl.compression import CompressionContext, CompressionError, get_compressor
from speechfl.compression.randk import shared_mask


def _ctx(dim, round=1, seed=7):
    return CompressionContext.flat(dim, round=round, seed=seed)


def test_support_is_shared_by_clients_and_server():
    ctx = _ctx(1000, round=3)
    server, client_a, client_b = (get_compressor("randk", k=40) for _ in range(3))
    sup = server.support(ctx)
    assert sup.dtype == torch.int64 and sup.shape == (40,)
    assert torch.equal(sup, torch.unique(sup)) and 0 <= int(sup.min()) and int(sup.max()) < 1000
    x = torch.randn(1000)
    for comp, client_seed in ((client_a, 1), (client_b, 99)):
        out = comp.decode(comp.encode(x, {"client_seed": client_seed}, ctx), ctx)
        assert torch.equal(torch.nonzero(out).squeeze(1), sup)
    assert not torch.equal(sup, server.support(_ctx(1000, round=4)))
    assert not torch.equal(sup, server.support(_ctx(1000, round=3, seed=8)))


def test_payload_is_mask_tag_plus_k_values():
    ctx = _ctx(1000, round=2)
    comp = get_compressor("randk", fraction=0.05)
    x = torch.randn(1000)
    payload = comp.encode(x, {}, ctx)
    sup = comp.support(ctx)
    assert len(payload) == 12 + 4 + 4 * 50
    assert payload.data[16:] == struct.pack("<50f", *x[sup].tolist())
    values = comp.decode_values(payload, ctx)
    assert torch.equal(values, x[sup])
    out = comp.decode(payload, ctx)
    assert torch.equal(out, comp.expand(values, ctx))
    assert torch.allclose(out[sup], x[sup] * 20.0) and torch.count_nonzero(out) == 50


def test_biased_variant_does_not_rescale():
    ctx = _ctx(100)
    comp = get_compressor("randk", k=10, unbiased=False)
    x = torch.randn(100)
    out = comp.decode(comp.encode(x, {}, ctx), ctx)
    sup = comp.support(ctx)
    assert torch.equal(out[sup], x[sup]) and torch.count_nonzero(out) == 10


def test_payload_from_another_round_or_run_is_rejected():
    comp = get_compressor("randk", k=10)
    payload = comp.encode(torch.randn(100), {}, _ctx(100, round=1))
    with pytest.raises(CompressionError, match="another shared mask"):
        comp.decode(payload, _ctx(100, round=2))
    with pytest.raises(CompressionError, match="another shared mask"):
        comp.decode_values(payload, _ctx(100, round=1, seed=8))


def test_expand_checks_shape():
    comp = get_compressor("randk", k=10)
    with pytest.raises(ValueError, match=r"shape \[10\]"):
        comp.expand(torch.zeros(11), _ctx(100))


def test_unbiased_mean_over_rounds():
    d, k, n = 50, 5, 4000
    x = torch.randn(d, generator=torch.Generator().manual_seed(0))
    comp = get_compressor("randk", k=k)
    total = torch.zeros(d, dtype=torch.float64)
    for r in range(1, n + 1):
        ctx = _ctx(d, round=r)
        total += comp.decode(comp.encode(x, {}, ctx), ctx).double()
    mean = total / n
    # per coordinate: Var = x_i^2 (d/k - 1); allow 5 standard errors
    tol = 5 * x.abs().double() * np.sqrt((d / k - 1) / n) + 1e-9
    assert bool(((mean - x.double()).abs() <= tol).all())


@pytest.mark.parametrize("d,k", [(2000, 20), (400, 200)])  # sampled-and-trimmed path, and Generator.choice path
def test_mask_is_uniform(d, k):
    n = 3000
    counts = np.zeros(d)
    for r in range(1, n + 1):
        idx = shared_mask(5, r, d, k)
        assert idx.size == k and np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < d
        counts[idx] += 1
    p = k / d
    # each count is Binomial(n, p), so E[sum (c - np)^2 / (n p (1 - p))] = d, with sd about sqrt(2 d)
    stat = float(((counts - n * p) ** 2).sum() / (n * p * (1 - p)))
    assert abs(stat - d) < 6 * np.sqrt(2 * d)
