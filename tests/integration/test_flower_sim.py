"""Flower's simulation engine runs the same experiment as the in-process engine, to the bit."""

import pytest
import torch

from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS, TINY_MODEL

pytest.importorskip("flwr", reason="Flower is not installed: pip install 'speechfl[flower]'")

# 3 of the 4 tiny-corpus clients per round; error feedback (client state that must persist on
# the node between rounds) and a sign-flipping client (an update attack run on the node).
EXTRA = ("--rounds=2", "--clients_per_round=3", "--eval_every=0",
         "--uplink={name: ef, inner: {name: topk, fraction: 0.1}}",
         "--malicious={count: 1, attack: {name: sign_flip}}",
         "--client={local_epochs: null, local_steps: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}")


def _run(base, out, *extra):
    argv = [*base, f"--output_folder={out}", *TINY_MODEL, *EXTRA, *extra]
    return run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)


def test_flower_simulation_equals_inprocess_bitwise(tiny_hparams_overrides, tmp_path):
    # Every client draw is seeded by (seed, round, client), and a Flower ClientApp runs torch with
    # flower.client_cpus = 1 thread; pinning the in-process run to 1 thread too gives both engines the
    # same float reduction order, so the final parameters must be identical, not merely close.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = _run(tiny_hparams_overrides, tmp_path / "inprocess")
        res = _run(tiny_hparams_overrides, tmp_path / "flower", "--engine=flower-sim")
    finally:
        torch.set_num_threads(threads)

    expected = torch.load(tmp_path / "inprocess" / "model.pt", weights_only=True)
    got = torch.load(tmp_path / "flower" / "model.pt", weights_only=True)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    init = load_hparams(FED_HPARAMS, [*tiny_hparams_overrides, *TINY_MODEL])["model"].state_dict()
    assert any(not torch.equal(init[k], got[k]) for k in got)  # training moved the model

    assert res["engine"] == "flower-sim" and ref["engine"] == "inprocess"
    for a, b in zip(ref["rounds"], res["rounds"]):
        for key in ("clients", "malicious", "bytes_up", "bytes_down", "rejected", "weights", "update_norm",
                    "train_loss"):
            assert a[key] == b[key], key
    assert len(res["rounds"]) == 2 and all(len(r["clients"]) == 3 for r in res["rounds"])
    assert any(r["malicious"] for r in res["rounds"])  # the attacker took part
    assert res["test"]["cer"] == ref["test"]["cer"]
    # error-feedback memories stayed on the (virtual) nodes, not in the server's checkpoint
    assert list((tmp_path / "flower" / "flower_client_state").rglob("*.pt"))
    ckpt = torch.load(tmp_path / "flower" / "checkpoint.pt", weights_only=False)
    assert set(ckpt["client_states"]) == {"engine", "last_round"}


class DirectGrid:
    """Flower's Grid interface delivering each message straight to a ClientApp in this process
    (a Context per node, as a SuperNode keeps one): the executor and the ClientApp run unchanged,
    only the transport (Ray / gRPC) is left out."""

    def __init__(self, client_app, node_configs):
        from flwr.app import Context, RecordDict

        self.app = client_app
        self.contexts = {i + 1: Context(run_id=1, node_id=i + 1, node_config=cfg, state=RecordDict(), run_config={})
                         for i, cfg in enumerate(node_configs)}
        self.sent = []

    def get_node_ids(self):
        return list(self.contexts)

    def send_and_receive(self, messages, *, timeout=None):
        import uuid

        replies = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid.uuid4())  # what a SuperLink assigns
            self.sent.append(msg)
            replies.append(self.app(msg, self.contexts[msg.metadata.dst_node_id]))
        return replies


def test_executor_and_client_app_match_inprocess_clients(tiny_hparams_overrides, tmp_path, monkeypatch):
    from flwr.supercore.task_identity import TaskIdentity

    for attr, value in (("_run_id", 1), ("_task_id", 1), ("_node_id", 0)):  # what a ServerApp runtime sets
        monkeypatch.setattr(TaskIdentity, attr, value)
    from speechfl.data.dataset import make_loader
    from speechfl.federated.flower.client_app import make_client_app
    from speechfl.federated.flower.executor import FlowerExecutor
    from speechfl.federated.flower.experiment import ExperimentSpec
    from speechfl.federated.round import InProcessExecutor
    from speechfl.federated.setup import build_setup
    from speechfl.federated.simulation import compression_context
    from speechfl.metrics.asr import mean_loss

    argv = [*tiny_hparams_overrides, f"--output_folder={tmp_path}", *TINY_MODEL, "--rounds=2", "--clients_per_round=4",
            "--uplink={name: ef, inner: {name: topk, fraction: 0.1}}",
            "--malicious={count: 2, attack: {name: gaussian, std: 0.5}}",
            "--client={local_epochs: null, local_steps: 1, batch_size: 4}"]
    setup = build_setup(load_hparams(FED_HPARAMS, argv), progress=False)
    spec = ExperimentSpec.from_file(FED_HPARAMS, argv)
    # two nodes as Flower's simulation configures them: node i serves clients i, i + 2
    grid = DirectGrid(make_client_app(), [{"partition-id": 0, "num-partitions": 2},
                                          {"partition-id": 1, "num-partitions": 2}])
    flower = FlowerExecutor(grid, setup, spec)
    assert flower.connect() == {"1001": 1, "1002": 2, "1003": 1, "1004": 2}
    inproc = InProcessExecutor(setup, progress=False)

    views = {1: setup.init_flat.clone(), 2: setup.init_flat + 0.01}  # another model for round 2
    expected = {}
    for r in (1, 2):  # round 2 needs each client's error-feedback memory of round 1, kept on its node
        sampled, ctx = setup.sample_clients(r), compression_context(setup, r)
        expected[r], mal_expected = inproc.run(sampled, views[r], r, 0, ctx)
        got, mal_got = flower.run(sampled, views[r], r, 0, ctx)
        assert mal_got == mal_expected and len(mal_got) == 2
        assert [g.client_id for g in got] == sampled
        for e, g in zip(expected[r], got):  # the same bytes on the wire, Gaussian rows of the attackers included
            assert g.payload == e.payload and g.n_samples == e.n_samples
            assert g.metadata["bytes_up"] == e.metadata["bytes_up"] and g.metadata["steps"] == 1
    # the model travelled by parameter name, as float32
    assert set(grid.sent[-1].content["model"].keys()) == set(setup.layout.names)
    assert {a.dtype for a in grid.sent[-1].content["model"].values()} == {"float32"}

    # federated evaluation: the node's loss equals mean_loss on the client's data
    losses = flower.evaluate(views[2], ["1001", "1004"])
    from speechfl.federated.update import load_flat_params

    load_flat_params(setup.model, setup.layout, views[2])
    for cid, got in losses.items():
        ds = setup.client_dataset(cid)
        assert got["n_samples"] == len(ds)
        oracle = mean_loss(setup.model, make_loader(ds, int(setup.hparams["eval_batch_size"]), shuffle=False))
        assert got["loss"] == pytest.approx(oracle, rel=1e-6)

    # a node that lost its clients' state (restarted without state-dir) refuses to train them ...
    nodes = [{"partition-id": 0, "num-partitions": 1}]
    fresh = FlowerExecutor(DirectGrid(make_client_app(), nodes), setup, spec)
    fresh.load_state_dict(flower.state_dict())
    with pytest.raises(RuntimeError, match="state after round 2"):
        fresh.run(setup.sample_clients(3)[:1], views[2], 3, 0, compression_context(setup, 3))
    # ... while one restarted with its state-dir resumes exactly (server resumed from its checkpoint)
    first = FlowerExecutor(DirectGrid(make_client_app(state_dir=str(tmp_path / "state")), nodes), setup, spec)
    first.run(setup.sample_clients(1), views[1], 1, 0, compression_context(setup, 1))
    resumed = FlowerExecutor(DirectGrid(make_client_app(state_dir=str(tmp_path / "state")), nodes), setup, spec)
    resumed.load_state_dict(first.state_dict())
    got, _ = resumed.run(setup.sample_clients(2), views[2], 2, 0, compression_context(setup, 2))
    assert [g.payload for g in got] == [e.payload for e in expected[2]]
