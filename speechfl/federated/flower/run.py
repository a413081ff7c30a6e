"""``engine: flower-sim``: one experiment on Flower's Simulation Runtime (Ray backend).

Virtual SuperNode ``i`` serves clients ``i, i + N, ...`` (one node per client by
default). Ray reserves ``flower.client_cpus`` CPUs and ``flower.client_gpus`` GPUs per
ClientApp and each ClientApp runs torch with that many threads, so concurrent
clients never oversubscribe the machine. Clients' persistent state (error-feedback
memory, DP accountant) is kept in ``<output_folder>/flower_client_state`` so a
resumed run continues exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

import torch

from speechfl.federated.engines import register_engine
from speechfl.federated.flower import require_flwr

CLIENT_STATE_DIR = "flower_client_state"


def run_flower_simulation(setup, hparams_file: str, overrides: str | Sequence[str], out: str | Path,
                          progress: bool = True) -> Tuple[List[dict], torch.Tensor]:
    """Run every round of ``setup`` on Flower's simulation engine.

    Parameters
    ----------
    setup : FederatedSetup
        The server's setup, built from ``hparams_file`` and ``overrides``.
    hparams_file, overrides
        What the ClientApps rebuild the experiment from (the handshake checks they agree with ``setup``).
    out : path
        Output folder (checkpoint, recorded updates, client state).

    Returns
    -------
    history : list of dict
        Per-round records, as the in-process engine writes them.
    global_flat : Tensor [d]
        The final global model.
    """
    require_flwr()
    from flwr.simulation import run_simulation

    from speechfl.federated.flower.client_app import make_client_app
    from speechfl.federated.flower.client_step import check_attack_is_local
    from speechfl.federated.flower.config import FlowerConfig
    from speechfl.federated.flower.experiment import ExperimentSpec
    from speechfl.federated.flower.server_app import make_server_app

    config = FlowerConfig.from_hparams(setup.hparams)
    check_attack_is_local(setup, "engine=flower-sim")
    out = Path(out)
    spec = ExperimentSpec.from_file(hparams_file, overrides)
    n_clients = len(setup.partition.client_ids)
    result: dict = {}
    server_app = make_server_app(setup, spec, out, progress, config, result)
    client_app = make_client_app(threads=config.client_threads, state_dir=str(out.resolve() / CLIENT_STATE_DIR))
    run_simulation(server_app=server_app, client_app=client_app,
                   num_supernodes=min(config.num_supernodes or n_clients, n_clients),
                   backend_config=config.backend_config(setup.device))
    if "global_flat" not in result:
        raise RuntimeError("the Flower simulation ended before its ServerApp finished the rounds (see Flower's log)")
    return result["history"], result["global_flat"]


@register_engine("flower-sim")
def run_flower_sim_engine(setup, out: Path, progress: bool) -> Tuple[List[dict], torch.Tensor]:
    """The ``flower-sim`` engine (registry signature): ClientApps rebuild the run from ``setup.origin``."""
    if setup.origin is None:
        raise ValueError("engine=flower-sim needs the hparams file the setup was built from (setup.origin)")
    return run_flower_simulation(setup, setup.origin.hparams_file, setup.origin.overrides, out, progress=progress)
