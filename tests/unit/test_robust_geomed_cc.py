"""Geometric median (smoothed Weiszfeld) and centered clipping: hand cases, oracles, state."""

import math

import pytest
import torch

import speechfl.robustness as R


def weiszfeld_f64(x, iters, nu=1e-12, z=None):
    """Slow, obvious float64 Weiszfeld (row by row)."""
    x = x.double()
    z = x.mean(0) if z is None else z.double()
    for _ in range(iters):
        w = [1.0 / max(nu, float(torch.linalg.vector_norm(row - z))) for row in x]
        z = sum(wi * row for wi, row in zip(w, x)) / sum(w)
    return z


def test_geometric_median_by_hand():
    gm = R.get_aggregator("geometric_median", nu=1e-9, iters=500, tol=1e-12)
    # (1, 1) three times against two other points: the sum of the others' unit vectors (norm <= 2)
    # cannot outweigh multiplicity 3, so the geometric median is (1, 1)
    majority = torch.tensor([[1.0, 1], [1, 1], [1, 1], [-1, 1], [1, -5]])
    tri = torch.tensor([[0.0, 0], [2, 0], [1, math.sqrt(3)]])  # equilateral: Fermat point = centroid
    assert torch.allclose(gm(tri), torch.tensor([1.0, math.sqrt(3) / 3]), atol=1e-5)
    line = torch.tensor([[0.0], [1.0], [10.0]])  # 1-D: the median
    assert torch.allclose(gm(line), torch.tensor([1.0]), atol=1e-4)
    assert torch.allclose(gm(majority), torch.tensor([1.0, 1.0]), atol=1e-6)
    assert gm.last_steps > 1


def test_distance_to_a_point_is_exact_near_a_row():
    from speechfl.robustness.tensor_ops import sq_dists_to_point

    x = torch.randn(4, 1000, generator=torch.Generator().manual_seed(0)) + 100.0  # norms ~3e3
    z = x[2] + 1e-3  # 0.03 away from row 2: a Gram formula would lose this in rounding
    exact = ((x.double() - z.double()) ** 2).sum(1)
    assert torch.allclose(sq_dists_to_point(x, z), exact, rtol=1e-5)


def test_geometric_median_matches_float64_oracle_and_objective():
    x = torch.randn(9, 20, generator=torch.Generator().manual_seed(0))
    x[:2] *= 30
    gm = R.get_aggregator("geometric_median", nu=1e-9, iters=1000, tol=1e-12)
    out = gm(x)
    ref = weiszfeld_f64(x, 2000)
    assert torch.allclose(out.double(), ref, atol=1e-4)

    def objective(z):
        return float(sum(torch.linalg.vector_norm(row.double() - z.double()) for row in x))

    for k in range(5):  # no nearby point does better
        probe = out + 1e-2 * torch.randn(20, generator=torch.Generator().manual_seed(k))
        assert objective(out) <= objective(probe)


def test_geometric_median_fixed_steps_formula():
    # init zeros, 3 steps, nu = 0.1, tol = 0 (ByzFL's GeometricMedian(nu=0.1, T=3))
    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    gm = R.get_aggregator("geometric_median", nu=0.1, iters=3, tol=0.0, init="zeros")
    out = gm(x)
    z = torch.zeros(8, dtype=torch.float64)
    for _ in range(3):
        beta = torch.tensor([1 / 6 / max(0.1, float(torch.linalg.vector_norm(r.double() - z))) for r in x])
        z = (beta[:, None] * x.double()).sum(0) / beta.sum()
    assert torch.allclose(out.double(), z, atol=1e-6)
    assert gm.last_steps == 3
    assert torch.allclose(gm.last_weights, beta.double() / beta.sum(), atol=1e-6)


def test_geometric_median_weighted_uses_sample_counts():
    line = torch.tensor([[0.0], [1.0], [10.0]])
    gm = R.get_aggregator("geometric_median", weighted=True, nu=1e-9, iters=500, tol=1e-12)
    assert gm.uses_weights
    assert torch.allclose(gm(line, torch.tensor([1.0, 1.0, 5.0])), torch.tensor([10.0]), atol=1e-6)
    with pytest.raises(ValueError, match="weighted=True needs weights"):
        gm(line)


def test_centered_clipping_by_hand_and_state():
    x = torch.tensor([[0.0], [10.0]])
    cc = R.get_aggregator("centered_clipping", tau=1.0)
    # v0 = 0: factors 1 and 1/10 -> v1 = (0 + 10 * 0.1) / 2 = 0.5
    assert torch.allclose(cc(x), torch.tensor([0.5]))
    assert torch.allclose(cc.last_weights, torch.tensor([1.0, 0.1], dtype=torch.float64) / 1.1)
    state = cc.state_dict()
    # v0 = 0.5 (kept): factors 1 and 1/9.5 -> v1 = 0.5 + (-0.5 + 1) / 2 = 0.75
    assert torch.allclose(cc(x), torch.tensor([0.75]))
    resumed = R.get_aggregator("centered_clipping", tau=1.0)
    resumed.load_state_dict(state)
    assert torch.allclose(resumed(x), torch.tensor([0.75]))
    two_steps = R.get_aggregator("centered_clipping", tau=1.0, iters=2)
    assert torch.allclose(two_steps(x), torch.tensor([0.75]))  # same two steps inside one call


def test_centered_clipping_state_errors():
    cc = R.get_aggregator("centered_clipping", tau=1.0)
    with pytest.raises(ValueError, match="exactly the key 'center'"):
        cc.load_state_dict({"centre": None})
    cc.load_state_dict({"center": torch.zeros(3)})
    with pytest.raises(ValueError, match="stored center has d = 3"):
        cc(torch.zeros(4, 5))
    with pytest.raises(Exception, match="tau"):
        R.get_aggregator("centered_clipping")  # tau has no universal default


def test_distances_survive_float32_overflow():
    from speechfl.robustness.tensor_ops import row_sq_norms, sq_dists_to_point

    x = torch.tensor([[3e38, 3e38], [1.0, 2.0]])  # ||x_0|| exceeds float32's range
    sq = row_sq_norms(x)
    assert math.isfinite(sq[0]) and abs(sq[0] / 1.8e77 - 1) < 1e-6 and abs(sq[1] - 5.0) < 1e-5
    d = sq_dists_to_point(x, torch.tensor([-3e38, 0.0]))
    assert math.isfinite(d[0]) and abs(d[0] / (36e76 + 9e76) - 1) < 1e-6
    out = R.get_aggregator("geometric_median")(torch.cat([x[:1], torch.randn(4, 2)]))
    assert bool(torch.isfinite(out).all()) and float(out.abs().max()) < 10
