"""Flower settings of one experiment: the optional ``flower:`` block of the hparams file.

Everything else (model, data, clients, server pipeline) comes from the same hparams
as the in-process engine; this block only says how Flower places the clients.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from typing import Optional

from speechfl.registry import require_keys


@dataclass(frozen=True)
class FlowerConfig:
    """How the Flower engines run the clients.

    Attributes
    ----------
    client_cpus : float
        CPUs Ray reserves for one ClientApp (simulation); each ClientApp runs torch
        with ``max(1, floor(client_cpus))`` threads, so clients never oversubscribe cores.
    client_gpus : float or None
        GPUs reserved for one ClientApp (simulation); ``None`` means 1.0 when
        ``device`` is CUDA (one client per GPU at a time) and 0 otherwise. A fraction
        (e.g. 0.25) lets several small clients share a GPU.
    num_supernodes : int or None
        Virtual SuperNodes in simulation; ``None`` gives one per client. With fewer,
        node ``i`` serves clients ``i, i + N, i + 2N, ...`` of the partition.
    ray_address : str or None
        Join an existing Ray cluster (``"auto"``, ``"ray://head:10001"``) instead of
        starting a local Ray instance.
    ray_cpus : int or None
        CPUs of the local Ray instance; ``None`` means the CPUs this process may use.
    reply_timeout : float or None
        Seconds the server waits for one round's replies (``None``: no limit).
    connect_timeout : float
        Seconds the server waits, at start, for SuperNodes that serve every client.
    """

    client_cpus: float = 1.0
    client_gpus: Optional[float] = None
    num_supernodes: Optional[int] = None
    ray_address: Optional[str] = None
    ray_cpus: Optional[int] = None
    reply_timeout: Optional[float] = None
    connect_timeout: float = 300.0

    def __post_init__(self):
        if not self.client_cpus > 0:
            raise ValueError(f"flower.client_cpus must be > 0, got {self.client_cpus}")
        if self.client_gpus is not None and self.client_gpus < 0:
            raise ValueError(f"flower.client_gpus must be >= 0, got {self.client_gpus}")
        if self.num_supernodes is not None and self.num_supernodes < 1:
            raise ValueError(f"flower.num_supernodes must be >= 1, got {self.num_supernodes}")
        if self.ray_cpus is not None and self.ray_cpus < 1:
            raise ValueError(f"flower.ray_cpus must be >= 1, got {self.ray_cpus}")
        if self.ray_cpus is not None and self.ray_address is not None:
            raise ValueError("flower.ray_cpus sizes a local Ray instance; it cannot be combined with ray_address")
        for name in ("reply_timeout", "connect_timeout"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"flower.{name} must be > 0 seconds, got {value}")

    @classmethod
    def from_hparams(cls, hparams: dict) -> "FlowerConfig":
        spec = dict(hparams.get("flower") or {})
        require_keys(spec, {f.name for f in fields(cls)}, "flower")
        return cls(**spec)

    @property
    def client_threads(self) -> int:
        return max(1, math.floor(self.client_cpus))

    def gpus_per_client(self, device: str) -> float:
        if self.client_gpus is not None:
            return float(self.client_gpus)
        return 1.0 if str(device).startswith("cuda") else 0.0

    def backend_config(self, device: str) -> dict:
        """``backend_config`` for ``flwr.simulation.run_simulation`` (Ray backend)."""
        init_args: dict = {}
        if self.ray_address is not None:
            init_args["address"] = self.ray_address
        else:
            init_args["num_cpus"] = self.ray_cpus or usable_cpus()
            if str(device).startswith("cuda"):
                import torch

                init_args["num_gpus"] = torch.cuda.device_count()
        return {"client_resources": {"num_cpus": self.client_cpus, "num_gpus": self.gpus_per_client(device)},
                "init_args": init_args}


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, not the machine's core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
