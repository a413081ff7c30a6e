"""Hand-computed cases and slow oracles for the coordinate-wise and averaging aggregators."""

import numpy as np
import pytest
import torch

import speechfl.robustness as R
from speechfl.registry import RegistryError
from speechfl.robustness import tensor_ops
from speechfl.robustness.aggregators.meamed import meamed
from speechfl.robustness.aggregators.median import coordinate_median
from speechfl.robustness.aggregators.trimmed_mean import trimmed_mean


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_mean_and_weighted_mean_by_hand():
    x = t([[1, 2], [3, 4], [5, 9]])
    mean = R.get_aggregator("mean")
    assert torch.allclose(mean(x), t([3, 5]))
    assert torch.allclose(mean.last_weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    wm = R.get_aggregator("weighted_mean")
    out = wm(x, torch.tensor([1.0, 1.0, 2.0]))
    assert torch.allclose(out, t([(1 + 3 + 10) / 4, (2 + 4 + 18) / 4]))
    assert torch.allclose(wm.last_weights, torch.tensor([0.25, 0.25, 0.5], dtype=torch.float64))
    assert not mean.requires_individual_updates and not wm.requires_individual_updates
    with pytest.raises(ValueError, match="weights"):
        wm(x)


def test_median_by_hand_odd_and_even():
    med = R.get_aggregator("median")
    assert torch.equal(med(t([[1, 10], [2, 30], [100, 20]])), t([2, 20]))
    # coordinate 0 keeps row 1, coordinate 1 keeps row 2
    assert torch.allclose(med.last_weights, torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))
    assert torch.equal(med(t([[1], [2], [3], [10]])), t([2.5]))  # mean of the two middle values
    assert torch.allclose(med.last_weights, torch.tensor([0, 0.5, 0.5, 0], dtype=torch.float64))


@pytest.mark.parametrize("name,params", [("median", {}), ("trimmed_mean", {"f": 1}), ("meamed", {"f": 1})])
def test_single_column_input_is_not_sorted_in_place(name, params):
    x = torch.tensor([[3.0], [1.0], [2.0]])
    R.get_aggregator(name, **params)(x)
    assert torch.equal(x, torch.tensor([[3.0], [1.0], [2.0]]))


def test_trimmed_mean_by_hand():
    tm = R.get_aggregator("trimmed_mean", f=1)
    out = tm(t([[1, -50], [2, 0], [3, 1], [100, 2]]))
    assert torch.allclose(out, t([2.5, 0.5]))
    # kept: rows 1, 2 at coordinate 0; rows 1, 2 at coordinate 1
    assert torch.allclose(tm.last_weights, torch.tensor([0, 0.5, 0.5, 0], dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 3"):
        R.get_aggregator("trimmed_mean", f=1)(t([[1], [2]]))


def test_meamed_by_hand():
    # column 0: median 1.5, 3 closest of [0, 1, 2, 10] are 0, 1, 2 -> 1.0
    # column 1: median 4.5, 3 closest of [-10, 4, 5, 6] are 4, 5, 6 -> 5.0
    agg = R.get_aggregator("meamed", f=1)
    out = agg(t([[0, -10], [1, 4], [2, 5], [10, 6]]))
    assert torch.allclose(out, t([1.0, 5.0]))
    assert torch.allclose(agg.last_weights, torch.tensor([1, 2, 2, 1], dtype=torch.float64) / 6)


def slow_meamed(x: np.ndarray, f: int) -> np.ndarray:
    n, d = x.shape
    out = np.empty(d)
    for j in range(d):
        col = x[:, j].astype(np.float64)
        med = np.median(col)
        keep = sorted(range(n), key=lambda i: abs(col[i] - med))[: n - f]
        out[j] = col[keep].mean()
    return out


@pytest.mark.parametrize("n,f", [(7, 2), (8, 3), (5, 0)])
def test_coordinatewise_rules_match_slow_oracles(n, f):
    g = torch.Generator().manual_seed(n * 10 + f)
    x = torch.randn(n, 37, generator=g)
    x[:f] *= 50
    xs = np.sort(x.numpy().astype(np.float64), axis=0)
    assert np.allclose(R.get_aggregator("median")(x).numpy(), np.median(x.numpy(), axis=0), atol=1e-6)
    assert np.allclose(R.get_aggregator("trimmed_mean", f=f)(x).numpy(), xs[f : n - f].mean(0), atol=1e-5)
    assert np.allclose(R.get_aggregator("meamed", f=f)(x).numpy(), slow_meamed(x.numpy(), f), atol=1e-5)


def test_numpy_and_torch_backends_agree_across_many_blocks(monkeypatch):
    monkeypatch.setattr(tensor_ops, "CHUNK_ELEMS", 7 * 3)  # 3 columns per block, 17 blocks, threads
    assert len(tensor_ops.column_blocks(7, 50)) == 17
    g = torch.Generator().manual_seed(1)
    x = torch.randn(7, 50, generator=g)
    for fn in (coordinate_median, lambda u, backend: trimmed_mean(u, 2, backend),
               lambda u, backend: meamed(u, 2, backend)):
        a, ka = fn(x, backend="numpy")
        b, kb = fn(x, backend="torch")
        assert torch.allclose(a, b, atol=1e-6) and torch.equal(ka, kb)
    xs = torch.sort(x, dim=0).values
    assert torch.allclose(trimmed_mean(x, 2)[0], xs[2:5].mean(0), atol=1e-6)


def test_sign_vote_by_hand():
    x = t([[1, -1, 0, 2, 1], [1, 1, -1, -2, -1], [-3, 1, 0, 5, 0]])
    agg = R.get_aggregator("sign_vote")
    assert torch.equal(agg(x), t([1, 1, -1, 1, 0]))  # last column ties -> 0
    assert torch.allclose(agg.last_weights, torch.tensor([2, 3, 2], dtype=torch.float64) / 7)
    scaled = R.get_aggregator("sign_vote", scale="median_l1")(x)
    # ||x_i||_1 / 5 = 1, 1.2, 1.8 -> median 1.2
    assert torch.allclose(scaled, t([1, 1, -1, 1, 0]) * 1.2)


def test_sign_vote_many_blocks_matches_direct(monkeypatch):
    from speechfl.robustness.aggregators import signvote

    monkeypatch.setattr(signvote, "CHUNK_ELEMS", 10)  # 2 columns per block
    x = torch.randn(5, 33, generator=torch.Generator().manual_seed(3))
    assert torch.equal(R.get_aggregator("sign_vote")(x), torch.sign(torch.sign(x).sum(0)))


def test_byzantine_count_is_required():
    for name in ("trimmed_mean", "meamed", "krum", "multi_krum"):
        with pytest.raises(RegistryError, match="missing a required argument: 'f'"):
            R.get_aggregator(name)


def test_registry_and_input_errors():
    with pytest.raises(RegistryError, match="valid aggregators: .*krum"):
        R.get_aggregator("krun")
    with pytest.raises(RegistryError, match="valid parameters: f, convention"):
        R.get_aggregator("krum", g=1)
    agg = R.get_aggregator("median")
    with pytest.raises(ValueError, match="2-D"):
        agg(torch.zeros(3))
    with pytest.raises(TypeError, match="float32 or float64"):
        agg(torch.zeros(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="weights must have shape"):
        agg(torch.zeros(3, 2), torch.ones(2))
    with pytest.raises(ValueError, match=">= 0"):
        agg(torch.zeros(3, 2), torch.tensor([1.0, -1.0, 1.0]))
    with pytest.raises(TypeError, match="f must be an int"):
        R.get_aggregator("trimmed_mean", f=1.5)


@pytest.mark.parametrize("name,params", [
    ("mean", {}), ("weighted_mean", {}), ("median", {}), ("trimmed_mean", {"f": 1}), ("krum", {"f": 1}),
    ("multi_krum", {"f": 1}), ("geometric_median", {}), ("centered_clipping", {"tau": 1.0}),
    ("meamed", {"f": 1}), ("sign_vote", {}),
])
def test_contract_every_aggregator(name, params):
    x = torch.randn(6, 9, generator=torch.Generator().manual_seed(0))
    x_before = x.clone()
    agg = R.get_aggregator(name, **params)
    out = agg(x, torch.arange(1.0, 7.0))
    assert out.shape == (9,) and out.dtype == torch.float32
    assert torch.equal(x, x_before)  # input untouched
    w = agg.last_weights
    assert w.shape == (6,) and bool((w >= 0).all()) and abs(float(w.sum()) - 1) < 1e-9
    assert agg.requires_individual_updates == (name not in ("mean", "weighted_mean"))
    assert (agg.state_dict() == {}) == (name != "centered_clipping")
    out64 = R.get_aggregator(name, **params)(x.double(), torch.arange(1.0, 7.0))
    assert out64.dtype == torch.float64 and torch.allclose(out64.float(), out, atol=1e-4)
