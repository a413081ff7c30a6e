"""Robust rules stay bounded when f clients send huge vectors; the mean does not."""

import pytest
import torch

import speechfl.robustness as R

N, F, D = 11, 3, 50


@pytest.fixture(scope="module")
def attacked():
    g = torch.Generator().manual_seed(0)
    honest = torch.randn(N - F, D, generator=g)
    byz = 1e12 * torch.randn(F, D, generator=g)
    return honest, torch.cat([byz, honest])


def test_mean_is_hijacked(attacked):
    honest, x = attacked
    assert float(torch.linalg.vector_norm(R.get_aggregator("mean")(x))) > 1e10


@pytest.mark.parametrize("name,params", [("median", {}), ("trimmed_mean", {"f": F}), ("meamed", {"f": F})])
def test_coordinatewise_rules_stay_in_the_honest_range(attacked, name, params):
    honest, x = attacked
    out = R.get_aggregator(name, **params)(x)
    assert bool((out >= honest.min(0).values - 1e-6).all()) and bool((out <= honest.max(0).values + 1e-6).all())


@pytest.mark.parametrize("name", ["krum", "multi_krum"])
def test_krum_selects_only_honest_rows(attacked, name):
    honest, x = attacked
    agg = R.get_aggregator(name, f=F)
    out = agg(x)
    assert float(agg.last_weights[:F].sum()) == 0.0
    assert float(torch.linalg.vector_norm(out)) <= float(torch.linalg.vector_norm(honest, dim=1).max())


def test_geometric_median_stays_near_the_honest_points(attacked):
    honest, x = attacked
    out = R.get_aggregator("geometric_median")(x)
    radius = float(torch.linalg.vector_norm(honest - honest.mean(0), dim=1).max())
    assert float(torch.linalg.vector_norm(out - honest.mean(0))) <= 2 * radius


def test_centered_clipping_moves_at_most_tau_per_step(attacked):
    honest, x = attacked
    cc = R.get_aggregator("centered_clipping", tau=1.0, iters=3)
    out = cc(x)
    assert float(torch.linalg.vector_norm(out)) <= 3.0 + 1e-5  # from the origin, <= tau per step
    honest_only = R.get_aggregator("centered_clipping", tau=1.0, iters=3)(honest)
    # Byzantine rows pull by at most tau * f / n per step
    assert float(torch.linalg.vector_norm(out - honest_only)) <= 3 * (1.0 * F / N + 1.0)


def test_nnm_then_mean_is_bounded(attacked):
    honest, x = attacked
    out = R.build_robust_pipeline({"name": "trimmed_mean", "f": F}, [{"name": "nnm", "f": F}])(x)
    assert float(torch.linalg.vector_norm(out)) <= float(torch.linalg.vector_norm(honest, dim=1).max())
