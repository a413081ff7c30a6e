"""The Flower ``ServerApp``: the in-process round loop with a :class:`FlowerExecutor`.

``main(grid, context)`` runs :class:`speechfl.federated.simulation.Simulation` (server
pipeline, checkpoint/resume, per-round records) with the clients executed on Flower
nodes, then :func:`speechfl.experiment.run.finalize` (test, ``model.pt``,
``results.json``), so a Flower run writes what an in-process run writes.

Deployment run config (``[tool.flwr.app.config]`` of the Flower App, or
``flwr run --run-config``):

``hparams-file``
    Path of the hparams file on the SuperLink machine (absolute, or relative to
    the directory ``flower-superlink`` was started in).
``overrides``
    Command-line overrides, ``"--rounds=2 --clients_per_round=4"`` (shell quoting).
``federated-eval``
    After training, ask every client's node for the final model's loss on the
    client's own data; written to ``<output_folder>/federated_eval.json``.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from speechfl.federated.flower.config import FlowerConfig
from speechfl.federated.flower.executor import FlowerExecutor
from speechfl.federated.flower.experiment import ExperimentSpec

RUN_CONFIG_KEYS = ("hparams-file", "overrides", "federated-eval")
DEPLOYMENT_ENGINE = "flower"  # the ``engine`` recorded in results.json of a deployment run


def run_rounds(grid: Grid, setup, spec: ExperimentSpec, out: Path, progress: bool, config: FlowerConfig):
    """All rounds of ``setup`` with clients on ``grid``'s nodes; returns the finished Simulation."""
    from speechfl.federated.simulation import Simulation

    executor = FlowerExecutor(grid, setup, spec, reply_timeout=config.reply_timeout,
                              connect_timeout=config.connect_timeout)
    sim = Simulation(setup, out, progress=progress, executor=executor)
    sim.run()
    return sim


def make_server_app(setup, spec: ExperimentSpec, out: Path, progress: bool, config: FlowerConfig,
                    result: dict) -> ServerApp:
    """A ServerApp for ``run_simulation`` that trains ``setup`` and leaves history/global_flat in ``result``."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        sim = run_rounds(grid, setup, spec, out, progress, config)
        result["history"] = sim.history
        result["global_flat"] = sim.server.global_flat.clone()

    return app


def run_deployment(grid: Grid, run_config) -> dict:
    """Build the experiment named by ``run_config``, train it on the connected SuperNodes, write results.

    As :func:`~speechfl.experiment.run.run_federated`: the hparams text is captured, the whole
    configuration validated (components and mechanisms included) and the output folder checked
    writable before the corpus is prepared or any SuperNode trains.
    """
    from speechfl.config import ExperimentConfig, build_components, check_output_writable
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.results import capture_config
    from speechfl.experiment.run import finalize
    from speechfl.federated.setup import RunOrigin, build_setup
    from speechfl.io import atomic_write_json

    unknown = sorted(set(run_config) - set(RUN_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown run config key(s) {unknown}; valid keys: {list(RUN_CONFIG_KEYS)}")
    if not run_config.get("hparams-file"):
        raise ValueError("run config 'hparams-file' is required (flwr run --run-config 'hparams-file=\"...\"')")
    start = time.time()
    hparams_file = str(Path(str(run_config["hparams-file"])).resolve())
    overrides = shlex.split(str(run_config.get("overrides", "")))
    captured = capture_config(hparams_file, overrides)  # the file as it is run
    hparams = load_hparams(hparams_file, overrides)
    if hparams.get("engine", "inprocess") == "centralized":
        raise ValueError("engine=centralized pools all data in one process; it cannot run on SuperNodes")
    config = ExperimentConfig.from_hparams(hparams)
    components = build_components(config)
    flower_config = FlowerConfig.from_hparams(hparams)
    out = check_output_writable(config.output_folder)
    setup = build_setup(hparams, progress=False, config=config, components=components)
    setup.origin = RunOrigin(hparams_file, tuple(overrides), config=captured)
    setup.hparams["engine"] = DEPLOYMENT_ENGINE  # build_setup validated the file's engine; record the real one
    sim = run_rounds(grid, setup, ExperimentSpec.from_file(hparams_file, overrides), out, False, flower_config)
    results = finalize(setup, sim.history, sim.server.global_flat, hparams_file, overrides, out,
                       time.time() - start)
    if run_config.get("federated-eval"):
        atomic_write_json(out / "federated_eval.json", sim.executor.evaluate(sim.server.global_flat))
    return results


app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    run_deployment(grid, context.run_config)
