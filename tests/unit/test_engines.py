"""The engine registry: names from the Engine enum, lazy loading, one-line registration, no import cycle."""

import subprocess
import sys

import pytest

from speechfl.config import ConfigError, Engine
from speechfl.federated import engines
from speechfl.federated.engines import ENGINE_MODULES, get_engine, register_engine


def test_every_engine_name_has_a_module_and_unknown_names_are_listed():
    assert set(ENGINE_MODULES) == set(Engine)
    assert get_engine("inprocess") is engines.run_inprocess
    assert get_engine(Engine.CENTRALIZED) is engines.run_centralized
    with pytest.raises(ConfigError, match="engine: unknown engine 'flwr'; valid engines: inprocess, centralized, "
                                          "flower-sim, gossip, gossip-dist"):
        get_engine("flwr")


def test_registering_is_one_decorator_and_names_outside_the_enum_are_refused(monkeypatch):
    monkeypatch.setattr(engines.ENGINES, "_entries", {k: v for k, v in engines.ENGINES._entries.items()
                                                      if k != "gossip-dist"})  # the real one may be loaded

    @register_engine("gossip-dist")
    def fake(setup, out, progress):
        return [], None

    assert get_engine("gossip-dist") is fake
    with pytest.raises(ConfigError, match="cannot register 'ring': add it to speechfl.config.Engine"):
        register_engine("ring")
    with pytest.raises(ValueError, match="engine 'gossip-dist' is already registered"):
        register_engine("gossip-dist")(fake)


def test_a_missing_engine_module_is_a_config_error(monkeypatch):
    monkeypatch.setattr(engines.ENGINES, "_entries", {k: v for k, v in engines.ENGINES._entries.items()
                                                      if k != "gossip"})
    monkeypatch.setitem(ENGINE_MODULES, Engine.GOSSIP, "speechfl.no_such_package.engine")
    with pytest.raises(ConfigError, match=r"engine 'gossip' is not available .*speechfl.no_such_package.engine"):
        get_engine("gossip")


def test_run_does_not_import_flower_and_flower_registers_itself():
    code = ("import sys; import speechfl.experiment.run as r; "
            "assert not any(m.startswith('speechfl.federated.flower') or m == 'flwr' for m in sys.modules); "
            "from speechfl.federated.engines import get_engine; f = get_engine('flower-sim'); "
            "assert f.__module__ == 'speechfl.federated.flower.run', f.__module__; "
            "assert 'flwr' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "ok"
