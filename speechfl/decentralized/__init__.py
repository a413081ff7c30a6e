"""Fully decentralized (serverless) training: speaker-nodes gossiping over a graph.

- :mod:`topologies` — ring, torus, exponential, Erdos-Renyi, complete, edge-list graphs (refused when unusable)
- :mod:`mixing` — Metropolis-Hastings weights, spectral gap, random pairings
- :mod:`neighbourhood` — gossip averaging, ClippedGossip, robust rules per neighbourhood
- :mod:`dissensus` — the dissensus attack and per-receiver Byzantine messages
- :mod:`muffliato` — local-noise gossip and its pairwise network DP
- :mod:`core` — one D-PSGD / CHOCO-SGD round for the nodes a process hosts
- :mod:`engine` — ``engine: gossip`` (in-process, resumable); :mod:`dist_engine` — ``engine: gossip-dist``

Nothing is imported here: the engine registry (:mod:`speechfl.federated.engines`) imports
the engine modules on first use.
"""
