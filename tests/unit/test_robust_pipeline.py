"""Pre-aggregators composed before an aggregator; contributions mapped back; shared-support aggregation."""

import pytest
import torch

import speechfl.robustness as R
from speechfl.registry import RegistryError


def test_pipeline_composes_and_maps_weights_through_buckets():
    x = torch.tensor([[1.0], [2.0], [4.0], [8.0], [16.0], [32.0]])  # distinct pair sums: no tied buckets
    pipe = R.build_robust_pipeline("median", [{"name": "bucketing", "s": 2, "seed": 0}])
    out = pipe(x)
    buckets = pipe.preaggregators[0]
    member = buckets.last_membership
    means = (member @ x.double()) / member.sum(1, keepdim=True)
    assert torch.allclose(out.double(), means.median(0).values)  # 3 buckets: the middle one
    # the median bucket's weight is shared by its two members
    chosen = int(torch.argmin((means.flatten() - out.double()).abs()))
    want = member[chosen] / 2
    assert torch.allclose(pipe.last_weights, want)
    assert pipe.requires_individual_updates and pipe.name == "bucketing+median"


def test_pipeline_weights_reach_weighted_rules():
    x = torch.tensor([[0.0], [4.0], [8.0], [12.0]])
    pipe = R.build_robust_pipeline("weighted_mean", [{"name": "bucketing", "s": 2, "seed": 1}])
    w = torch.tensor([1.0, 1.0, 1.0, 5.0])
    out = pipe(x, w)
    member = pipe.preaggregators[0].last_membership.float()
    bucket_w = member @ w
    bucket_x = (member @ x) / member.sum(1, keepdim=True)
    assert torch.allclose(out, (bucket_w[:, None] * bucket_x).sum(0) / bucket_w.sum())


def test_pipeline_nnm_then_krum_and_clipping_scales_contributions():
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0], [50.0]])
    pipe = R.build_robust_pipeline({"name": "krum", "f": 1}, [{"name": "nnm", "f": 1}])
    out = pipe(x)
    mixed = R.get_preaggregator("nnm", f=1)(x)
    assert torch.equal(out, R.get_aggregator("krum", f=1)(mixed))
    assert abs(float(pipe.last_weights.sum()) - 1) < 1e-12 and float(pipe.last_weights[4]) == 0.0
    clip = R.build_robust_pipeline("mean", [{"name": "clipping", "tau": 2.0}])
    clip(torch.tensor([[1.0], [4.0]]))  # scales 1 and 0.5
    assert torch.allclose(clip.last_weights, torch.tensor([2 / 3, 1 / 3], dtype=torch.float64))


def test_pipeline_state_round_trip_with_centered_clipping():
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    specs = ({"name": "centered_clipping", "tau": 0.5}, [{"name": "bucketing", "s": 2, "seed": 7}])
    a = R.build_robust_pipeline(*specs)
    a(x)
    state = a.state_dict()
    b = R.build_robust_pipeline(*specs)
    b.load_state_dict(state)
    assert torch.equal(a(x), b(x))
    with pytest.raises(ValueError, match="pre-aggregator states"):
        b.load_state_dict({"aggregator": state["aggregator"], "preaggregators": []})


def test_pipeline_min_rows_accounts_for_buckets():
    pipe = R.build_robust_pipeline({"name": "krum", "f": 1}, [{"name": "nnm", "f": 1}, {"name": "bucketing", "s": 2}])
    assert pipe.min_rows() == 9  # krum needs 5 buckets of 2 -> 9 updates (the last bucket may hold one)
    pipe(torch.randn(9, 3))
    with pytest.raises(ValueError, match="at least 9"):
        pipe(torch.randn(8, 3))


def test_pipeline_spec_errors():
    with pytest.raises(RegistryError, match="valid pre-aggregators: arc, bucketing, clipping, nnm"):
        R.build_robust_pipeline("mean", ["nmm"])
    with pytest.raises(RegistryError, match="valid parameters: s, seed"):
        R.build_robust_pipeline("mean", [{"name": "bucketing", "size": 2}])
    with pytest.raises(TypeError, match="list of specs"):
        R.build_robust_pipeline("mean", "nnm")


@pytest.mark.parametrize("spec", ["median", {"name": "trimmed_mean", "f": 1}, {"name": "krum", "f": 1},
                                  {"name": "geometric_median", "tol": 0.0, "iters": 20}, "sign_vote",
                                  {"name": "meamed", "f": 1}])
def test_aggregate_on_support_equals_dense(spec):
    n, d, k = 6, 40, 9
    g = torch.Generator().manual_seed(0)
    support = torch.sort(torch.randperm(d, generator=g)[:k]).values
    values = torch.randn(n, k, generator=g)
    dense = torch.zeros(n, d)
    dense[:, support] = values
    sparse_out = R.aggregate_on_support(values, support, d, R.build_robust_pipeline(spec, [{"name": "arc", "f": 1}]))
    dense_out = R.build_robust_pipeline(spec, [{"name": "arc", "f": 1}])(dense)
    assert torch.allclose(sparse_out, dense_out, atol=1e-6)


def test_aggregate_on_support_errors():
    values, support = torch.ones(3, 2), torch.tensor([0, 5])
    with pytest.raises(ValueError, match="keeps a \\[d\\] state"):
        R.aggregate_on_support(values, support, 8, R.get_aggregator("centered_clipping", tau=1.0))
    with pytest.raises(ValueError, match="distinct"):
        R.aggregate_on_support(values, torch.tensor([1, 1]), 8, R.get_aggregator("median"))
    with pytest.raises(ValueError, match="in \\[0, 4\\)"):
        R.aggregate_on_support(values, support, 4, R.get_aggregator("median"))
    with pytest.raises(ValueError, match="2 columns"):
        R.aggregate_on_support(values, torch.tensor([0, 1, 2]), 8, R.get_aggregator("median"))
