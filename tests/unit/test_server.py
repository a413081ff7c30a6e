import logging

import pytest
import torch

from speechfl.compression import CompressionContext, Payload, get_compressor
from speechfl.federated.server import Received, Server
from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.robustness import build_robust_pipeline

D = 5


def make_server(aggregator="weighted_mean", uplink="identity"):
    return Server(global_flat=torch.zeros(D), optimizer=SERVER_OPTIMIZERS.build("fedavg"),
                  uplink=get_compressor(uplink), robust=build_robust_pipeline(aggregator, []))


def ctx():
    return CompressionContext(round=1, seed=0, layout=[("w", (D,))], dim=D)


def send(server, cid, vec, n=1):
    return Received(cid, server.uplink.encode(vec, {"client_seed": 1}, ctx()), n)


def test_weighted_mean_by_hand():
    s = make_server()
    a, b = torch.tensor([1.0, 0, 0, 0, 4]), torch.tensor([0.0, 2, 0, 0, 0])
    out = s.aggregate([send(s, "a", a, n=1), send(s, "b", b, n=3)], ctx())
    # (1 * a + 3 * b) / 4
    assert torch.allclose(out.new_global, torch.tensor([0.25, 1.5, 0, 0, 1.0]))
    assert out.weights == pytest.approx({"a": 0.25, "b": 0.75})
    assert out.accepted == ["a", "b"] and out.rejected == {}


def test_bad_updates_are_rejected_logged_and_the_round_goes_on(caplog):
    s = make_server()
    good = torch.ones(D)
    nan = torch.ones(D)
    nan[2] = float("nan")
    inf = torch.ones(D)
    inf[0] = float("inf")
    wrong = Received("short", get_compressor("identity").encode(
        torch.ones(D - 1), {}, CompressionContext(round=1, seed=0, layout=[("w", (D - 1,))], dim=D - 1)), 1)
    truncated = Received("trunc", Payload(send(s, "x", good).payload.data[:-3]), 1)
    with caplog.at_level(logging.WARNING):
        out = s.aggregate([send(s, "good", good), send(s, "nan", nan), send(s, "inf", inf), wrong, truncated,
                           send(s, "zero", good, n=0)], ctx())
    assert out.accepted == ["good"]
    assert set(out.rejected) == {"nan", "inf", "short", "trunc", "zero"}
    assert "NaN" in out.rejected["nan"] and "Inf" in out.rejected["inf"]
    assert "malformed payload" in out.rejected["short"] and "malformed payload" in out.rejected["trunc"]
    assert torch.equal(out.new_global, good)
    assert sum("rejected update of client nan" in r.message for r in caplog.records) == 1


def test_all_rejected_leaves_model_unchanged():
    s = make_server()
    bad = torch.full((D,), float("nan"))
    out = s.aggregate([send(s, "a", bad)], ctx())
    assert torch.equal(out.new_global, torch.zeros(D)) and out.accepted == []


def test_robust_aggregator_plugs_into_the_same_interface():
    s = make_server(aggregator={"name": "median"})
    ups = [torch.full((D,), v) for v in (1.0, 2.0, 100.0)]
    out = s.aggregate([send(s, str(i), u) for i, u in enumerate(ups)], ctx())
    assert torch.allclose(out.new_global, torch.full((D,), 2.0))


def test_a_component_lacking_its_protocol_attributes_is_refused_at_construction():
    """No hasattr probes with silent defaults: a server optimizer without ``client_aware`` / ``control_variates``
    (or a robust rule without ``min_rows``) fails when the server is built, naming what it lacks."""
    from speechfl.config import ConfigError

    class LegacyStep:  # step/state_dict/load_state_dict only, as before the Protocol declared the flags
        name = "legacy"

        def step(self, x, delta):
            return x + delta

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    with pytest.raises(ConfigError, match=r"^server_optimizer: LegacyStep is not a ServerStep: it lacks "
                                          r"\['client_aware', 'control_variates'\]$"):
        Server(global_flat=torch.zeros(D), optimizer=LegacyStep(), uplink=get_compressor("identity"),
               robust=build_robust_pipeline("weighted_mean", []))
    LegacyStep.client_aware = LegacyStep.control_variates = False
    Server(global_flat=torch.zeros(D), optimizer=LegacyStep(), uplink=get_compressor("identity"),
           robust=build_robust_pipeline("weighted_mean", []))  # with the flags declared it is accepted

    class NoMinRows:
        name, stateful, requires_individual_updates, last_weights = "plain", False, False, None

        def __call__(self, updates, weights=None):
            return updates.mean(0)

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    with pytest.raises(ConfigError, match=r"^aggregator: NoMinRows is not a RobustAggregator: it lacks \['min_rows'\]"):
        Server(global_flat=torch.zeros(D), optimizer=SERVER_OPTIMIZERS.build("fedavg"),
               uplink=get_compressor("identity"), robust=NoMinRows())
