"""What a Flower node knows locally: its ``--node-config``, the clients it serves, its setup.

Node config keys (``flower-supernode --node-config 'k1="v1" k2=v2'``):

``partition-ids``
    The client ids (speakers, or speaker groups) this SuperNode serves, comma- or
    space-separated, e.g. ``partition-ids="1001,1002"``. Required in deployment.
``partition-id``, ``num-partitions``
    Set by Flower's simulation for virtual node ``i`` of ``N``: it serves clients
    ``i, i + N, ...`` of the partition (sorted client ids).
``data-folder``, ``save-folder``, ``feature-cache``, ``device``
    Node-local values of the hparams keys ``data_folder``, ``save_folder``,
    ``feature_cache`` and ``device`` (where this machine keeps the corpus, ...).
``threads``
    torch threads of this node's ClientApp.
``state-dir``
    Folder where the node keeps its clients' persistent state across restarts
    (otherwise it lives in the node's run ``Context``).
"""

from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional

from speechfl.federated.flower.experiment import ExperimentSpec

LOCAL_HPARAMS = {"data-folder": "data_folder", "save-folder": "save_folder", "feature-cache": "feature_cache",
                 "device": "device"}
NODE_KEYS = {"partition-ids", "partition-id", "num-partitions", "threads", "state-dir", *LOCAL_HPARAMS}

_SETUP_CACHE: Dict[str, object] = {}


def check_node_config(node_config: Mapping) -> None:
    unknown = sorted(set(node_config) - NODE_KEYS)
    if unknown:
        raise ValueError(f"unknown --node-config key(s) {unknown}; valid keys: {sorted(NODE_KEYS)}")


def node_overrides(node_config: Mapping) -> List[str]:
    """``--key=value`` overrides for the node-local hparams named in ``node_config``."""
    check_node_config(node_config)
    return [f"--{LOCAL_HPARAMS[k]}={node_config[k]}" for k in sorted(LOCAL_HPARAMS) if k in node_config]


def served_clients(node_config: Mapping, client_ids: List[str]) -> List[str]:
    """The clients this node trains (a subset of the partition's ``client_ids``)."""
    check_node_config(node_config)
    if "partition-ids" in node_config:
        ids = [c for c in re.split(r"[,\s]+", str(node_config["partition-ids"]).strip()) if c]
        unknown = sorted(set(ids) - set(client_ids))
        if unknown:
            raise ValueError(f"node-config partition-ids names clients {unknown} that are not in the partition; "
                             f"valid client ids: {', '.join(client_ids)}")
        if not ids:
            raise ValueError("node-config partition-ids is empty")
        return sorted(set(ids))
    if "partition-id" in node_config:
        i, n = int(node_config["partition-id"]), int(node_config.get("num-partitions", 0))
        if not 0 <= i < n:
            raise ValueError(f"node-config partition-id={i} must lie in [0, num-partitions={n})")
        ordered = sorted(client_ids)
        return [ordered[j] for j in range(i, len(ordered), n)]
    raise ValueError("this SuperNode serves no clients: start it with "
                     "--node-config 'partition-ids=\"<client id>,<client id>\"' (see docs/flower.md)")


def node_setup(spec: ExperimentSpec, node_config: Mapping):
    """The node's :class:`FederatedSetup` for ``spec``, built once per process (Ray actors reuse it)."""
    from speechfl.federated.setup import build_setup

    extra = node_overrides(node_config)
    key = f"{spec.key}|{extra}"
    if key not in _SETUP_CACHE:
        _SETUP_CACHE.clear()  # one experiment per process at a time: free the previous model and datasets
        _SETUP_CACHE[key] = build_setup(spec.load_hparams(extra), progress=False)
    return _SETUP_CACHE[key]


def apply_threads(node_config: Mapping, default: Optional[int]) -> None:
    """Pin torch's intra-op threads (node-config ``threads``, else ``default``; ``None`` leaves torch's)."""
    import torch

    threads = int(node_config["threads"]) if "threads" in node_config else default
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
