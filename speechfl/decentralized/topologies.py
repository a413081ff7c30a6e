"""Communication graphs over speaker-nodes, chosen by name, refused when unusable.

A :class:`Graph` is an undirected simple graph on nodes ``0..n-1`` (node ``i`` is the
``i``-th client id in sorted order). Builders::

    ring            i ~ i+1 (mod n)
    torus           2-D torus rows x cols (rows * cols = n; rows defaults to the largest divisor <= sqrt n)
    exponential     i ~ i + 2^k (mod n) for 2^k < n, undirected (the "static exponential graph" of
                    Ying et al. 2021 / decentralizepy)
    erdos_renyi     each pair independently with probability p, seeded; redrawn (up to 100 tries) until
                    connected, else refused
    complete        every pair
    edge_list       a text file with one "i j" pair per line (0-based node indices, '#' comments)

A graph is refused (:class:`TopologyError`, naming the reason) when it is disconnected,
when a node has no neighbour (a self-loop-only node cannot gossip), when an edge names a node
outside ``0..n-1`` or a self-loop, or when it has more nodes than there are speaker-clients.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import FrozenSet, List, Optional, Tuple

from speechfl.registry import Registry, RegistryError

TOPOLOGIES = Registry("topology")


class TopologyError(ValueError):
    """A graph that cannot carry gossip (disconnected, isolated node, bad edge, too many nodes)."""


@dataclass(frozen=True)
class Graph:
    """An undirected simple graph: ``n`` nodes and a set of edges ``(i, j)`` with ``i < j``."""

    n: int
    edges: FrozenSet[Tuple[int, int]]
    name: str = "graph"

    def neighbours(self, i: int) -> List[int]:
        """Sorted neighbours of node ``i`` (never ``i`` itself)."""
        return sorted({b if a == i else a for a, b in self.edges if i in (a, b)})

    def degree(self, i: int) -> int:
        return len(self.neighbours(i))

    def adjacency(self) -> List[List[int]]:
        adj: List[List[int]] = [[] for _ in range(self.n)]
        for a, b in self.edges:
            adj[a].append(b)
            adj[b].append(a)
        return [sorted(x) for x in adj]

    def is_connected(self) -> bool:
        return len(self.component(0)) == self.n

    def component(self, start: int) -> set:
        adj, seen, stack = self.adjacency(), {start}, [start]
        while stack:
            for j in adj[stack.pop()]:
                if j not in seen:
                    seen.add(j)
                    stack.append(j)
        return seen

    def distances(self, source: int) -> List[int]:
        """Hop distance from ``source`` to every node (breadth-first search)."""
        adj, dist, frontier = self.adjacency(), [-1] * self.n, [source]
        dist[source] = 0
        while frontier:
            nxt = []
            for u in frontier:
                for v in adj[u]:
                    if dist[v] < 0:
                        dist[v] = dist[u] + 1
                        nxt.append(v)
            frontier = nxt
        return dist


def make_graph(n: int, pairs, name: str) -> Graph:
    """Normalise ``pairs`` to ``(min, max)`` edges; refuse self-loops and out-of-range nodes."""
    if not isinstance(n, int) or n < 2:
        raise TopologyError(f"topology {name!r}: gossip needs at least 2 nodes, got n={n!r}")
    edges = set()
    for a, b in pairs:
        a, b = int(a), int(b)
        if not (0 <= a < n and 0 <= b < n):
            raise TopologyError(f"topology {name!r}: edge ({a}, {b}) names a node outside 0..{n - 1}")
        if a == b:
            raise TopologyError(f"topology {name!r}: self-loop ({a}, {a}); a node's own weight comes from the "
                                "mixing matrix, not from an edge")
        edges.add((min(a, b), max(a, b)))
    return Graph(n=n, edges=frozenset(edges), name=name)


def check_graph(graph: Graph) -> Graph:
    """Refuse a graph that cannot average: an isolated node or more than one component."""
    isolated = [i for i in range(graph.n) if graph.degree(i) == 0]
    if isolated:
        raise TopologyError(f"topology {graph.name!r}: node(s) {isolated[:10]} have no neighbour (self-loop only); "
                            "they would never mix with the others")
    if not graph.is_connected():
        comp = sorted(graph.component(0))
        raise TopologyError(f"topology {graph.name!r} is disconnected: node 0 reaches only {len(comp)} of "
                            f"{graph.n} nodes ({comp[:10]}...); the nodes cannot reach consensus")
    return graph


@TOPOLOGIES.register("ring")
def ring(n: int) -> Graph:
    return make_graph(n, [(i, (i + 1) % n) for i in range(n)], "ring")


@TOPOLOGIES.register("torus")
def torus(n: int, rows: Optional[int] = None) -> Graph:
    if rows is None:
        rows = max(d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0)
    if rows < 1 or n % rows:
        raise TopologyError(f"topology 'torus': rows={rows} does not divide n={n}")
    cols = n // rows
    pairs = []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if cols > 1:
                pairs.append((i, r * cols + (c + 1) % cols))
            if rows > 1:
                pairs.append((i, ((r + 1) % rows) * cols + c))
    return make_graph(n, [p for p in pairs if p[0] != p[1]], "torus")


@TOPOLOGIES.register("exponential")
def exponential(n: int) -> Graph:
    pairs, k = [], 1
    while k < n:
        pairs += [(i, (i + k) % n) for i in range(n)]
        k *= 2
    return make_graph(n, [p for p in pairs if p[0] != p[1]], "exponential")


@TOPOLOGIES.register("erdos_renyi")
def erdos_renyi(n: int, p: float = 0.3, seed: int = 0) -> Graph:
    if not 0.0 < float(p) <= 1.0:
        raise TopologyError(f"topology 'erdos_renyi': p must be in (0, 1], got {p!r}")
    for attempt in range(100):
        rng = random.Random(f"erdos_renyi|{seed}|{n}|{p}|{attempt}")
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if rng.random() < p]
        g = make_graph(n, pairs, "erdos_renyi")
        if g.is_connected():
            return g
    raise TopologyError(f"topology 'erdos_renyi': no connected graph in 100 draws with n={n}, p={p}; raise p "
                        f"(connectivity needs p > ln(n)/n = {math.log(n) / n:.3f})")


@TOPOLOGIES.register("complete")
def complete(n: int) -> Graph:
    return make_graph(n, [(i, j) for i in range(n) for j in range(i + 1, n)], "complete")


@TOPOLOGIES.register("edge_list")
def edge_list(n: int, path: str) -> Graph:
    p = Path(path)
    if not p.is_file():
        raise TopologyError(f"topology 'edge_list': file {path} does not exist")
    pairs = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.replace(",", " ").split()
        if len(parts) != 2 or not all(x.lstrip("-").isdigit() for x in parts):
            raise TopologyError(f"{path}:{lineno}: expected two node indices 'i j', got {line!r}")
        pairs.append((int(parts[0]), int(parts[1])))
    try:
        return make_graph(n, pairs, "edge_list")
    except TopologyError as exc:
        raise TopologyError(f"{path}: {exc}") from None


def build_topology(spec, n_nodes: int, n_clients: Optional[int] = None, seed: int = 0) -> Graph:
    """Build and check the graph named by ``spec`` (a name or ``{name: ..., **params}``).

    ``n_nodes`` defaults to every client; a spec ``n`` larger than the number of speaker-clients
    is refused (a node is a client: there is no data for the extra ones).
    """
    if spec is None:
        raise TopologyError("gossip needs a topology (ring, torus, exponential, erdos_renyi, complete, edge_list)")
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if "name" not in spec:
        raise RegistryError(f"topology spec {spec!r} has no 'name' key")
    name = spec.pop("name")
    n = int(spec.pop("n", n_nodes))
    if n_clients is not None and n > n_clients:
        raise TopologyError(f"topology {name!r} has {n} nodes but the partition has only {n_clients} speaker-clients; "
                            "every node must hold a client's data")
    if n_clients is not None and n < n_clients:
        raise TopologyError(f"topology {name!r} has {n} nodes but the partition has {n_clients} clients; every client "
                            "is a node (group speakers with speakers_per_client to get fewer nodes)")
    if name == "erdos_renyi":
        spec.setdefault("seed", seed)
    return check_graph(TOPOLOGIES.build(name, n=n, **spec))
