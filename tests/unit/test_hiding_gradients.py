"""Speaker-hiding defenses: every gradient against autograd / a hand formula (float64, small tensors)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from speechfl.models.adversary import AdversarialObjective, build_from_spec, HEADS
from speechfl.privacy.bottleneck import InstanceNorm, Projection, VectorQuantizer
from speechfl.privacy.confusion import confusion_loss, frozen_call, uniform_ce
from speechfl.privacy.fedaws import ClassEmbeddingHead, masked_class_weights, spread_out_penalty

D = torch.float64


def test_confusion_loss_value_gradient_and_minimum():
    logits = torch.randn(4, 5, dtype=D, requires_grad=True)
    assert gradcheck(confusion_loss, (logits,))
    loss = confusion_loss(logits)
    (g,) = torch.autograd.grad(loss, logits)
    assert torch.allclose(g, (logits.softmax(-1) - 1 / 5) / 4)  # the docstring's closed form
    # minimum log C at the uniform output, strictly above it elsewhere
    assert math.isclose(float(confusion_loss(torch.zeros(3, 5, dtype=D))), math.log(5), rel_tol=1e-12)
    assert float(loss.detach()) > uniform_ce(5)


def test_spread_out_penalty_gradcheck_and_hand_value():
    w = torch.tensor([[0.0, 0.0], [0.5, 0.0], [3.0, 0.0]], dtype=D, requires_grad=True)
    # only the pair (0, 1) is inside the margin: (1 - 0.5)^2, counted for both orders
    assert math.isclose(float(spread_out_penalty(w.detach(), 1.0)), 0.5, rel_tol=1e-12)
    (g,) = torch.autograd.grad(spread_out_penalty(w, 1.0), w)
    assert torch.allclose(g, torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 0.0]], dtype=D))
    assert gradcheck(lambda x: spread_out_penalty(x, 1.5), (torch.randn(4, 3, dtype=D, requires_grad=True),))


def test_masked_class_weights_gradient_only_into_batch_rows():
    w = torch.randn(4, 3, dtype=D, requires_grad=True)
    labels = torch.tensor([2, 2, 0])
    out = masked_class_weights(w, labels)
    assert torch.equal(out, w)
    (g,) = torch.autograd.grad((out * torch.arange(12, dtype=D).view(4, 3)).sum(), w)
    expect = torch.arange(12, dtype=D).view(4, 3)
    expect[[1, 3]] = 0
    assert torch.equal(g, expect)


def test_instance_norm_and_projection_gradcheck():
    torch.manual_seed(0)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    x = torch.randn(2, 5, 4, dtype=D, requires_grad=True)
    norm = InstanceNorm()
    assert gradcheck(lambda t: norm(t, mask), (x,))
    y = norm(x, mask)
    assert torch.allclose(y[1, :3].mean(0), torch.zeros(4, dtype=D), atol=1e-12)
    assert torch.equal(y[1, 3:], torch.zeros(2, 4, dtype=D))
    proj = Projection(4, 2).double()
    assert gradcheck(lambda t: proj(t, mask), (x,))
    assert torch.linalg.matrix_rank(proj(x, mask)[0] - proj.up.bias) <= 2


def test_whitened_projection_gradcheck_and_statistics():
    from speechfl.privacy.bottleneck import whiten_frames

    torch.manual_seed(0)
    mask = torch.tensor([[True] * 9, [True] * 6 + [False] * 3])
    z = (torch.randn(2, 9, 3, dtype=D) @ torch.tensor([[2.0, 0.5, 0.0], [0.0, 1.0, -0.3], [0.1, 0.0, 0.2]],
                                                       dtype=D) + 4.0).requires_grad_(True)
    assert gradcheck(lambda t: whiten_frames(t, mask, 1e-3), (z,))
    w = whiten_frames(z, mask, eps=1e-12)
    for b, n in ((0, 9), (1, 6)):  # oracle: numpy's mean and covariance of each utterance's valid frames
        frames = w[b, :n].detach().numpy()
        assert np.allclose(frames.mean(0), 0.0, atol=1e-9)
        assert np.allclose(np.cov(frames.T, bias=True), np.eye(3), atol=1e-6)
        zb = z[b, :n].detach().numpy()
        chol = np.linalg.cholesky(np.cov(zb.T, bias=True) + (1e-12 * np.trace(np.cov(zb.T, bias=True)) / 3 + 1e-8)
                                  * np.eye(3))
        assert np.allclose(frames, np.linalg.solve(chol, (zb - zb.mean(0)).T).T, atol=1e-6)
    assert torch.equal(w[1, 6:], torch.zeros(3, 3, dtype=D))
    proj = Projection(4, 2, whiten=True).double()
    x = torch.randn(2, 9, 4, dtype=D, requires_grad=True)
    assert gradcheck(lambda t: proj(t, mask), (x,))
    # an utterance's per-utterance linear transform does not reach the whitened output (beyond eps)
    a = torch.tensor([[1.5, 0.2], [-0.4, 0.7]], dtype=D)
    zz = torch.randn(1, 9, 2, dtype=D)
    one = torch.ones(1, 9, dtype=torch.bool)
    lower = torch.linalg.cholesky(a @ a.T)  # z -> z L^T keeps Cholesky whitening's output
    assert torch.allclose(whiten_frames(zz @ lower.T + 3.0, one, 1e-12), whiten_frames(zz, one, 1e-12), atol=1e-6)
    with pytest.raises(ValueError, match="whiten true/false and eps > 0"):
        Projection(4, 2, whiten="yes")


def test_xvector_and_class_embedding_heads_gradcheck():
    torch.manual_seed(0)
    lengths = torch.tensor([1.0, 0.6])
    reps = torch.randn(2, 10, 3, dtype=D, requires_grad=True)
    xv = build_from_spec(HEADS, {"name": "xvector", "input_dim": 3, "n_classes": 4, "width": 5, "hidden": 6}).double()
    assert gradcheck(lambda r: xv(r, lengths), (reps,))
    ce = ClassEmbeddingHead(3, 4, embed_dim=2, pooling="mean").double()
    ce.reset_parameters(torch.Generator().manual_seed(1))
    assert gradcheck(lambda r: ce(r, lengths), (reps,))
    # padding frames do not change an x-vector's output (zeroed before the frame convolutions)
    padded = reps.detach().clone()
    padded[1, 6:] = 100.0
    assert torch.allclose(xv(padded, lengths), xv(reps.detach(), lengths))


def test_confusion_objective_gradients_split_between_players():
    """Encoder gets d(w*lambda*sum_k L_conf(head_k(z)))/dz with frozen heads; heads get dCE/dphi on sg(z)."""
    torch.manual_seed(0)
    obj = AdversarialObjective(3, 4, heads=["linear", "mlp"], total_steps=10, weight=0.7,
                               schedule={"kind": "constant", "lambda_max": 2.0}, objective="confusion").double()
    reps = torch.randn(3, 6, 3, dtype=D, requires_grad=True)
    lengths, labels = torch.tensor([1.0, 0.5, 0.84]), torch.tensor([0, 3, 1])
    out = obj(reps, lengths, labels, step=1)
    out.loss.backward()
    # oracle for the encoder: plain autograd of the confusion term only
    r2 = reps.detach().clone().requires_grad_(True)
    conf = 0.7 * 2.0 * sum(confusion_loss(lg) for lg in obj.head_logits(r2, lengths))
    (g_enc,) = torch.autograd.grad(conf, r2)
    assert torch.allclose(reps.grad, g_enc)
    # oracle for the heads: plain cross-entropy on detached reps
    heads_grad = [p.grad.clone() for p in obj.parameters()]
    obj.zero_grad()
    ce = 0.7 * sum(F.cross_entropy(lg, labels) for lg in obj.head_logits(reps.detach(), lengths))
    ce.backward()
    for a, p in zip(heads_grad, obj.parameters()):
        assert torch.allclose(a, p.grad)
    assert math.isclose(out.uniform_ce, math.log(4)) and out.ce > 0
    # frozen_call: same values, no gradient into the module
    obj.zero_grad()
    vals = frozen_call(obj, "head_logits", reps, lengths, labels)
    assert torch.allclose(vals[0], obj.head_logits(reps, lengths)[0])
    sum(v.sum() for v in vals).backward()
    assert all(p.grad is None for p in obj.parameters())


def test_adversary_warmup_gives_zero_lambda_then_schedule():
    obj = AdversarialObjective(3, 2, heads=["linear"], total_steps=10, warmup_steps=4,
                               schedule={"kind": "linear", "lambda_max": 1.0, "warmup_steps": 2})
    assert [obj.lambda_at(s) for s in (0, 3, 4, 5, 6, 9)] == [0.0, 0.0, 0.0, 0.5, 1.0, 1.0]
    reps = torch.randn(2, 6, 3, requires_grad=True)
    out = obj(reps, torch.ones(2), torch.tensor([0, 1]), step=2)
    out.loss.backward()
    assert out.lambd == 0.0 and torch.count_nonzero(reps.grad) == 0  # reversal with lambda 0: no encoder gradient


def test_vq_straight_through_codebook_and_commitment_on_toy():
    vq = VectorQuantizer(2, codes=2, beta=0.25, seed=0).double()
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[[0.0, 0.0], [10.0, 10.0]]], dtype=D))
    x = torch.tensor([[[1.0, 0.0], [9.0, 10.0], [0.0, 1.0]]], dtype=D, requires_grad=True)
    mask = torch.ones(1, 3, dtype=torch.bool)
    y = vq(x, mask)
    assert torch.equal(y.detach(), torch.tensor([[[0.0, 0.0], [10.0, 10.0], [0.0, 0.0]]], dtype=D))
    assert vq.last_usage.tolist() == [[2, 1]]
    # L = ||sg(x) - q||^2 / n + beta ||x - sg(q)||^2 / n, n = 3 frames: (1 + 1 + 1) / 3 * (1 + beta)
    assert math.isclose(float(vq.aux_loss.detach()), 1.25, rel_tol=1e-12)
    w = torch.randn(1, 3, 2, dtype=D)
    (gx,) = torch.autograd.grad((y * w).sum() + vq.aux_loss, x, retain_graph=True)
    q = y.detach()
    assert torch.allclose(gx, w + 2 * 0.25 * (x.detach() - q) / 3)  # identity (straight-through) + commitment
    (gc,) = torch.autograd.grad(vq.aux_loss, vq.codebook)
    # d/de_k sum_{t in k} ||x_t - e_k||^2 / 3 = 2 sum_{t in k} (e_k - x_t) / 3
    assert torch.allclose(gc, torch.tensor([[[2 * (-1.0 - 0.0) / 3, 2 * (0.0 - 1.0) / 3],
                                             [2 * 1.0 / 3, 0.0]]], dtype=D))


def test_vq_groups_equal_separate_quantisers_and_padding_stays_zero():
    torch.manual_seed(0)
    vq = VectorQuantizer(4, codes=3, groups=2, seed=5)
    x = torch.randn(2, 5, 4)
    mask = torch.tensor([[True] * 5, [True] * 2 + [False] * 3])
    y = vq(x, mask)
    for g in range(2):
        sub = x[..., 2 * g:2 * g + 2]
        d = ((sub.unsqueeze(-2) - vq.codebook[g]) ** 2).sum(-1)
        expect = vq.codebook[g][d.argmin(-1)]
        assert torch.allclose(y[mask][:, 2 * g:2 * g + 2], expect[mask])
    assert torch.equal(y[1, 2:], torch.zeros(3, 4))


def test_vq_warmup_is_identity_in_training_only():
    vq = VectorQuantizer(2, codes=2, warmup_steps=3, seed=0)
    x = torch.randn(1, 4, 2)
    mask = torch.ones(1, 4, dtype=torch.bool)
    vq.set_step(2)
    assert torch.equal(vq(x, mask), x) and float(vq.aux_loss) == 0.0
    vq.set_step(3)
    assert not torch.equal(vq(x, mask), x)
    vq.set_step(0)
    vq.eval()
    assert not torch.equal(vq(x, mask), x)  # evaluation always quantises


def test_vq_ema_update_and_dead_code_restart_on_toy():
    vq = VectorQuantizer(1, codes=2, update="ema", decay=0.5, seed=0, restart_every=2)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[[0.0], [100.0]]]))
        vq.ema_sum.copy_(vq.codebook)
    mask = torch.ones(1, 2, dtype=torch.bool)
    vq.set_step(1)
    vq(torch.tensor([[[1.0], [3.0]]]), mask)  # both frames -> code 0
    # count0 = 0.5 * 1 + 0.5 * 2 = 1.5, sum0 = 0.5 * 0 + 0.5 * 4 = 2; Laplace: n = 1.5 + 0.5 = 2
    n = 2.0
    c0 = (1.5 + 1e-5) / (n + 2e-5) * n
    assert math.isclose(float(vq.codebook[0, 0, 0]), 2.0 / c0, rel_tol=1e-6)
    assert not vq.codebook.requires_grad
    # code 1 was never used: at step 2 (2 steps since its init at step 0) it restarts on a batch frame
    vq.set_step(2)
    vq(torch.tensor([[[7.0], [7.0]]]), mask)
    assert float(vq.codebook[0, 1, 0]) == 7.0


def test_noisy_whitened_projection_statistics_determinism_and_gradient():
    from speechfl.privacy.bottleneck import frame_noise, whiten_frames

    torch.manual_seed(0)
    proj = Projection(6, 3, whiten=True, noise=0.5, seed=11).double()
    x = torch.randn(2, 40, 6, dtype=D)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[1, 25:] = False
    clean = Projection(6, 3, whiten=True).double()
    clean.load_state_dict(proj.state_dict())
    # at inference the noise is a function of the utterance: the same in any batch, different between utterances
    proj.eval()
    a = proj(x, mask)
    alone = proj(x[1:2, :25], torch.ones(1, 25, dtype=torch.bool))
    assert torch.allclose(alone[0], a[1, :25], atol=1e-12)
    assert torch.equal(proj(x, mask), a)
    z = whiten_frames(proj.down(x), mask, proj.eps)
    n = frame_noise(z, mask, 11, fresh=False)
    assert torch.equal(n[1, 25:], torch.zeros(15, 3, dtype=D))  # padding untouched
    assert not torch.allclose(n[0, :25], n[1, :25])
    assert not torch.equal(frame_noise(z, mask, 12, fresh=False), n)  # the seed matters
    # y = U (z + s n): the noise is s * n mapped by U
    assert torch.allclose(a - clean(x, mask), (0.5 * n) @ proj.up.weight.T, atol=1e-12)
    # in training it is fresh N(0, s^2) noise: sample std over many frames
    proj.train()
    big = torch.randn(4, 500, 3, dtype=D)
    drawn = frame_noise(big, torch.ones(4, 500, dtype=torch.bool), 0, fresh=True)
    assert abs(float(drawn.std()) - 1.0) < 0.05 and abs(float(drawn.mean())) < 0.05
    # additive noise leaves the gradient of the clean path unchanged (same draws: same global seed)
    xg = x.clone().requires_grad_(True)
    torch.manual_seed(3)
    (g_noisy,) = torch.autograd.grad((proj(xg, mask) ** 2).sum(), xg)
    torch.manual_seed(3)
    eps_draw = frame_noise(z, mask, 0, fresh=True)
    xc = x.clone().requires_grad_(True)
    zc = whiten_frames(proj.down(xc), mask, proj.eps)
    (g_ref,) = torch.autograd.grad((proj.up(zc + 0.5 * eps_draw) ** 2).sum(), xc)
    assert torch.allclose(g_noisy, g_ref, atol=1e-10)
    for bad, match in [({"noise": 0.5}, "noise needs whiten: true"), ({"whiten": True, "noise": -1.0}, "noise must be")]:
        with pytest.raises(ValueError, match=match):
            Projection(6, 3, **bad)
