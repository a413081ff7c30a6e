"""Character-set recovery from the CTC head: the differentiable CTC, a hand-built case, soundness, compressors."""

import pytest
import torch

from speechfl.attackers.reconstruction.ctc import ctc_batch_mean, ctc_nll
from speechfl.attackers.reconstruction.labels import recover_char_set, score_sets, true_char_set
from speechfl.compression import CompressionContext, build_compressor


def _torch_ctc(log_probs, targets):
    return torch.nn.functional.ctc_loss(log_probs.unsqueeze(1), torch.tensor([targets]),
                                        torch.tensor([log_probs.shape[0]]), torch.tensor([len(targets)]),
                                        blank=0, reduction="sum")


@pytest.mark.parametrize("targets", [[1], [2, 3, 2], [4, 4, 1, 4], [1, 2, 3, 4, 5, 6]])
def test_ctc_nll_matches_torch_value_and_gradient(targets):
    torch.manual_seed(len(targets))
    z = torch.randn(13, 7, requires_grad=True)
    ours = ctc_nll(z.log_softmax(-1), targets)
    ref = _torch_ctc(z.log_softmax(-1), targets)
    assert float(ours.detach()) == pytest.approx(float(ref.detach()), rel=1e-5)
    g1 = torch.autograd.grad(ours, z)[0]
    g2 = torch.autograd.grad(_torch_ctc(z.log_softmax(-1), targets), z)[0]
    assert torch.allclose(g1, g2, atol=1e-5)


def test_ctc_nll_is_twice_differentiable_and_finite():
    z = torch.randn(9, 5, requires_grad=True)
    (g,) = torch.autograd.grad(ctc_nll(z.log_softmax(-1), [1, 2]), z, create_graph=True)
    (h,) = torch.autograd.grad((g**2).sum(), z)
    assert torch.isfinite(h).all() and float(h.abs().sum()) > 0


def test_ctc_batch_mean_is_speechbrain_mean():
    from speechbrain.nnet.losses import ctc_loss

    torch.manual_seed(0)
    lp = torch.randn(2, 10, 6).log_softmax(-1)
    tgt = torch.tensor([[1, 2, 3], [4, 5, 0]])
    ref = ctc_loss(lp, tgt, torch.tensor([1.0, 0.8]), torch.tensor([1.0, 2 / 3]), blank_index=0)
    assert float(ctc_batch_mean(lp, [10, 8], [[1, 2, 3], [4, 5]])) == pytest.approx(float(ref), rel=1e-5)


def test_ctc_rejects_impossible_alignment():
    with pytest.raises(ValueError, match="cannot align"):
        ctc_nll(torch.zeros(3, 5).log_softmax(-1), [1, 1, 2])


def test_hand_built_single_sample_bias_gradient():
    """Uniform outputs over V = 4, T = 2 frames, target "1": the three alignments (1,1), (b,1), (1,b)
    are equally likely, so gamma(1) = 4/3 and gamma(b) = 2/3 summed over frames, and
    g_b = sum_t p_t - gamma = (0.5 - 2/3, 0.5 - 4/3, 0.5, 0.5)."""
    bias = torch.zeros(4, requires_grad=True)
    logits = torch.zeros(2, 4) + bias
    (g,) = torch.autograd.grad(_torch_ctc(logits.log_softmax(-1), [1]), bias)
    assert torch.allclose(g, torch.tensor([0.5 - 2 / 3, 0.5 - 4 / 3, 0.5, 0.5]), atol=1e-6)
    assert recover_char_set(-0.1 * g) == {1}  # SGD update; exact set


def test_exact_recovery_when_frames_fewer_than_vocabulary():
    """Uniform outputs with T < V: P_c = T/V < 1 <= G_c for every present c, so the set is exact."""
    V, T, targets = 12, 8, [3, 5, 3, 7]
    bias = torch.zeros(V, requires_grad=True)
    (g,) = torch.autograd.grad(_torch_ctc((torch.zeros(T, V) + bias).log_softmax(-1), targets), bias)
    absent = [c for c in range(1, V) if c not in targets]
    assert torch.allclose(g[absent], torch.full((len(absent),), T / V))  # P_c, hand-computed
    pred = recover_char_set(-g)
    assert pred == {3, 5, 7}
    assert score_sets(pred, true_char_set([targets])).f1 == 1.0


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_sign_rule_never_reports_an_absent_character(optimizer):
    """Property: random head, random batch, several clipped steps: the prediction is a subset of the truth."""
    gen = torch.Generator().manual_seed(1)
    for trial in range(20):
        V, H, B = 10, 6, 3
        head = torch.nn.Linear(H, V)
        with torch.no_grad():
            head.weight.normal_(generator=gen)
            head.bias.normal_(generator=gen)
        feats = torch.randn(B, 12, H, generator=gen)
        targets = [torch.randint(1, V, (int(torch.randint(1, 5, (1,), generator=gen)),), generator=gen).tolist()
                   for _ in range(B)]
        b0 = head.bias.detach().clone()
        opt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(head.parameters(), lr=0.01)
        for _ in range(3):
            opt.zero_grad()
            lp = head(feats).log_softmax(-1)
            torch.stack([ctc_nll(lp[i], y) / len(y) for i, y in enumerate(targets)]).mean().backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 0.5)
            opt.step()
        pred = recover_char_set(head.bias.detach() - b0)
        assert pred <= true_char_set(targets), (trial, pred, targets)


def test_ratio_rule_adds_present_characters_with_cancelled_bias():
    """Bias update 0-ish for present char 2, but its weight row is large: the ratio rule finds it."""
    bias = torch.tensor([0.0, 0.3, -0.01, -0.1, -0.1, -0.1, -0.1])
    weight = torch.ones(7, 4) * bias.abs()[:, None]  # ratio 2 for absent chars
    weight[2] = 1.0  # ratio 200 for char 2
    assert recover_char_set(bias) == {1}
    assert recover_char_set(bias, weight) == {1, 2}
    with pytest.raises(ValueError, match="kappa"):
        recover_char_set(bias, weight, kappa=0.5)


def test_score_sets_hand_values():
    s = score_sets({1, 2, 3}, {2, 3, 4, 5})
    assert (s.precision, s.recall, s.n_correct) == (2 / 3, 0.5, 2)
    assert s.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert score_sets(set(), {1}).f1 == 0.0


def test_recovery_degrades_monotonically_from_identity_to_top1pct():
    """Fixed toy: a real ASR update through identity, top-k 10 % and top-k 1 % (no EF). Top-k's kept
    coordinates shrink with k and it never flips a sign, so precision stays 1 and recall cannot rise."""
    from speechfl.attackers.reconstruction.run import HEAD_BIAS
    from speechfl.federated.update import ParamLayout
    from speechfl.models.asr import ASRModel

    torch.manual_seed(0)
    model = ASRModel(n_mels=16, vocab_size=12, channels=4, proj=16, hidden=8, layers=1, dropout=0.0)
    layout = ParamLayout.from_module(model)
    targets = [[3, 5, 3, 7, 9]]
    lp = model(torch.randn(1, 40, 16), torch.ones(1)).log_probs
    loss = ctc_nll(lp[0], targets[0])
    grads = dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(loss, list(model.parameters()))))
    delta = -0.1 * torch.cat([grads[n].reshape(-1) for n in layout.names])
    sl = layout.slices()[HEAD_BIAS]
    truth = true_char_set(targets)
    f1s = []
    for spec in (None, {"name": "topk", "fraction": 0.1}, {"name": "topk", "fraction": 0.01}):
        comp = build_compressor(spec)
        ctx = CompressionContext(round=1, seed=0, layout=layout.as_list(), dim=layout.dim)
        view = comp.decode(comp.encode(delta, {"client_seed": 1}, ctx), ctx)
        s = score_sets(recover_char_set(view[sl]), truth)
        assert s.precision == 1.0
        f1s.append(s.f1)
    assert f1s[0] >= f1s[1] >= f1s[2]
    assert f1s[0] > f1s[2]  # top-1 % loses characters on this toy
