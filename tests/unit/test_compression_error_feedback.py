"""Error feedback (EF, EF21): hand-computed 3-round sequences, checkpointing, server state, checks."""

import io

import pytest
import torch

from speechfl.compression import CompressionContext, EF21ServerState, get_compressor

XS = [torch.tensor([3.0, -1.0, 2.0]), torch.tensor([1.0, 0.5, 0.5]), torch.tensor([-0.5, -1.0, 1.0])]


def _ctx(r):
    return CompressionContext.flat(3, round=r, seed=0)


def test_ef_hand_computed_sequence():
    # top-1 with memory e:  p = x + e, send top1(p), e <- p - top1(p)
    # r1: p = [3, -1, 2]      -> send [3, 0, 0]    e = [0, -1, 2]
    # r2: p = [1, -0.5, 2.5]  -> send [0, 0, 2.5]  e = [1, -0.5, 0]
    # r3: p = [0.5, -1.5, 1]  -> send [0, -1.5, 0] e = [0.5, 0, 1]
    sent = [[3.0, 0.0, 0.0], [0.0, 0.0, 2.5], [0.0, -1.5, 0.0]]
    memory = [[0.0, -1.0, 2.0], [1.0, -0.5, 0.0], [0.5, 0.0, 1.0]]
    comp, state = get_compressor("ef", inner={"name": "topk", "k": 1}), {}
    for r, x in enumerate(XS, start=1):
        out = comp.decode(comp.encode(x, state, _ctx(r)), _ctx(r))
        assert torch.equal(out, torch.tensor(sent[r - 1]))
        assert torch.equal(state["ef_memory"], torch.tensor(memory[r - 1]))


def test_ef21_hand_computed_sequence_with_server_state():
    # g_i starts at 0:  c = top1(x - g), g <- g + c; the server adds the same c to its copy of g_i
    # r1: x - g = [3, -1, 2]       -> c = [3, 0, 0]     g = [3, 0, 0]
    # r2: x - g = [-2, 0.5, 0.5]   -> c = [-2, 0, 0]    g = [1, 0, 0]
    # r3: x - g = [-1.5, -1, 1]    -> c = [-1.5, 0, 0]  g = [-0.5, 0, 0]
    sent = [[3.0, 0.0, 0.0], [-2.0, 0.0, 0.0], [-1.5, 0.0, 0.0]]
    g = [[3.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-0.5, 0.0, 0.0]]
    comp, state, server = get_compressor("ef21", inner={"name": "topk", "k": 1}), {}, EF21ServerState()
    for r, x in enumerate(XS, start=1):
        decoded = comp.decode(comp.encode(x, state, _ctx(r)), _ctx(r))
        assert torch.equal(decoded, torch.tensor(sent[r - 1]))
        assert torch.equal(state["ef21_g"], torch.tensor(g[r - 1]))
        assert torch.equal(server.update("client-0", decoded), torch.tensor(g[r - 1]))
    assert len(server) == 1 and "client-0" in server and "client-1" not in server


def test_ef_memory_survives_a_checkpoint():
    comp = get_compressor("ef", inner={"name": "topk", "k": 1})
    state = {"client_seed": 4}
    straight = [comp.encode(x, state, _ctx(r)).data for r, x in enumerate(XS, start=1)]
    state = {"client_seed": 4}
    for r, x in enumerate(XS[:2], start=1):
        comp.encode(x, state, _ctx(r))
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    restored = torch.load(buf, weights_only=True)
    assert get_compressor("ef", inner={"name": "topk", "k": 1}).encode(XS[2], restored, _ctx(3)).data == straight[2]


def test_ef21_server_state_dict_round_trip():
    server = EF21ServerState()
    server.update("a", torch.tensor([1.0, 2.0]))
    server.update("b", torch.tensor([0.5, 0.0]))
    buf = io.BytesIO()
    torch.save(server.state_dict(), buf)
    buf.seek(0)
    other = EF21ServerState()
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.update("a", torch.tensor([1.0, 1.0])), torch.tensor([2.0, 3.0]))
    with pytest.raises(ValueError, match="decoded has shape"):
        other.update("b", torch.zeros(3))
    with pytest.raises(ValueError, match="expects keys"):
        other.load_state_dict({"h": {}})


def test_first_round_payload_equals_inner_payload():
    x = torch.randn(500)
    ctx = CompressionContext.flat(500)
    for name in ("ef", "ef21"):
        wrapped = get_compressor(name, inner={"name": "qsgd", "levels": 127, "bucket_size": 64})
        inner = get_compressor("qsgd", levels=127, bucket_size=64)
        assert wrapped.encode(x, {"client_seed": 1}, ctx) == inner.encode(x, {"client_seed": 1}, ctx)


def test_ef_accumulates_what_was_not_sent():
    # over many rounds EF transmits the running sum up to the (bounded) memory: sum(sent) = sum(x) - e_T
    comp, state = get_compressor("ef", inner={"name": "topk", "k": 2}), {}
    ctx = CompressionContext.flat(20)
    gen = torch.Generator().manual_seed(0)
    total_x, total_sent = torch.zeros(20), torch.zeros(20)
    for r in range(1, 31):
        x = torch.randn(20, generator=gen)
        total_x += x
        total_sent += comp.decode(comp.encode(x, state, ctx), ctx)
    assert torch.allclose(total_sent + state["ef_memory"], total_x, atol=1e-4)


def test_shared_support_forwarding():
    ctx = CompressionContext.flat(100, round=2, seed=3)
    ef = get_compressor("ef", inner={"name": "randk", "k": 10, "unbiased": False})
    assert ef.shared_support
    assert torch.equal(ef.support(ctx), get_compressor("randk", k=10).support(ctx))
    payload = ef.encode(torch.randn(100), {}, ctx)
    assert torch.equal(ef.expand(ef.decode_values(payload, ctx), ctx), ef.decode(payload, ctx))
    assert not get_compressor("ef21", inner={"name": "randk", "k": 10, "unbiased": False}).shared_support


def test_wrapper_errors():
    ctx = CompressionContext.flat(100)
    with pytest.raises(ValueError, match="contractive"):
        get_compressor("ef", inner={"name": "randk", "k": 10}).encode(torch.randn(100), {}, ctx)
    with pytest.raises(ValueError, match="contractive"):
        get_compressor("ef21", inner={"name": "qsgd", "levels": 1}).encode(torch.randn(100), {"client_seed": 0}, ctx)
    with pytest.raises(ValueError, match="cannot be nested"):
        get_compressor("ef", inner={"name": "ef21", "inner": "sign"})
    with pytest.raises(ValueError, match=r"expected float32 \[100\]"):
        get_compressor("ef", inner="sign").encode(torch.randn(100), {"ef_memory": torch.zeros(99)}, ctx)
    x = torch.randn(100)
    x[0] = float("nan")
    with pytest.raises(ValueError, match="1 NaN"):
        get_compressor("ef", inner="identity").encode(x, {}, ctx)
