import math

import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

from speechfl.privacy.accounting import epsilon_from_history, rdp_epsilon
from speechfl.privacy.dp_user import DPFedAvg, adaptive_noise_multiplier, clip_updates


def _direct_epsilon(z, q, rounds, delta):
    orders = RDPAccountant.DEFAULT_ALPHAS
    eps, _ = get_privacy_spent(orders=orders, rdp=compute_rdp(q=q, noise_multiplier=z, steps=rounds, orders=orders),
                               delta=delta)
    return eps


def test_clip_updates_hand_values():
    clipped, norms = clip_updates(torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]]), 1.0)
    assert torch.allclose(clipped, torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]]))
    assert torch.allclose(norms, torch.tensor([5.0, 0.5, 0.0]))


def test_clipping_bound_holds_for_every_update():
    g = torch.Generator().manual_seed(0)
    updates = torch.randn(50, 300, generator=g) * torch.logspace(-2, 1, 50)[:, None]
    clipped, norms = clip_updates(updates, 1.5)
    out_norms = clipped.norm(dim=1)
    assert (out_norms <= 1.5 * (1 + 1e-6)).all()
    small = norms <= 1.5
    assert small.any() and (~small).any()
    assert torch.equal(clipped[small], updates[small])
    assert torch.allclose(out_norms[~small], torch.full((int((~small).sum()),), 1.5))
    cos = torch.nn.functional.cosine_similarity(clipped, updates, dim=1)
    assert torch.allclose(cos, torch.ones(50), atol=1e-5)  # direction kept


def test_noise_free_aggregate_is_clipped_sum_over_expected_clients():
    updates = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    dp = DPFedAvg(clip=1.0, noise_multiplier=0.0, expected_clients=4, sample_rate=0.1, seed=0)
    out = dp.aggregate(updates, round=0)
    assert torch.allclose(out, torch.tensor([0.9, 1.2]) / 4)
    assert torch.allclose(dp.last_norms, torch.tensor([5.0, 0.5])) and dp.last_clip == 1.0
    assert dp.epsilon(1e-5) == math.inf


def test_noise_has_configured_std():
    z, clip, m, d = 1.3, 0.5, 4.0, 200_000
    dp = DPFedAvg(clip=clip, noise_multiplier=z, expected_clients=m, sample_rate=0.2, seed=1)
    noise = dp.aggregate(torch.zeros(3, d), round=0) * m  # sum of zeros + N(0, (z C)^2)
    assert abs(float(noise.std()) / (z * clip) - 1) < 0.01
    assert abs(float(noise.mean())) < 4 * z * clip / math.sqrt(d)


def test_epsilon_equals_direct_opacus_call_every_round():
    dp = DPFedAvg(clip=1.0, noise_multiplier=0.9, expected_clients=10, sample_rate=0.05, seed=0)
    assert dp.epsilon(1e-5) == 0.0
    for r in range(1, 6):
        dp.aggregate(torch.randn(3, 7), round=r)
        assert dp.epsilon(1e-5) == pytest.approx(_direct_epsilon(0.9, 0.05, r, 1e-5), rel=1e-12)
    assert dp.history == [(0.9, 0.05, 5)]
    assert rdp_epsilon(0.9, 0.05, 5, 1e-5) == pytest.approx(_direct_epsilon(0.9, 0.05, 5, 1e-5), rel=1e-12)
    mixed = epsilon_from_history([(0.9, 0.05, 5), [1.2, 0.1, 3]], 1e-5)
    orders = RDPAccountant.DEFAULT_ALPHAS
    rdp = compute_rdp(q=0.05, noise_multiplier=0.9, steps=5, orders=orders) + compute_rdp(
        q=0.1, noise_multiplier=1.2, steps=3, orders=orders)
    assert mixed == pytest.approx(get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)[0], rel=1e-12)


def test_empty_round_still_adds_noise_and_counts():
    dp = DPFedAvg(clip=1.0, noise_multiplier=1.0, expected_clients=2, sample_rate=0.5, seed=0)
    out = dp.aggregate(torch.zeros(0, 5), round=0)
    assert out.shape == (5,) and out.abs().sum() > 0 and dp.history == [(1.0, 0.5, 1)]


def test_adaptive_noise_split_hand_value():
    assert adaptive_noise_multiplier(1.0, 1.0) == pytest.approx((1 - 0.25) ** -0.5)
    with pytest.raises(ValueError, match="count_noise_multiplier"):
        adaptive_noise_multiplier(1.0, 0.5)


def test_adaptive_clip_update_matches_formula_and_noise_std():
    z, sigma_b, m, d = 1.0, 1.0, 4.0, 50_000
    cfg = {"target_quantile": 0.5, "lr": 0.2, "count_noise_multiplier": sigma_b}
    dp = DPFedAvg(clip=1.0, noise_multiplier=z, expected_clients=m, sample_rate=0.1, seed=7, adaptive=cfg)
    updates = torch.zeros(4, d)
    updates[0, 0], updates[1, 0] = 5.0, 3.0  # two norms above C = 1, two below
    out = dp.aggregate(updates, round=0)
    g = torch.Generator().manual_seed(7)  # oracle: same draws in the same order
    noise = torch.randn(d, generator=g) * adaptive_noise_multiplier(z, sigma_b)
    count_noise = float(torch.randn(1, generator=g)) * sigma_b
    clipped_sum = torch.zeros(d)
    clipped_sum[0] = 2.0  # 5 and 3 clipped to 1 each
    expected_out = (clipped_sum + noise) / m
    assert torch.allclose(out, expected_out, atol=1e-6)
    frac = (2 - 0.5 * 4 + count_noise) / m + 0.5
    assert dp.clip == pytest.approx(math.exp(-0.2 * (frac - 0.5)), rel=1e-9)
    assert dp.last_clip == 1.0
    assert dp.history == [(1.0, 0.1, 1)]  # accounted at the overall multiplier z


def test_adaptive_clip_tracks_the_median_norm():
    g = torch.Generator().manual_seed(0)
    dp = DPFedAvg(clip=0.1, noise_multiplier=0.1, expected_clients=100, sample_rate=0.1, seed=0,
                  adaptive={"target_quantile": 0.5, "lr": 0.2, "count_noise_multiplier": 0.1})
    for r in range(150):
        norms = 2.0 * torch.rand(100, generator=g)  # median 1
        dp.aggregate(torch.stack([norms, torch.zeros(100)], dim=1), round=r)
    assert abs(dp.clip - 1.0) < 0.15


def test_state_dict_round_trip_restores_noise_and_accountant():
    args = dict(clip=1.0, noise_multiplier=1.0, expected_clients=3, sample_rate=0.3, seed=11,
                adaptive={"count_noise_multiplier": 2.0})
    a = DPFedAvg(**args)
    for r in range(2):
        a.aggregate(torch.randn(3, 20), round=r)
    b = DPFedAvg(**args)
    b.load_state_dict(a.state_dict())
    u = torch.randn(3, 20)
    assert torch.equal(a.aggregate(u, round=2), b.aggregate(u, round=2))
    assert a.epsilon(1e-5) == b.epsilon(1e-5) and a.clip == b.clip


def test_validation_errors():
    with pytest.raises(ValueError, match="clip"):
        DPFedAvg(clip=0.0, noise_multiplier=1.0, expected_clients=3, sample_rate=0.3, seed=0)
    with pytest.raises(ValueError, match="sample_rate"):
        DPFedAvg(clip=1.0, noise_multiplier=1.0, expected_clients=3, sample_rate=1.5, seed=0)
    with pytest.raises(ValueError, match="unknown adaptive"):
        DPFedAvg(clip=1.0, noise_multiplier=1.0, expected_clients=3, sample_rate=0.3, seed=0, adaptive={"rate": 1})
    dp = DPFedAvg(clip=1.0, noise_multiplier=1.0, expected_clients=3, sample_rate=0.3, seed=0)
    dp.aggregate(torch.randn(2, 4), round=3)
    with pytest.raises(ValueError, match="cannot go back"):
        dp.aggregate(torch.randn(2, 4), round=2)
    with pytest.raises(ValueError, match=r"\[n_clients, d\]"):
        dp.aggregate(torch.randn(4), round=4)
    with pytest.raises(ValueError, match="delta"):
        dp.epsilon(0.0)
    with pytest.raises(ValueError, match="count_noise_multiplier > noise_multiplier / 2"):  # default m/20 = 0.15
        DPFedAvg(clip=1.0, noise_multiplier=1.0, expected_clients=3, sample_rate=0.3, seed=0, adaptive={})
    adaptive = DPFedAvg(clip=1.0, noise_multiplier=1.0, expected_clients=3, sample_rate=0.3, seed=0,
                        adaptive={"count_noise_multiplier": 1.0})
    with pytest.raises(ValueError, match="adaptive clipping"):
        adaptive.aggregate_clipped_sum(torch.zeros(4), round=0)


def test_clipped_sum_path_matches_aggregate():
    u = torch.randn(3, 10) * 3
    a = DPFedAvg(clip=1.0, noise_multiplier=0.7, expected_clients=3, sample_rate=0.3, seed=5)
    b = DPFedAvg(clip=1.0, noise_multiplier=0.7, expected_clients=3, sample_rate=0.3, seed=5)
    clipped_sum = clip_updates(u, 1.0)[0].sum(0)
    assert torch.allclose(a.aggregate(u, round=0), b.aggregate_clipped_sum(clipped_sum, round=0))
    assert a.history == b.history
