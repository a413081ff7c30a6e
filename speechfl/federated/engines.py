"""The engine registry: ``hparams['engine']`` -> the function that trains every round.

An engine is a function

``engine(setup: FederatedSetup, out: Path, progress: bool) -> (history, global_flat)``

- ``setup``: the built experiment (:func:`speechfl.federated.setup.build_setup`);
  ``setup.origin`` holds the hparams file and overrides it was built from (engines
  that rebuild the experiment elsewhere, such as Flower's ClientApps, need them);
- ``out``: the run's output folder (checkpoint, ``recorded/``, engine state);
- ``progress``: show progress bars;
- returns ``history`` (one dict per round, the ``rounds`` records of results.json)
  and ``global_flat`` (the final global parameters, a ``[d]`` tensor in
  ``setup.layout`` order), optionally followed by a third element: a mapping of
  extra results.json sections the engine owns (``{"decentralized": {...}}`` for the
  gossip engines; only sections of :class:`speechfl.experiment.results.RunResults`).
  :func:`speechfl.experiment.run.finalize` tests the parameters and writes
  results.json, the same for every engine.

Registering a new engine is one decorator in its own module::

    @register_engine("gossip")
    def run_gossip(setup, out, progress): ...

plus its module in :data:`ENGINE_MODULES`, which this registry imports lazily the
first time the engine is asked for (so nothing imports ``flwr`` or
``torch.distributed`` code by hand, and ``experiment/run.py`` never imports an
engine's package). The names are those of :class:`speechfl.config.Engine`.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple, Union

import torch

from speechfl.config.engine import Engine
from speechfl.config.errors import ConfigError
from speechfl.registry import Registry

if TYPE_CHECKING:
    from speechfl.federated.setup import FederatedSetup

EngineResult = Union[Tuple[List[dict], torch.Tensor], Tuple[List[dict], torch.Tensor, Dict[str, Any]]]
ENGINE_SECTIONS = ("decentralized",)  # results.json sections an engine may add (third element of its result)
EngineFn = Callable[["FederatedSetup", Path, bool], EngineResult]

ENGINES = Registry("engine")

# Where each engine registers itself (imported on first use).
ENGINE_MODULES = {
    Engine.INPROCESS: "speechfl.federated.engines",
    Engine.CENTRALIZED: "speechfl.federated.engines",
    Engine.FLOWER_SIM: "speechfl.federated.flower.run",
    Engine.GOSSIP: "speechfl.decentralized.engine",
    Engine.GOSSIP_DIST: "speechfl.decentralized.dist_engine",
}


def register_engine(name: str) -> Callable[[EngineFn], EngineFn]:
    """Decorator: register ``fn`` as engine ``name`` (a :class:`~speechfl.config.Engine` value)."""
    try:
        Engine(name)
    except ValueError:
        raise ConfigError("engine", f"cannot register {name!r}: add it to speechfl.config.Engine "
                                    f"(known: {', '.join(Engine.names())})") from None
    return ENGINES.register(name)


def check_engine_available(engine: Engine) -> None:
    """Cheap check (no import) that the engine's module exists; raises :class:`ConfigError` otherwise."""
    module = ENGINE_MODULES[engine]
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        raise ConfigError("engine", f"engine {engine.value!r} is not available in this installation "
                                    f"(module {module} is missing)")


def get_engine(engine: Engine | str) -> EngineFn:
    """The engine function for ``engine``, importing its module on first use."""
    try:
        engine = Engine(engine)
    except ValueError:
        raise ConfigError("engine", f"unknown engine {engine!r}; valid engines: {', '.join(Engine.names())}") from None
    if engine.value not in ENGINES:
        check_engine_available(engine)
        importlib.import_module(ENGINE_MODULES[engine])
    if engine.value not in ENGINES:
        raise ConfigError("engine", f"module {ENGINE_MODULES[engine]} did not register engine {engine.value!r}")
    return ENGINES.factory(engine.value)


@register_engine(Engine.INPROCESS.value)
def run_inprocess(setup: "FederatedSetup", out: Path, progress: bool) -> EngineResult:
    """Every sampled client trained one after another in this process (the embedded default)."""
    from speechfl.federated.simulation import Simulation

    sim = Simulation(setup, out, progress=progress)
    history = sim.run()
    return history, sim.server.global_flat


@register_engine(Engine.CENTRALIZED.value)
def run_centralized(setup: "FederatedSetup", out: Path, progress: bool) -> EngineResult:
    """The centralized reference: one pooled client, the same client loop (``build_setup`` pools the data)."""
    return run_inprocess(setup, out, progress)
