import copy

import pytest
import torch
import torch.nn.functional as F
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent
from opacus.layers import DPGRU
from torch import nn

from speechfl.models.adversary import AdversarialObjective
from speechfl.privacy.dp_sample import SampleDP, check_dp_compatible

VOCAB, FEATS, HIDDEN, SPEAKERS = 5, 6, 10, 3
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning")


class TinyCTC(nn.Module):
    """DPGRU encoder + LayerNorm + CTC head + speaker adversary behind gradient reversal."""

    def __init__(self):
        super().__init__()
        self.rnn = DPGRU(FEATS, HIDDEN, batch_first=True)
        self.norm = nn.LayerNorm(HIDDEN)
        self.out = nn.Linear(HIDDEN, VOCAB)
        self.adversary = AdversarialObjective(HIDDEN, SPEAKERS, heads=("linear", "attentive"), total_steps=10,
                                              schedule={"kind": "constant", "lambda_max": 0.5})

    def forward(self, x, rel_lens, targets, target_lens, speakers):
        reps = self.norm(self.rnn(x)[0])
        log_probs = F.log_softmax(self.out(reps), dim=-1).transpose(0, 1)
        in_lens = torch.round(rel_lens * x.shape[1]).long()
        ctc = F.ctc_loss(log_probs, targets, in_lens, target_lens, blank=0, reduction="mean")
        return ctc + self.adversary(reps, rel_lens, speakers, step=1).loss


def _batch(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 8, FEATS, generator=g)
    rel = torch.randint(5, 9, (n,), generator=g) / 8.0
    targets = torch.randint(1, VOCAB, (n, 3), generator=g)
    target_lens = torch.randint(1, 4, (n,), generator=g)
    speakers = torch.randint(0, SPEAKERS, (n,), generator=g)
    return x, rel, targets, target_lens, speakers


def _per_sample_grads(model, batch):
    """Oracle: each utterance's gradient from its own forward/backward."""
    out = []
    for i in range(batch[0].shape[0]):
        model.zero_grad()
        model(*(t[i:i + 1] for t in batch)).backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    return torch.stack(out)


def _grads(model):
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def test_check_dp_compatible_lists_every_problem():
    bad = nn.Sequential(nn.GRU(4, 4), nn.BatchNorm1d(4))
    with pytest.raises(ValueError) as err:
        check_dp_compatible(bad)
    assert "0 (GRU)" in str(err.value) and "1 (BatchNorm1d)" in str(err.value)
    check_dp_compatible(TinyCTC())
    model = TinyCTC().eval()
    with pytest.raises(ValueError, match="eval mode"):
        check_dp_compatible(model)


def test_grad_samples_match_per_utterance_gradients():
    torch.manual_seed(0)
    model, batch = TinyCTC(), _batch(4)
    oracle = _per_sample_grads(copy.deepcopy(model), batch)
    dp = SampleDP(noise_multiplier=0.0, max_grad_norm=1.0, delta=1e-5)
    gs, _ = dp.wrap(model, torch.optim.SGD(model.parameters(), lr=0.0), batch_size=4, n_samples=40)
    gs(*batch).backward()
    got = torch.cat([p.grad_sample.reshape(4, -1) for p in model.parameters()], dim=1)
    assert torch.allclose(got, oracle, atol=1e-5)


def test_per_sample_clipping_bound_and_clipped_mean():
    torch.manual_seed(1)
    model, batch = TinyCTC(), _batch(6, seed=1)
    oracle = _per_sample_grads(copy.deepcopy(model), batch)
    norms = oracle.norm(dim=1)
    clip = float(norms.median())
    assert (norms > clip).any() and (norms < clip).any()  # clipping is active for some, not all
    dp = SampleDP(noise_multiplier=0.0, max_grad_norm=clip, delta=1e-5)
    gs, opt = dp.wrap(model, torch.optim.SGD(model.parameters(), lr=0.0), batch_size=6, n_samples=60)
    gs(*batch).backward()
    opt.step()
    expected = (oracle * (clip / (norms + 1e-6)).clamp(max=1.0)[:, None]).sum(0) / 6
    assert torch.allclose(_grads(model), expected, atol=1e-6)
    for i in range(6):  # every single clipped per-sample gradient respects the bound
        opt.zero_grad()
        gs(*(t[i:i + 1] for t in batch)).backward()
        opt.pre_step()
        clipped = torch.cat([p.summed_grad.reshape(-1) for p in model.parameters()])
        assert clipped.norm() <= clip * (1 + 1e-5)
        assert torch.allclose(clipped, oracle[i] * min(1.0, clip / (float(norms[i]) + 1e-6)), atol=1e-6)


def test_noise_has_configured_std():
    torch.manual_seed(2)
    model, batch = TinyCTC(), _batch(4, seed=2)
    oracle = _per_sample_grads(copy.deepcopy(model), batch)
    clip, z, batch_size = 0.5, 2.0, 4
    clean = (oracle * (clip / (oracle.norm(dim=1) + 1e-6)).clamp(max=1.0)[:, None]).sum(0) / batch_size
    dp = SampleDP(noise_multiplier=z, max_grad_norm=clip, delta=1e-5, seed=5)
    gs, opt = dp.wrap(model, torch.optim.SGD(model.parameters(), lr=0.0), batch_size=batch_size, n_samples=40)
    residuals = []
    for _ in range(20):
        opt.zero_grad()
        gs(*batch).backward()
        opt.step()
        residuals.append(_grads(model) - clean)
    noise = torch.cat(residuals)  # ~ N(0, (z C / B)^2), n = 20 * n_params values
    expected_std = z * clip / batch_size
    assert abs(float(noise.std()) / expected_std - 1) < 0.03, (float(noise.std()), expected_std, noise.numel())
    assert abs(float(noise.mean())) < 4 * expected_std / noise.numel() ** 0.5


def test_epsilon_equals_direct_opacus_and_survives_rounds():
    torch.manual_seed(3)
    model, batch = TinyCTC(), _batch(4, seed=3)
    dp = SampleDP(noise_multiplier=1.1, max_grad_norm=1.0, delta=1e-5)
    assert dp.epsilon() == 0.0
    gs, opt = dp.wrap(model, torch.optim.SGD(model.parameters(), lr=0.01), batch_size=4, n_samples=50)
    for _ in range(3):
        opt.zero_grad()
        gs(*batch).backward()
        opt.step()
    orders = RDPAccountant.DEFAULT_ALPHAS
    direct, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=4 / 50, noise_multiplier=1.1, steps=3,
                                                                 orders=orders), delta=1e-5)
    assert dp.steps == 3
    assert dp.epsilon() == pytest.approx(direct, rel=1e-12)

    plain = dp.unwrap(gs)  # next round: a fresh SampleDP restored from state, one more step
    assert plain is model and not any(hasattr(p, "grad_sample") for p in model.parameters())
    restored = SampleDP(noise_multiplier=1.1, max_grad_norm=1.0, delta=1e-5)
    restored.load_state_dict(dp.state_dict())
    gs2, opt2 = restored.wrap(plain, torch.optim.SGD(plain.parameters(), lr=0.01), batch_size=4, n_samples=50)
    opt2.zero_grad()
    gs2(*batch).backward()
    opt2.step()
    direct4, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=4 / 50, noise_multiplier=1.1, steps=4,
                                                                  orders=orders), delta=1e-5)
    assert restored.epsilon() == pytest.approx(direct4, rel=1e-12) and direct4 > direct


@pytest.mark.filterwarnings("ignore:GDP accounting is experimental:UserWarning")
def test_wrap_validation():
    dp = SampleDP(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)
    model = TinyCTC()
    with pytest.raises(ValueError, match="exceeds"):
        dp.wrap(model, torch.optim.SGD(model.parameters(), lr=0.1), batch_size=10, n_samples=5)
    with pytest.raises(ValueError, match="GradSampleModule"):
        dp.wrap(GradSampleModule(nn.Linear(2, 2)), torch.optim.SGD(model.parameters(), lr=0.1),
                batch_size=1, n_samples=5)
    gru = nn.GRU(3, 3)
    with pytest.raises(ValueError, match="GRU"):
        dp.wrap(gru, torch.optim.SGD(gru.parameters(), lr=0.1), batch_size=1, n_samples=5)
    with pytest.raises(ValueError, match="not the model's"):
        dp.wrap(nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1), batch_size=1, n_samples=5)
    with pytest.raises(ValueError, match="valid accountants: gdp, prv, rdp"):
        SampleDP(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, accountant="moments")
    with pytest.raises(ValueError, match="delta"):
        SampleDP(noise_multiplier=1.0, max_grad_norm=1.0, delta=0.0)
    with pytest.raises(ValueError, match="accountant"):
        SampleDP(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, accountant="gdp").load_state_dict(
            dp.state_dict())


def test_poisson_batch_sampler_rate():
    dp = SampleDP(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)
    sampler = dp.batch_sampler(n_samples=100, batch_size=10, steps=300, generator=torch.Generator().manual_seed(0))
    sizes = torch.tensor([len(b) for b in sampler], dtype=torch.float32)
    assert sizes.numel() == 300
    assert abs(float(sizes.mean()) - 10.0) < 4 * (10 * 0.9 / 300) ** 0.5


class TransposedConv(nn.Module):
    """SpeechBrain-style conv: [B, T, F, 1] input transposed (non-contiguous) before nn.Conv2d."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, (3, 3), stride=(2, 2))
        self.out = nn.Linear(3, 2)

    def forward(self, x, y):
        h = self.conv(x.transpose(1, -1)).mean(dim=(2, 3))
        return F.cross_entropy(self.out(h), y)


def test_conv_on_non_contiguous_input_gets_correct_grad_samples():
    # Opacus' unfold2d assumes a contiguous activation; wrap() must make it so.
    torch.manual_seed(4)
    model = TransposedConv()
    batch = (torch.randn(3, 16, 10, 1), torch.tensor([0, 1, 1]))
    oracle = _per_sample_grads(copy.deepcopy(model), batch)
    dp = SampleDP(noise_multiplier=0.0, max_grad_norm=1.0, delta=1e-5)
    gs, _ = dp.wrap(model, torch.optim.SGD(model.parameters(), lr=0.0), batch_size=3, n_samples=30)
    gs(*batch).backward()
    got = torch.cat([p.grad_sample.reshape(3, -1) for p in model.parameters()], dim=1)
    assert torch.allclose(got, oracle, atol=1e-5)
    plain = dp.unwrap(gs)
    assert not plain.conv._forward_pre_hooks and not plain.conv._forward_hooks


def test_poisson_loader_is_seeded_has_poisson_sizes_and_yields_none_for_empty_batches():
    dp = SampleDP(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5)
    data = list(range(6))
    make = lambda seed: dp.poisson_loader(data, batch_size=1, steps=400, seed=seed,  # noqa: E731
                                          collate_fn=lambda items: torch.tensor(items))
    a, b, c = list(make(5)), list(make(5)), list(make(6))
    assert len(a) == 400
    same = lambda x, y: all((u is None and v is None) or (u is not None and v is not None and torch.equal(u, v))  # noqa
                            for u, v in zip(x, y))
    assert same(a, b) and not same(a, c)
    sizes = torch.tensor([0 if x is None else len(x) for x in a], dtype=torch.float32)
    # each of 6 items in each batch with prob 1/6: P(empty) = (5/6)^6 = 0.335, mean size 1
    n_empty = sum(x is None for x in a)
    assert abs(n_empty / 400 - (5 / 6) ** 6) < 4 * ((0.335 * 0.665) / 400) ** 0.5
    assert abs(float(sizes.mean()) - 1.0) < 4 * ((5 / 6) / 400) ** 0.5


def test_empty_step_releases_noise_only_and_is_accounted():
    torch.manual_seed(0)
    model = nn.Linear(200, 50)
    before = copy.deepcopy(model.state_dict())
    dp = SampleDP(noise_multiplier=2.0, max_grad_norm=0.5, delta=1e-5, seed=3)
    gs, opt = dp.wrap(model, torch.optim.SGD(model.parameters(), lr=1.0), batch_size=4, n_samples=40)
    opt.zero_grad(set_to_none=True)
    SampleDP.empty_step(opt)
    moved = torch.cat([(before[k] - v).reshape(-1) for k, v in dp.unwrap(gs).state_dict().items()])
    # lr 1: the step is -(0 + N(0, (z C)^2)) / B, std z C / B = 0.25
    assert float(moved.std()) == pytest.approx(2.0 * 0.5 / 4, rel=0.05)
    assert dp.steps == 1 and dp.epsilon() > 0
    with pytest.raises(TypeError, match="DPOptimizer"):
        SampleDP.empty_step(torch.optim.SGD(model.parameters(), lr=1.0))
