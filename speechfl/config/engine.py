"""The engines an experiment can run on, as an enum (the dispatch table is :mod:`speechfl.federated.engines`)."""

from __future__ import annotations

from enum import Enum


class Engine(str, Enum):
    """Every engine name ``hparams['engine']`` accepts.

    ``inprocess`` and ``centralized`` are the embedded engines (the latter pools every
    speaker into one client: the centralized reference with the same client loop);
    ``flower-sim`` runs the same rounds on Flower's simulation runtime; ``gossip`` and
    ``gossip-dist`` are the decentralized engines (in-process and torch.distributed).
    A real Flower deployment is started with ``flwr run`` (docs/flower.md), never with
    ``engine: flower`` in an hparams file.
    """

    INPROCESS = "inprocess"
    CENTRALIZED = "centralized"
    FLOWER_SIM = "flower-sim"
    GOSSIP = "gossip"
    GOSSIP_DIST = "gossip-dist"

    @property
    def pooled(self) -> bool:
        """All training data in one client (no partition by speaker, no malicious clients)."""
        return self is Engine.CENTRALIZED

    @property
    def kind(self) -> str:
        """results.json ``kind``: ``centralized``, ``decentralized`` (gossip) or ``federated``."""
        if self.pooled:
            return "centralized"
        return "decentralized" if self in (Engine.GOSSIP, Engine.GOSSIP_DIST) else "federated"

    @classmethod
    def names(cls) -> list[str]:
        return [e.value for e in cls]
