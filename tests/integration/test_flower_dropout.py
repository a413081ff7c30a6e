"""Flower engine under secure aggregation: a client whose reply never arrives is a recovered dropout,
a NaN client is dropped on its node, and the round's aggregate equals the in-process one over the survivors."""

import pytest
import torch

pytest.importorskip("flwr", reason="Flower is not installed: pip install 'speechfl[flower]'")

from speechfl.experiment.hparams import load_hparams  # noqa: E402
from tests.integration.helpers import FED_HPARAMS, TINY_MODEL  # noqa: E402
from tests.integration.test_flower_sim import DirectGrid  # noqa: E402


class LossyGrid(DirectGrid):
    """Delivers every message, but loses the train replies of the clients in ``lost`` (a timed-out node)."""

    def __init__(self, client_app, node_configs, lost):
        super().__init__(client_app, node_configs)
        self.lost = set(lost)

    def send_and_receive(self, messages, *, timeout=None):
        replies = super().send_and_receive(messages, timeout=timeout)
        return [r for m, r in zip(messages, replies)
                if not (m.metadata.message_type == "train" and str(m.content["config"]["client-id"]) in self.lost)]


def test_missing_reply_and_nan_client_are_recovered_dropouts(tiny_hparams_overrides, tmp_path, monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    for attr, value in (("_run_id", 1), ("_task_id", 1), ("_node_id", 0)):  # what a ServerApp runtime sets
        monkeypatch.setattr(TaskIdentity, attr, value)
    from speechfl.federated.flower.client_app import make_client_app
    from speechfl.federated.flower.executor import FlowerExecutor
    from speechfl.federated.flower.experiment import ExperimentSpec
    from speechfl.federated.round import InProcessExecutor
    from speechfl.federated.server import Server
    from speechfl.federated.setup import build_setup
    from speechfl.federated.simulation import compression_context

    argv = [*tiny_hparams_overrides, f"--output_folder={tmp_path}", *TINY_MODEL, "--rounds=1", "--clients_per_round=4",
            "--secagg={}", "--malicious={count: 1, attack: {name: nonfinite}}",
            "--client={local_epochs: null, local_steps: 1, batch_size: 4}"]
    setup = build_setup(load_hparams(FED_HPARAMS, argv), progress=False)
    spec = ExperimentSpec.from_file(FED_HPARAMS, argv)
    sampled, ctx = setup.sample_clients(1), compression_context(setup, 1)
    (nan_client,) = sorted(setup.malicious)
    lost = next(c for c in sampled if c != nan_client)
    grid = LossyGrid(make_client_app(), [{"partition-id": 0, "num-partitions": 2},
                                         {"partition-id": 1, "num-partitions": 2}], lost=[lost])
    got, _ = FlowerExecutor(grid, setup, spec, reply_timeout=5.0).run(sampled, setup.init_flat, 1, 0, ctx)
    assert [g.client_id for g in got] == sampled
    assert got[sampled.index(lost)].metadata["bytes_up"] == 0

    def server():
        return Server(global_flat=setup.init_flat, optimizer=setup.server_optimizer, uplink=setup.uplink,
                      robust=setup.robust, secagg=setup.secagg,
                      sample_counts={c: len(u) for c, u in setup.partition.utterances.items()})

    agg = server().aggregate(got, ctx, participants=sampled)
    assert sorted(agg.dropped) == sorted([lost, nan_client])
    assert "no reply" in agg.rejected[lost] and "non-finite" in agg.rejected[nan_client]
    # oracle: the in-process engine's masked vectors of the two survivors, the others never sent
    expected, _ = InProcessExecutor(setup, progress=False).run(sampled, setup.init_flat, 1, 0, ctx)
    ref = server().aggregate([e for e in expected if e.client_id != lost], ctx, participants=sampled)
    assert sorted(ref.dropped) == sorted([lost, nan_client])
    assert torch.equal(agg.delta, ref.delta) and float(agg.delta.norm()) > 0
