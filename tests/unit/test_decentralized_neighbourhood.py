"""Neighbour mixing rules and Byzantine gossip messages, against hand-computed cases."""

import pytest
import torch

from speechfl.decentralized.dissensus import dissensus_message, forge_for_receiver
from speechfl.decentralized.mixing import metropolis_hastings
from speechfl.decentralized.neighbourhood import clipped_gossip, clipping_radius, gossip_average, robust_neighbourhood
from speechfl.decentralized.topologies import build_topology
from speechfl.robustness import build_robust_pipeline, get_attack

T = lambda *v: torch.tensor(v, dtype=torch.float32)  # noqa: E731


def test_gossip_average_and_dropped_neighbour():
    row = torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)
    out = gossip_average(0, T(4.0, 0.0), {1: T(0.0, 4.0), 2: T(8.0, 8.0)}, row)
    assert torch.allclose(out, T(4.0, 3.0))
    # a rejected message: its weight returns to the node itself
    out = gossip_average(0, T(4.0, 0.0), {1: T(0.0, 4.0)}, row)
    assert torch.allclose(out, T(3.0, 1.0))


def test_clipped_gossip_three_nodes_by_hand():
    # complete graph on 3 nodes: Metropolis-Hastings gives W = 1/3 everywhere
    w = metropolis_hastings(build_topology("complete", 3))
    own, received = T(0.0, 0.0), {1: T(3.0, 4.0), 2: T(0.0, 1.0)}
    # He et al.'s radius: the second-largest distance, here min(5, 1) = 1
    assert clipping_radius(own, received) == pytest.approx(1.0)
    # node 1 is clipped to length 1: (0.6, 0.8); node 2 is inside the ball
    # x_0' = x_0 + 1/3 (0.6, 0.8) + 1/3 (0, 1) = (0.2, 0.6)
    assert torch.allclose(clipped_gossip(0, own, received, w[0]), T(0.2, 0.6), atol=1e-6)
    # a fixed radius 2: node 1 -> (1.2, 1.6): x_0' = (0.4, 2.6 / 3)
    assert torch.allclose(clipped_gossip(0, own, received, w[0], tau=2.0), T(0.4, 2.6 / 3), atol=1e-6)
    # a huge radius is plain gossip
    assert torch.allclose(clipped_gossip(0, own, received, w[0], tau=1e9),
                          gossip_average(0, own, received, w[0]), atol=1e-6)


def test_clipped_gossip_bounds_a_byzantine_neighbour():
    w = metropolis_hastings(build_topology("complete", 3))
    own, received = T(0.0, 0.0), {1: T(1.0, 0.0), 2: T(1e6, -1e6)}
    plain = gossip_average(0, own, received, w[0])
    clipped = clipped_gossip(0, own, received, w[0])
    assert float(plain.norm()) > 1e5
    assert float(clipped.norm()) <= 2 / 3 + 1e-6  # each clipped pull has length <= 1, weight 1/3


def test_robust_rule_over_the_closed_neighbourhood():
    med = build_robust_pipeline("median")
    out = robust_neighbourhood(0, T(0.0), {1: T(1.0), 2: T(100.0)}, med)
    assert torch.equal(out, T(1.0))


def test_dissensus_message_cancels_the_honest_pull():
    # receiver (1, 1), honest neighbours (2, 1), (1, 3) with weight 1/4 each, one Byzantine with weight 1/4:
    # pull = 1/4 (1, 0) + 1/4 (0, 2) = (0.25, 0.5); m_b = x - pull / (1/4) = (0, -1)
    own = T(1.0, 1.0)
    honest = torch.stack([T(2.0, 1.0), T(1.0, 3.0)])
    hw = torch.tensor([0.25, 0.25], dtype=torch.float64)
    msg = dissensus_message(own, honest, hw, 0.25, eps=1.0)
    assert torch.allclose(msg, T(0.0, -1.0))
    mixed = 0.25 * own + 0.25 * honest[0] + 0.25 * honest[1] + 0.25 * msg
    assert torch.allclose(mixed, own)  # eps = 1: the receiver does not move towards its neighbours


def test_dissensus_star_form_and_forging_with_update_attacks():
    attack = get_attack("dissensus", eps=1.0)
    y = attack(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.zeros(2, 2), torch.Generator().manual_seed(0))
    assert torch.allclose(y, torch.tensor([[-2.0, -3.0], [-2.0, -3.0]]))
    # sign flip in gossip flips the Byzantine model's difference to the receiver: 1 - (3 - 1) = -1
    gen = torch.Generator().manual_seed(0)
    msgs = forge_for_receiver(get_attack("sign_flip"), T(1.0, 0.0), [T(2.0, 0.0)],
                              torch.tensor([0.5], dtype=torch.float64), [T(3.0, 0.0)],
                              torch.tensor([0.25], dtype=torch.float64), gen)
    assert torch.allclose(msgs, torch.tensor([[-1.0, 0.0]]))


def test_clipping_the_b_farthest_neighbours_by_hand():
    own = T(0.0, 0.0)
    received = {1: T(3.0, 4.0), 2: T(0.0, 2.0), 3: T(1.0, 0.0), 4: T(6.0, 8.0)}  # distances 5, 2, 1, 10
    assert clipping_radius(own, received) == pytest.approx(5.0)  # farthest=1: the second-largest
    assert clipping_radius(own, received, farthest=2) == pytest.approx(2.0)  # 10 and 5 clipped to 2
    assert clipping_radius(own, received, farthest=9) == pytest.approx(1.0)  # all clipped to the nearest
    row = torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2])
    # radius 2: (3, 4) -> (1.2, 1.6), (6, 8) -> (1.2, 1.6); (0, 2) and (1, 0) kept
    expected = 0.2 * (T(1.2, 1.6) + T(0.0, 2.0) + T(1.0, 0.0) + T(1.2, 1.6))
    assert torch.allclose(clipped_gossip(0, own, received, row, farthest=2), expected, atol=1e-6)
    with pytest.raises(ValueError, match="farthest must be >= 1"):
        clipping_radius(own, received, farthest=0)
