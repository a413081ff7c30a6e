"""Composition: equals running its stages by hand, byte for byte; shared support survives composition."""

import pytest
import torch

from speechfl.compression import CompressionContext, Payload, get_compressor
from speechfl.compression.indices import encode_indices
from speechfl.compression.wire import CompressionError

D = 2000


def _x():
    return torch.randn(D, generator=torch.Generator().manual_seed(0))


def test_topk_then_qsgd_equals_the_stages_run_by_hand():
    x, ctx, state = _x(), CompressionContext.flat(D, round=2, seed=5), {"client_seed": 3}
    comp = get_compressor(
        "compose", stages=[{"name": "topk", "fraction": 0.05}, {"name": "qsgd", "levels": 127, "bucket_size": 64}]
    )
    payload = comp.encode(x, state, ctx)
    # by hand: top-k support, then QSGD on the k kept values in a k-dimensional context
    topk, qsgd = get_compressor("topk", k=100), get_compressor("qsgd", levels=127, bucket_size=64)
    idx = topk.select(x.numpy(), state, ctx)
    sub_ctx = CompressionContext(round=2, seed=5, layout=[("values", (100,))], dim=100)
    sub = qsgd.encode(x[idx], state, sub_ctx)
    index_block = b"".join(bytes(p) for p in encode_indices(idx, D))
    assert payload.data[12:] == index_block + sub.data
    assert len(payload) == 12 + len(index_block) + len(sub)
    expected = torch.zeros(D)
    expected[idx] = qsgd.decode(sub, sub_ctx)
    assert torch.equal(comp.decode(payload, ctx), expected)


def test_topk_q8_is_compose_topk_qsgd127():
    x, ctx = _x(), CompressionContext.flat(D)
    a = get_compressor("topk_q8", fraction=0.01).encode(x, {"client_seed": 1}, ctx)
    b = get_compressor("compose", stages=[{"name": "topk", "fraction": 0.01}, {"name": "qsgd", "levels": 127}]).encode(
        x, {"client_seed": 1}, ctx
    )
    assert a == b
    assert get_compressor("topk_q8", fraction=0.01).name == "topk_q8"


def test_randk_then_qsgd_keeps_the_shared_support_api():
    x, ctx = _x(), CompressionContext.flat(D, round=3, seed=1)
    comp = get_compressor("compose", stages=[{"name": "randk", "k": 50}, {"name": "qsgd", "levels": 7}])
    assert comp.shared_support
    randk = get_compressor("randk", k=50)
    assert torch.equal(comp.support(ctx), randk.support(ctx))
    payload = comp.encode(x, {"client_seed": 2}, ctx)
    values = comp.decode_values(payload, ctx)
    assert values.shape == (50,)
    out = comp.decode(payload, ctx)
    assert torch.equal(out, comp.expand(values, ctx))
    assert torch.equal(out[comp.support(ctx)], values * (D / 50))
    # body: 4-byte mask tag + the QSGD payload of 50 values (4-bit codes, one bucket)
    assert len(payload) == 12 + 4 + (12 + 6 + 4 + 25)
    with pytest.raises(CompressionError, match="another shared mask"):
        comp.decode_values(payload, CompressionContext.flat(D, round=4, seed=1))


def test_topk_composition_has_no_shared_support():
    comp = get_compressor("topk_q8", k=3)
    assert not comp.shared_support
    with pytest.raises(TypeError, match="no shared support"):
        comp.support(CompressionContext.flat(10))


def test_three_stages():
    x, ctx = _x(), CompressionContext.flat(D)
    stages = [{"name": "topk", "k": 200}, {"name": "randk", "k": 20, "unbiased": False}, "sign"]
    comp = get_compressor("compose", stages=stages)
    out = comp.decode(comp.encode(x, {}, ctx), ctx)
    kept = torch.nonzero(out).squeeze(1)
    assert kept.numel() == 20
    top = set(torch.topk(x.abs(), 200).indices.tolist())
    assert set(kept.tolist()) <= top
    assert torch.equal(torch.sign(out[kept]), torch.sign(x[kept]))
    assert torch.unique(out[kept].abs()).numel() == 1


def test_composition_errors():
    with pytest.raises(ValueError, match="at least 2"):
        get_compressor("compose", stages=["topk"])
    with pytest.raises(ValueError, match="first stage must be a sparsifier"):
        get_compressor("compose", stages=["qsgd", {"name": "topk", "k": 3}])
    with pytest.raises(ValueError, match="cannot be nested"):
        get_compressor("compose", stages=[{"name": "topk", "k": 3}, {"name": "ef", "inner": "sign"}])


def test_inner_payload_kind_is_checked():
    ctx = CompressionContext.flat(D)
    a = get_compressor("compose", stages=[{"name": "topk", "k": 10}, "sign"])
    b = get_compressor("compose", stages=[{"name": "topk", "k": 10}, "fp16"])
    with pytest.raises(CompressionError, match="kind 7"):
        b.decode(a.encode(_x(), {}, ctx), ctx)
    assert isinstance(a.encode(_x(), {}, ctx), Payload)
