"""PowerSGD: exact on rank-deficient matrices, warm start converges to the best rank-r approximation."""

import pytest
import torch

from speechfl.compression import CompressionContext, get_compressor

LAYOUT = [("w", (30, 20)), ("bias", (7,)), ("conv", (6, 2, 5)), ("tiny", (3, 3))]  # 600 + 7 + 60 + 9
D = 676


def _low_rank(n, m, r, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, r, generator=g) @ torch.randn(r, m, generator=g)


def _vector(w, conv):
    g = torch.Generator().manual_seed(9)
    return torch.cat([w.reshape(-1), torch.randn(7, generator=g), conv.reshape(-1), torch.randn(9, generator=g)])


@pytest.mark.parametrize("rank", [2, 3])
def test_exact_for_rank_deficient_matrices(rank):
    x = _vector(_low_rank(30, 20, 2, 0), _low_rank(6, 10, 2, 1))
    ctx = CompressionContext(round=1, seed=0, layout=LAYOUT, dim=D)
    comp = get_compressor("powersgd", rank=rank)
    payload = comp.encode(x, {}, ctx)
    # w and conv compressed (r (n + m) < n m); bias and tiny (3x3: 2 * 6 >= 9) go through identity
    assert len(payload) == 12 + 6 + 4 * rank * (30 + 20) + 4 * rank * (6 + 10) + 12 + 4 * (7 + 9)
    out = comp.decode(payload, ctx)
    assert torch.allclose(out, x, atol=1e-4 * float(x.abs().max()))
    fallback = torch.cat([torch.arange(600, 607), torch.arange(667, 676)])
    assert torch.equal(out[fallback], x[fallback])


def test_warm_start_converges_to_best_rank_r():
    g = torch.Generator().manual_seed(3)
    u, _ = torch.linalg.qr(torch.randn(30, 20, generator=g))
    v, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    spectrum = torch.tensor([10.0, 8.0] + [1.0 / (i + 1) for i in range(18)])
    w = u @ torch.diag(spectrum) @ v.T  # full rank, clear gap after the 2nd singular value
    x = _vector(w, _low_rank(6, 10, 2, 1))
    best = float(spectrum[2:].pow(2).sum().sqrt())  # Eckart-Young: optimal rank-2 error on w
    errors = {}
    for warm in (True, False):
        comp, state = get_compressor("powersgd", rank=2, warm_start=warm), {}
        errs = []
        for r in range(1, 9):
            ctx = CompressionContext(round=r, seed=0, layout=LAYOUT, dim=D)
            out = comp.decode(comp.encode(x, state, ctx), ctx)
            errs.append(float((out[:600] - x[:600]).norm()))
        errors[warm] = errs
        assert ("powersgd_q" in state) == warm
    assert errors[True][-1] <= 1.001 * best
    assert errors[True][-1] < errors[True][0]
    assert min(errors[False]) > errors[True][-1]  # without warm start every round is a fresh single power step
    assert all(e >= best * 0.999 for e in errors[True] + errors[False])


def test_state_holds_q_and_rejects_a_changed_layout():
    ctx = CompressionContext(round=1, seed=0, layout=LAYOUT, dim=D)
    comp, state = get_compressor("powersgd", rank=2), {}
    comp.encode(torch.randn(D), state, ctx)
    assert state["powersgd_q"].shape == (20 * 2 + 10 * 2,)
    with pytest.raises(ValueError, match="layout or the rank changed"):
        get_compressor("powersgd", rank=3).encode(torch.randn(D), state, ctx)


def test_zero_matrix_does_not_freeze_the_iteration():
    ctx1 = CompressionContext(round=1, seed=0, layout=LAYOUT, dim=D)
    ctx2 = CompressionContext(round=2, seed=0, layout=LAYOUT, dim=D)
    comp, state = get_compressor("powersgd", rank=2), {}
    comp.encode(torch.zeros(D), state, ctx1)  # Q becomes all zeros
    x = _vector(_low_rank(30, 20, 2, 0), _low_rank(6, 10, 2, 1))
    out = comp.decode(comp.encode(x, state, ctx2), ctx2)
    assert torch.allclose(out, x, atol=1e-4 * float(x.abs().max()))


def test_fallback_compressor_and_errors():
    ctx = CompressionContext(round=1, seed=0, layout=LAYOUT, dim=D)
    comp = get_compressor("powersgd", rank=2, fallback="fp16")
    assert len(comp.encode(torch.randn(D), {}, ctx)) == 12 + 6 + 4 * 2 * 50 + 4 * 2 * 16 + 12 + 2 * 16
    with pytest.raises(ValueError, match="cannot be nested"):
        get_compressor("powersgd", fallback={"name": "ef", "inner": "sign"})
    with pytest.raises(ValueError, match="needs ctx.layout"):
        get_compressor("powersgd").encode(torch.randn(5), {}, CompressionContext(round=1, seed=0, layout=[], dim=5))
    with pytest.raises(ValueError, match="rank"):
        get_compressor("powersgd", rank=0)
    assert get_compressor("powersgd").is_contractive(D) is True
