"""The federated engine on the tiny synthetic corpus: oracle, resume determinism, learning."""

import torch

from speechfl.experiment.run import run_federated
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from speechfl.federated.update import flatten_params, load_flat_params
from speechfl.metrics.asr import mean_loss
from speechfl.models.objective import training_loss
from tests.integration.helpers import FED_HPARAMS, fed_hparams, straight_and_resumed

NO_NOISE = ["--dropout=0.0", "--augment=null"]


def test_fedavg_one_client_one_sgd_step_equals_centralized_step(tiny_hparams_overrides, tmp_path):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "fed", *NO_NOISE, "--rounds=1", "--clients_per_round=1",
                     "--eval_every=0",
                     "--client={local_epochs: null, local_steps: 1, batch_size: 64, optimizer: {name: sgd, lr: 0.5},"
                     " max_grad_norm: null}")
    setup = build_setup(hp, progress=False)
    sim = Simulation(setup, tmp_path / "fed", progress=False)
    init = setup.init_flat.clone()
    (cid,) = setup.sample_clients(1)
    sim.run_round()

    # Centralized: one SGD step on the same batch (the client's whole data) from the same start.
    model = setup.model
    load_flat_params(model, setup.layout, init)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    from speechfl.data.dataset import make_loader

    (batch,) = list(make_loader(setup.client_dataset(cid), 64, shuffle=False))
    model.train()
    opt.zero_grad(set_to_none=True)
    training_loss(model, batch, step=0).loss.backward()
    opt.step()
    expected = flatten_params(model, setup.layout)
    assert torch.allclose(sim.server.global_flat, expected, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(expected, init)  # the step did something


def test_interrupted_then_resumed_run_is_bit_identical(tiny_hparams_overrides, tmp_path):
    extra = ("--rounds=4", "--clients_per_round=2", "--eval_every=0", "--record_updates=[2]",
             "--uplink={name: ef, inner: {name: topk, fraction: 0.1}}")
    full, resumed = straight_and_resumed(tiny_hparams_overrides, tmp_path, 2, *extra)  # "crash" after round 2
    assert torch.equal(resumed.server.global_flat, full.server.global_flat)
    assert [r["clients"] for r in resumed.history] == [r["clients"] for r in full.history]
    assert all(c.get("ef_memory") is not None for c in resumed.executor.states.values())
    seen = torch.load(tmp_path / "b" / "recorded" / "round_0002.pt", weights_only=False)
    assert sorted(seen["updates"]) == resumed.history[1]["clients"]
    # the server sees the top-10% sparsified update, not the raw one
    some = next(iter(seen["updates"].values())).float()
    assert 0 < int((some != 0).sum()) <= 0.1 * some.numel() + 1


def test_three_clients_two_rounds_valid_loss_falls(tiny_hparams_overrides, tmp_path):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "run", "--rounds=2", "--clients_per_round=3",
                     "--client={local_epochs: 6, batch_size: 4, optimizer: {name: adam, lr: 0.003}}")
    setup = build_setup(hp, progress=False)
    initial = mean_loss(setup.model, setup.eval_loader("valid"))
    res = run_federated(hp, str(FED_HPARAMS), [], progress=False)
    r1, r2 = res["rounds"]
    assert len(r1["clients"]) == 3 and r1["bytes_up"] > 0 and r1["bytes_down"] > 0
    print("valid loss", initial, r1["valid_loss"], r2["valid_loss"])
    assert r2["valid_loss"] < initial - 0.3
    assert set(res["partition"]["clients"]) == {"1001", "1002", "1003", "1004"}
    assert res["test"]["n_utts"] > 0 and "by_speaker" in res["test"]
    assert (tmp_path / "run" / "results.json").exists() and (tmp_path / "run" / "model.pt").exists()


def test_multi_krum_m_above_the_sampled_clients_is_refused_after_the_partition_before_training(
        tiny_hparams_overrides, tmp_path):
    """A fraction needs the partition to count clients: checked right after it, before any client trains."""
    import pytest

    from speechfl.config import ConfigError

    argv = ["--clients_per_round=1.0", "--aggregator={name: multi_krum, f: 0, m: 9}", "--rounds=1"]
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "run", *argv)
    with pytest.raises(ConfigError, match=r"^aggregator: 'multi_krum' needs at least 9 updates per round, but "
                                          r"clients_per_round=1.0 samples 4 of 4 clients$"):
        run_federated(hp, str(FED_HPARAMS), argv, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists() and not (tmp_path / "run" / "model.pt").exists()
