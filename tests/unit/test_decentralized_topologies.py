"""Topologies: the graphs each builder makes, and the graphs gossip refuses."""

import pytest

from speechfl.decentralized.topologies import TopologyError, build_topology, exponential, ring, torus
from speechfl.registry import RegistryError


def test_ring_torus_exponential_complete_edges():
    assert ring(5).edges == {(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)}
    t = torus(6)  # 2 x 3: rows wrap (distinct only when rows > 2), columns wrap
    assert t.edges == {(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (0, 3), (1, 4), (2, 5)}
    assert [t.degree(i) for i in range(6)] == [3] * 6
    # exponential graph on 8 nodes: offsets 1, 2, 4 -> degree 5 (offset 4 is its own inverse)
    e = exponential(8)
    assert e.neighbours(0) == [1, 2, 4, 6, 7]
    assert build_topology("complete", 4).edges == {(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)}


def test_erdos_renyi_is_seeded_and_connected():
    a = build_topology({"name": "erdos_renyi", "p": 0.4}, 12, seed=5)
    b = build_topology({"name": "erdos_renyi", "p": 0.4}, 12, seed=5)
    c = build_topology({"name": "erdos_renyi", "p": 0.4}, 12, seed=6)
    assert a.edges == b.edges and a.edges != c.edges and a.is_connected()
    with pytest.raises(TopologyError, match="no connected graph"):
        build_topology({"name": "erdos_renyi", "p": 0.01}, 30, seed=0)


def test_edge_list_file(tmp_path):
    f = tmp_path / "g.txt"
    f.write_text("# a path\n0 1\n1 2\n2,3\n")
    g = build_topology({"name": "edge_list", "path": str(f)}, 4)
    assert g.edges == {(0, 1), (1, 2), (2, 3)} and g.distances(0) == [0, 1, 2, 3]


def test_disconnected_graph_is_refused(tmp_path):
    f = tmp_path / "two.txt"
    f.write_text("0 1\n2 3\n")
    with pytest.raises(TopologyError, match="disconnected: node 0 reaches only 2 of 4"):
        build_topology({"name": "edge_list", "path": str(f)}, 4)


def test_self_loop_only_node_is_refused(tmp_path):
    f = tmp_path / "loop.txt"
    f.write_text("0 1\n1 2\n")  # node 3 has no edge: it could only mix with itself
    with pytest.raises(TopologyError, match=r"node\(s\) \[3\] have no neighbour"):
        build_topology({"name": "edge_list", "path": str(f)}, 4)
    f.write_text("0 1\n1 2\n2 3\n3 3\n")
    with pytest.raises(TopologyError, match="self-loop"):
        build_topology({"name": "edge_list", "path": str(f)}, 4)


def test_more_nodes_than_speakers_is_refused():
    with pytest.raises(TopologyError, match="has 10 nodes but the partition has only 4 speaker-clients"):
        build_topology({"name": "ring", "n": 10}, 4, n_clients=4)
    with pytest.raises(TopologyError, match="every client is a node"):
        build_topology({"name": "ring", "n": 3}, 4, n_clients=4)


def test_bad_edge_lines_and_unknown_names(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("0 1\n0 1 2\n")
    with pytest.raises(TopologyError, match=r"bad.txt:2: expected two node indices"):
        build_topology({"name": "edge_list", "path": str(f)}, 3)
    f.write_text("0 5\n")
    with pytest.raises(TopologyError, match="outside 0..2"):
        build_topology({"name": "edge_list", "path": str(f)}, 3)
    with pytest.raises(RegistryError, match="valid topologys: complete, edge_list, erdos_renyi, exponential, ring"):
        build_topology("star", 4)
    with pytest.raises(RegistryError, match="unknown parameter"):
        build_topology({"name": "ring", "p": 0.1}, 4)
