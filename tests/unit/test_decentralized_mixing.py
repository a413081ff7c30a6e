"""Mixing matrices: Metropolis-Hastings weights, the spectral gap, random pairings."""

import math

import pytest
import torch

from speechfl.decentralized.mixing import (check_doubly_stochastic, metropolis_hastings, random_pairing,
                                           spectral_gap)
from speechfl.decentralized.topologies import build_topology, make_graph


@pytest.mark.parametrize("spec", ["ring", "torus", "exponential", "complete", {"name": "erdos_renyi", "p": 0.3}])
def test_metropolis_hastings_is_symmetric_doubly_stochastic(spec):
    g = build_topology(spec, 12, seed=1)
    w = metropolis_hastings(g)
    check_doubly_stochastic(w)
    assert torch.equal(w, w.T)
    for i in range(12):  # support = the closed neighbourhood, diagonal positive
        assert {j for j in range(12) if w[i, j] > 0} == {i, *g.neighbours(i)}
    assert 0 < spectral_gap(w) <= 1


def test_metropolis_hastings_hand_values_on_a_path():
    # path 0-1-2: deg 1, 2, 1 -> W_01 = W_12 = 1/(1+2) = 1/3, W_00 = 2/3, W_11 = 1/3
    w = metropolis_hastings(make_graph(3, [(0, 1), (1, 2)], "path"))
    expected = torch.tensor([[2 / 3, 1 / 3, 0], [1 / 3, 1 / 3, 1 / 3], [0, 1 / 3, 2 / 3]], dtype=torch.float64)
    assert torch.allclose(w, expected, atol=1e-15)


def test_ring_spectral_gap_matches_hand_computation():
    # ring of n nodes: W = 1/3 (I + shift + shift^T), a circulant with eigenvalues 1/3 + 2/3 cos(2 pi k / n);
    # for n = 8 the second largest in modulus is k = 1: 1/3 + 2/3 cos(pi/4), so the gap is 2/3 (1 - cos(pi/4)).
    w = metropolis_hastings(build_topology("ring", 8))
    assert spectral_gap(w) == pytest.approx(2 / 3 * (1 - math.cos(math.pi / 4)), abs=1e-12)
    # n = 4: eigenvalues 1, 1/3, 1/3, -1/3 -> gap 2/3
    assert spectral_gap(metropolis_hastings(build_topology("ring", 4))) == pytest.approx(2 / 3, abs=1e-12)
    # complete graph: W = J/n, gap 1
    assert spectral_gap(metropolis_hastings(build_topology("complete", 5))) == pytest.approx(1.0, abs=1e-12)


def test_random_pairing_is_a_seeded_matching():
    g = build_topology("exponential", 10)
    w1, w1b, w2 = random_pairing(g, 0, 1), random_pairing(g, 0, 1), random_pairing(g, 0, 2)
    assert torch.equal(w1, w1b) and not torch.equal(w1, w2)
    for w in (w1, w2):
        check_doubly_stochastic(w)
        for i in range(10):
            partners = [j for j in range(10) if j != i and w[i, j] > 0]
            assert len(partners) <= 1
            if partners:
                j = partners[0]
                assert j in g.neighbours(i) and w[i, i] == w[i, j] == 0.5
            else:
                assert w[i, i] == 1.0
        # maximal: no edge with two unmatched endpoints
        free = {i for i in range(10) if w[i, i] == 1.0}
        assert not any(a in free and b in free for a, b in g.edges)


def test_check_doubly_stochastic_refuses():
    with pytest.raises(ValueError, match="not doubly stochastic"):
        check_doubly_stochastic(torch.tensor([[0.5, 0.5], [0.2, 0.8]], dtype=torch.float64))
