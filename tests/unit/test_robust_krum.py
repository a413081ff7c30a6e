"""Krum and Multi-Krum pinned to their stated formula (Blanchard et al. 2017) and to ByzFL's variant."""

import itertools

import pytest
import torch

import speechfl.robustness as R

POINTS = torch.tensor([[0.0], [1.0], [3.0], [7.0], [100.0]])  # n = 5, f = 1


def test_krum_scores_by_hand_blanchard():
    # squared distances; n - f - 2 = 2 nearest neighbours, summed:
    # x=0: 1, 9 -> 10; x=1: 1, 4 -> 5; x=3: 4, 9 -> 13; x=7: 16, 36 -> 52; x=100: 8649, 9409 -> 18058
    krum = R.get_aggregator("krum", f=1)
    assert torch.equal(krum(POINTS), torch.tensor([1.0]))
    assert torch.allclose(krum.last_scores, torch.tensor([10.0, 5, 13, 52, 18058], dtype=torch.float64))
    assert torch.equal(krum.last_weights, torch.tensor([0, 1.0, 0, 0, 0], dtype=torch.float64))


def test_krum_byzfl_convention_differs_by_hand():
    # n - f - 1 = 3 neighbours, mean: x=0: 59/3; x=1: 41/3; x=3: 29/3; x=7: 101/3 -> picks x=3
    krum = R.get_aggregator("krum", f=1, convention="byzfl")
    assert torch.equal(krum(POINTS), torch.tensor([3.0]))
    assert torch.allclose(krum.last_scores[:4], torch.tensor([59.0, 41, 29, 101], dtype=torch.float64) / 3)


def test_multi_krum_by_hand():
    mk = R.get_aggregator("multi_krum", f=1, m=3)  # lowest scores: x=1 (5), x=0 (10), x=3 (13)
    assert torch.allclose(mk(POINTS), torch.tensor([4.0 / 3]))
    assert torch.allclose(mk.last_weights, torch.tensor([1, 1, 1, 0, 0], dtype=torch.float64) / 3)
    default = R.get_aggregator("multi_krum", f=1)  # m = n - f = 4: drops x=100
    assert torch.allclose(default(POINTS), torch.tensor([11.0 / 4]))


def test_krum_needs_n_above_2f_plus_2():
    with pytest.raises(ValueError, match="at least 5"):
        R.get_aggregator("krum", f=1)(POINTS[:4])
    R.get_aggregator("krum", f=1, convention="byzfl")(POINTS[:4])  # ByzFL's bound is n > 2f
    with pytest.raises(ValueError, match=r"multi_krum: needs at least 9 update\(s\), got n = 5"):  # m is in min_rows
        R.get_aggregator("multi_krum", f=1, m=9)(POINTS)
    with pytest.raises(ValueError, match="convention must be one of"):
        R.get_aggregator("krum", f=1, convention="flower")


def slow_krum_scores(x, f):
    n = len(x)
    scores = []
    for i in range(n):
        dists = sorted(float(((x[i].double() - x[j].double()) ** 2).sum()) for j in range(n) if j != i)
        scores.append(sum(dists[: n - f - 2]))
    return torch.tensor(scores, dtype=torch.float64)


@pytest.mark.parametrize("n,f", [(7, 2), (9, 3), (5, 0)])
def test_krum_matches_slow_oracle(n, f):
    x = torch.randn(n, 40, generator=torch.Generator().manual_seed(n + f))
    x[:f] += 5.0
    mk = R.get_aggregator("multi_krum", f=f, m=3)
    out = mk(x)
    scores = slow_krum_scores(x, f)
    assert torch.allclose(mk.last_scores, scores, rtol=1e-5)
    best = sorted(range(n), key=lambda i: (float(scores[i]), i))[:3]
    assert torch.allclose(out, x[best].mean(0), atol=1e-6)
    krum = R.get_aggregator("krum", f=f)
    assert torch.equal(krum(x), x[best[0]])


def test_pairwise_distances_match_direct():
    from speechfl.robustness.tensor_ops import pairwise_sq_dists

    x = torch.randn(6, 30, generator=torch.Generator().manual_seed(2))
    direct = torch.tensor([[float(((a.double() - b.double()) ** 2).sum()) for b in x] for a in x])
    got = pairwise_sq_dists(x)
    assert torch.allclose(got, direct.double(), rtol=1e-5, atol=1e-5)
    assert all(got[i, i] == 0 for i in range(6))
    assert all(got[i, j] == got[j, i] for i, j in itertools.combinations(range(6), 2))
