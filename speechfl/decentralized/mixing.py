"""Mixing matrices: Metropolis-Hastings weights, spectral gap, time-varying random pairings.

Metropolis-Hastings weights (Xiao & Boyd 2004; the rule decentralizepy uses)::

    W_ij = 1 / (1 + max(deg_i, deg_j))     for j ~ i
    W_ii = 1 - sum_{j ~ i} W_ij

``W`` is symmetric and every row sums to 1, hence doubly stochastic; its entries are
non-negative and ``W_ii >= 1 / (1 + deg_i) > 0``. The spectral gap
``delta = 1 - max(|lambda_2|, |lambda_n|)`` (eigenvalues sorted descending, ``lambda_1 = 1``)
sets the consensus rate: ``||W^t x - xbar|| <= (1 - delta)^t ||x - xbar||``.

Random pairings (gossip learning, Ormandi et al. 2013; the "randomized gossip" of Boyd et al. 2006)
pick, every round, a random maximal matching of the graph's edges from a generator seeded by
``(seed, round)``; matched pairs average (``W_ij = W_ii = W_jj = 1/2``), unmatched nodes keep their
model. Each round's matrix is doubly stochastic.
"""

from __future__ import annotations

import random

import torch

from speechfl.decentralized.topologies import Graph


def metropolis_hastings(graph: Graph) -> torch.Tensor:
    """The ``[n, n]`` float64 Metropolis-Hastings mixing matrix of ``graph``."""
    n = graph.n
    deg = [graph.degree(i) for i in range(n)]
    w = torch.zeros(n, n, dtype=torch.float64)
    for a, b in sorted(graph.edges):
        w[a, b] = w[b, a] = 1.0 / (1 + max(deg[a], deg[b]))
    for i in range(n):
        w[i, i] = 1.0 - w[i].sum()
    return w


def spectral_gap(w: torch.Tensor) -> float:
    """``1 - max(|lambda_2|, |lambda_n|)`` of a symmetric doubly stochastic matrix."""
    if w.dim() != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"mixing matrix must be square, got shape {tuple(w.shape)}")
    if not torch.allclose(w, w.T, atol=1e-12):
        raise ValueError("spectral_gap needs a symmetric mixing matrix")
    eig = torch.linalg.eigvalsh(w.to(torch.float64)).abs().sort(descending=True).values
    return float(1.0 - eig[1]) if w.shape[0] > 1 else 1.0


def check_doubly_stochastic(w: torch.Tensor, atol: float = 1e-10) -> None:
    """Raise unless ``w`` is non-negative with every row and column summing to 1."""
    if bool((w < -atol).any()):
        raise ValueError("mixing matrix has negative entries")
    ones = torch.ones(w.shape[0], dtype=w.dtype)
    if not torch.allclose(w.sum(1), ones, atol=atol) or not torch.allclose(w.sum(0), ones, atol=atol):
        raise ValueError("mixing matrix is not doubly stochastic")


def random_pairing(graph: Graph, seed: int, round_: int) -> torch.Tensor:
    """A random maximal matching of ``graph`` for this round, as a doubly stochastic ``[n, n]`` matrix."""
    rng = random.Random(f"{seed}|pairing|{round_}")
    edges = sorted(graph.edges)
    rng.shuffle(edges)
    used, w = set(), torch.eye(graph.n, dtype=torch.float64)
    for a, b in edges:
        if a in used or b in used:
            continue
        used.update((a, b))
        w[a, a] = w[b, b] = w[a, b] = w[b, a] = 0.5
    return w


def expected_pairing_matrix(graph: Graph, seed: int, rounds: int) -> torch.Tensor:
    """Empirical mean of ``rounds`` random pairings (its spectral gap is what a run reports)."""
    return sum(random_pairing(graph, seed, r) for r in range(1, rounds + 1)) / rounds
