import math

import pytest
import torch
import torch.nn.functional as F

from speechfl.models.adversary import (HEADS, AdversarialObjective, attentive_mean_std, length_mask,
                                       masked_mean_std, reinit_due)
from speechfl.registry import RegistryError


def _objective(**kw):
    base = dict(heads=("linear", "mlp", "attentive"), schedule={"kind": "constant", "lambda_max": 1.0},
                total_steps=100, seed=3)
    base.update(kw)
    return AdversarialObjective(8, 4, **base)


def test_length_mask_uses_relative_lengths():
    mask = length_mask(torch.tensor([1.0, 0.5, 0.26]), 4)
    assert mask.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        length_mask(torch.tensor([0.0]), 4)


def test_masked_mean_std_hand_values_and_padding_ignored():
    reps = torch.tensor([[[1.0], [3.0], [100.0], [-7.0]]])
    mask = torch.tensor([[True, True, False, False]])
    mean, std = masked_mean_std(reps, mask)
    assert mean.item() == pytest.approx(2.0) and std.item() == pytest.approx(1.0, rel=1e-4)
    reps[0, 2:] = 55.0
    assert masked_mean_std(reps, mask)[0].item() == pytest.approx(2.0)


def test_attentive_pooling_with_equal_scores_is_mean_std():
    torch.manual_seed(0)
    reps, mask = torch.randn(3, 5, 4), length_mask(torch.tensor([1.0, 0.6, 0.4]), 5)
    pooled = attentive_mean_std(reps, mask, torch.zeros(3, 5))
    mean, std = masked_mean_std(reps, mask)
    assert torch.allclose(pooled, torch.cat([mean, std], -1), atol=1e-5)


@pytest.mark.parametrize("name", ["linear", "mlp", "mlp_deep", "attentive"])
def test_every_head_gives_logits_and_ignores_padding(name):
    torch.manual_seed(0)
    head = HEADS.build(name, input_dim=8, n_classes=3)
    reps, lengths = torch.randn(2, 6, 8), torch.tensor([1.0, 0.5])
    logits = head(reps, lengths)
    assert logits.shape == (2, 3)
    reps2 = reps.clone()
    reps2[1, 3:] = 1e3
    assert torch.allclose(head(reps2, lengths), logits, atol=1e-5)


def test_architectures_and_initialisations_differ():
    obj = AdversarialObjective(8, 4, heads=("mlp", "mlp", "linear", "attentive", "mlp_deep"), total_steps=10)
    sizes = [sum(p.numel() for p in h.parameters()) for h in obj.heads]
    assert len({sizes[0], sizes[2], sizes[3], sizes[4]}) == 4
    assert not torch.equal(obj.heads[0].classifier[0].weight, obj.heads[1].classifier[0].weight)


def test_registry_errors():
    with pytest.raises(RegistryError, match="valid adversary heads: attentive, class_embedding, linear, mlp, mlp_deep, xvector"):
        AdversarialObjective(8, 4, heads=("cnn",), total_steps=10)
    with pytest.raises(RegistryError, match="unknown parameter"):
        AdversarialObjective(8, 4, heads=({"name": "mlp", "depth": 3},), total_steps=10)
    assert AdversarialObjective(8, 4, heads=({"name": "mlp", "hidden": 7},), total_steps=10
                                ).heads[0].classifier[0].out_features == 7


def test_argument_validation():
    with pytest.raises(ValueError, match="gender adversary has 2 classes"):
        AdversarialObjective(8, 3, target="gender", total_steps=10)
    with pytest.raises(ValueError, match="valid targets"):
        AdversarialObjective(8, 3, target="age", total_steps=10)
    with pytest.raises(ValueError, match="non-empty list"):
        AdversarialObjective(8, 3, heads="mlp", total_steps=10)
    obj = _objective()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        obj(torch.randn(2, 3, 8), torch.ones(2), torch.tensor([0, 4]), 0)
    with pytest.raises(ValueError, match="int64"):
        obj(torch.randn(2, 3, 8), torch.ones(2), torch.tensor([0.0, 1.0]), 0)


def _separable(n, generator, centres):
    labels = torch.randint(0, centres.shape[0], (n,), generator=generator)
    reps = centres[labels][:, None, :] + 0.5 * torch.randn(n, 10, centres.shape[1], generator=generator)
    lengths = torch.randint(3, 11, (n,), generator=generator) / 10.0
    return reps, lengths, labels


def test_heads_learn_separable_speakers():
    g = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(4, 8, generator=g)
    small = ("linear", {"name": "mlp", "hidden": 32}, {"name": "mlp_deep", "hidden": [32, 32]},
             {"name": "attentive", "hidden": 32, "attention_dim": 16})
    obj = _objective(heads=small)
    opt = torch.optim.Adam(obj.parameters(), lr=1e-2)
    for step in range(40):
        reps, lengths, labels = _separable(32, g, centres)
        out = obj(reps, lengths, labels, step)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    obj.eval()
    reps, lengths, labels = _separable(256, g, centres)
    out = obj(reps, lengths, labels, 40)
    assert len(out.per_head_accuracy) == 4
    assert min(out.per_head_accuracy) > 0.95, out.per_head_accuracy
    assert out.accuracy == pytest.approx(sum(out.per_head_accuracy) / 4)


def test_gradient_into_reps_is_negated_and_scaled():
    torch.manual_seed(0)
    obj = _objective(weight=1.5, schedule={"kind": "constant", "lambda_max": 0.7})
    reps, lengths = torch.randn(5, 6, 8), torch.tensor([1.0, 0.5, 0.8, 0.34, 1.0])
    labels = torch.tensor([0, 1, 2, 3, 1])
    r1 = reps.clone().requires_grad_(True)
    out = obj(r1, lengths, labels, step=10)
    out.loss.backward()
    head_grads = [p.grad.clone() for p in obj.parameters()]
    obj.zero_grad()
    r2 = reps.clone().requires_grad_(True)
    plain = 1.5 * sum(F.cross_entropy(lg, labels) for lg in obj.head_logits(r2, lengths))
    plain.backward()
    assert out.lambd == 0.7
    assert torch.allclose(out.loss, plain)
    assert r2.grad.abs().sum() > 0
    assert torch.allclose(r1.grad, -0.7 * r2.grad, atol=1e-7)
    for a, p in zip(head_grads, obj.parameters()):  # heads themselves descend normally
        assert torch.allclose(a, p.grad, atol=1e-7)


def test_dann_lambda_is_reported_from_the_step():
    obj = _objective(schedule={"kind": "dann", "lambda_max": 1.0, "gamma": 10.0})
    out = obj(torch.randn(2, 3, 8), torch.ones(2), torch.tensor([0, 1]), step=50)
    assert out.lambd == pytest.approx(math.tanh(2.5))


def test_reinit_schedule_is_staggered():
    assert [reinit_due(s, 6, 3) for s in range(0, 13)] == [
        (), (), (1,), (), (2,), (), (0,), (), (1,), (), (2,), (), (0,)]
    assert reinit_due(5, None, 3) == ()


def test_reinit_resets_one_head_deterministically_keeping_names():
    obj, twin = _objective(reinit_every=6), _objective(reinit_every=6)
    before = {n: (p.detach().clone(), p) for n, p in obj.named_parameters()}
    with torch.no_grad():  # training moved both objectives' weights differently
        for p in obj.parameters():
            p.add_(0.1)
        for p in twin.parameters():
            p.mul_(-3.0)
    x, lengths, labels = torch.randn(2, 3, 8), torch.ones(2), torch.tensor([0, 1])
    out = obj(x, lengths, labels, step=2)
    twin(x, lengths, labels, step=2)
    assert out.reinitialised == (1,)
    after = dict(obj.named_parameters())
    assert list(after) == list(before)
    for name, (old, param) in before.items():
        assert after[name] is param and after[name].shape == old.shape
        if name.startswith("heads.1."):
            assert not torch.allclose(after[name], old + 0.1)
            assert torch.equal(after[name], dict(twin.named_parameters())[name])
        else:
            assert torch.allclose(after[name], old + 0.1)
    other_seed = _objective(reinit_every=6, seed=4)
    other_seed(x, lengths, labels, step=2)
    assert not torch.equal(other_seed.heads[1].classifier[0].weight, obj.heads[1].classifier[0].weight)


def test_reinit_happens_once_per_step_and_not_in_eval():
    obj = _objective(reinit_every=6)
    x, lengths, labels = torch.randn(2, 3, 8), torch.ones(2), torch.tensor([0, 1])
    obj(x, lengths, labels, step=6)
    with torch.no_grad():
        obj.heads[0].classifier[0].weight.add_(1.0)
    snapshot = obj.heads[0].classifier[0].weight.clone()
    assert obj(x, lengths, labels, step=6).reinitialised == ()
    assert torch.equal(obj.heads[0].classifier[0].weight, snapshot)
    obj.eval()
    assert obj(x, lengths, labels, step=12).reinitialised == ()
    assert torch.equal(obj.heads[0].classifier[0].weight, snapshot)


def test_clear_optimizer_state_for_reset_heads():
    obj = _objective()
    opt = torch.optim.Adam(obj.parameters(), lr=1e-3)
    obj(torch.randn(2, 3, 8), torch.ones(2), torch.tensor([0, 1]), 0).loss.backward()
    opt.step()
    obj.clear_optimizer_state(opt, [0])
    assert all(p not in opt.state for p in obj.heads[0].parameters())
    assert all(p in opt.state for p in obj.heads[1].parameters())
