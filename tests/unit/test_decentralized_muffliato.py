"""Muffliato: the local noise and the pairwise network DP accounting, by hand on a path."""

import pytest
import torch

from speechfl.decentralized.mixing import metropolis_hastings
from speechfl.decentralized.muffliato import LocalNoise, pairwise_rdp
from speechfl.decentralized.topologies import build_topology, make_graph


def test_pairwise_rdp_on_a_path_by_hand():
    # path 0-1-2, W = [[2/3, 1/3, 0], [1/3, 1/3, 1/3], [0, 1/3, 2/3]]; alpha = 2, sigma = 1 -> prefactor 1
    w = metropolis_hastings(make_graph(3, [(0, 1), (1, 2)], "path"))
    one = pairwise_rdp(w, 1.0, rounds=1, alpha=2.0)
    # one round: v sees the injections of its closed neighbourhood only
    assert one[0, 1] == pytest.approx(1.0) and one[0, 2] == pytest.approx(0.0) and one[1, 0] == pytest.approx(1.0)
    two = pairwise_rdp(w, 1.0, rounds=2, alpha=2.0)
    # two rounds, u = 0 -> v = 2: k = 0 terms are 0; the round-1 injection after one step reaches
    # w = 1 with (W)_{10}^2 / ||W_1||^2 = (1/9) / (3/9) = 1/3, and w = 2 with 0
    assert two[0, 2] == pytest.approx(1 / 3)
    # u = 0 -> v = 1: two direct observations (k = 0, rounds 1 and 2) + after one step:
    # w = 0: (4/9)/(5/9) = 4/5, w = 1: 1/3, w = 2: 0
    assert two[0, 1] == pytest.approx(2 + 4 / 5 + 1 / 3)
    assert torch.isinf(two.diagonal()).all()
    # the bound scales as alpha / sigma^2
    assert pairwise_rdp(w, 2.0, rounds=2, alpha=4.0)[0, 2] == pytest.approx(two[0, 2] * 2 / 4)


def test_pairwise_rdp_decays_with_distance_on_a_ring():
    g = build_topology("ring", 10)
    eps = pairwise_rdp(metropolis_hastings(g), 1.0, rounds=3)
    d = g.distances(0)
    by_hops = {h: max(float(eps[0, v]) for v in range(10) if d[v] == h) for h in range(1, 6)}
    assert by_hops[1] > by_hops[2] > by_hops[3] >= by_hops[4] >= by_hops[5]
    assert by_hops[4] == 0.0  # 3 rounds: the signal has travelled at most 2 hops past a neighbour


def test_local_noise_clips_and_is_seeded():
    noise = LocalNoise(clip=1.0, noise_multiplier=0.5)
    delta = torch.full((40000,), 1.0)  # norm 200 -> clipped to 1
    a = noise.apply(torch.zeros(40000), delta, seed=0, round_=1, node="spk1")
    b = noise.apply(torch.zeros(40000), delta, seed=0, round_=1, node="spk1")
    c = noise.apply(torch.zeros(40000), delta, seed=0, round_=2, node="spk1")
    assert torch.equal(a, b) and not torch.equal(a, c)
    resid = a - delta / 200.0
    assert float(resid.std()) == pytest.approx(0.5, rel=0.03)
    with pytest.raises(ValueError, match="clip > 0"):
        LocalNoise(clip=0.0, noise_multiplier=1.0)
