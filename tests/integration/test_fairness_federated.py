"""Fairness-aware server steps in the real round loop on the tiny corpus."""

import pytest
import torch

from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from tests.integration.helpers import fed_hparams

EXTRA = ("--rounds=2", "--clients_per_round=3", "--eval_every=0",
         "--client={local_epochs: null, local_steps: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}")


def _run(overrides, out, *extra):
    sim = Simulation(build_setup(fed_hparams(overrides, out, *EXTRA, *extra), progress=False), out, progress=False)
    sim.run()
    return sim


@pytest.mark.slow
def test_qfedavg_q0_run_equals_fedavg_bitwise_and_afl_moves_lambda(tiny_hparams_overrides, tmp_path):
    fedavg = _run(tiny_hparams_overrides, tmp_path / "fedavg")
    q0 = _run(tiny_hparams_overrides, tmp_path / "q0", "--server_optimizer={name: qfedavg, q: 0.0}")
    assert torch.equal(fedavg.server.global_flat, q0.server.global_flat)
    assert q0.setup.client_config.report_global_loss and not fedavg.setup.client_config.report_global_loss
    q5 = _run(tiny_hparams_overrides, tmp_path / "q5", "--server_optimizer={name: qfedavg, q: 5.0}")
    assert not torch.equal(q5.server.global_flat, fedavg.server.global_flat)

    afl = _run(tiny_hparams_overrides, tmp_path / "afl", "--server_optimizer={name: afl, eta: 1.0}")
    lam = afl.server.optimizer.weights_by_group
    assert set(lam) == {"F", "M"} and sum(lam.values()) == pytest.approx(1.0) and lam["F"] != 0.5
    # the round's contributions follow lambda: each group's clients share its weight
    genders = {c: afl.setup.genders[afl.setup.partition.clients[c][0]] for c in afl.setup.partition.client_ids}
    weights = afl.history[-1]["weights"]
    assert sum(w for c, w in weights.items() if genders[c] == "F") == pytest.approx(lam["F"], abs=1e-6)


def test_secagg_with_qfedavg_is_refused_before_the_corpus(tiny_hparams_overrides, tmp_path):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "x", *EXTRA, "--server_optimizer=qfedavg", "--secagg={}",
                     "--data_folder=/nonexistent/corpus")
    with pytest.raises(ValueError, match="secagg: the server sees only the masked sum"):
        build_setup(hp, progress=False)


def test_individual_level_of_a_finished_run_says_why_it_is_skipped(tiny_hparams_overrides, tmp_path):
    from speechfl.experiment.run import run_federated
    from speechfl.fairness.tradeoff import individual_level
    from speechfl.experiment.hparams import load_hparams
    from tests.integration.helpers import FED_HPARAMS, TINY_MODEL

    argv = [*tiny_hparams_overrides, f"--output_folder={tmp_path / 'run'}", *TINY_MODEL, "--rounds=1",
            "--clients_per_round=2", "--eval_every=0", "--client={local_epochs: null, local_steps: 1, batch_size: 4}"]
    res = run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)
    out = individual_level(tmp_path / "run")
    assert len(res["test"]["by_speaker"]) == 1  # the tiny corpus has one test speaker
    assert "needs two test speakers" in out["skipped"]

    from speechfl.experiment.evaluate import evaluate_run

    fair = evaluate_run(tmp_path / "run", attackers=["linear"], progress=False)["fairness"]
    assert "needs two test speakers" in fair["individual_privacy"]["skipped"]
    top1 = fair["privacy_by_group"]["speaker/linear"]["top1"]
    assert set(top1) == {"F", "M"}
    assert fair["privacy_by_group"]["speaker/linear"]["top1_gap"] == pytest.approx(abs(top1["F"] - top1["M"]))


@pytest.mark.slow
def test_ctc_dro_resumes_bit_identically(tiny_hparams_overrides, tmp_path):
    opt = "--server_optimizer={name: ctc_dro, eta: 1.0, alpha: 0.1}"
    hp = lambda out, rounds: fed_hparams(tiny_hparams_overrides, out, *EXTRA, opt, f"--rounds={rounds}")  # noqa: E731
    full = Simulation(build_setup(hp(tmp_path / "a", 2), progress=False), tmp_path / "a", progress=False)
    full.run()
    part = Simulation(build_setup(hp(tmp_path / "b", 2), progress=False), tmp_path / "b", progress=False)
    part.run_round()
    del part
    resumed = Simulation(build_setup(hp(tmp_path / "b", 2), progress=False), tmp_path / "b", progress=False)
    assert resumed.round == 1
    resumed.run()
    assert torch.equal(resumed.server.global_flat, full.server.global_flat)
    assert torch.equal(resumed.server.optimizer.lam, full.server.optimizer.lam)


def test_centralized_group_dro_moves_lambda_with_length_matched_batches(tiny_hparams_overrides, tmp_path):
    """The centralized equivalent: one pooled client, per-batch group DRO (speechfl.fairness.pooled)."""
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.results import RunResults
    from speechfl.experiment.run import run_federated
    from tests.integration.helpers import FED_HPARAMS, TINY_MODEL

    argv = [*tiny_hparams_overrides, f"--output_folder={tmp_path / 'run'}", *TINY_MODEL, "--rounds=2",
            "--engine=centralized", "--clients_per_round=1", "--eval_every=0",
            "--client={local_epochs: null, local_steps: 3, batch_size: 4, optimizer: {name: adam, lr: 0.003}, "
            "group_dro: {rule: ctc_dro, eta: 1.0, length_matched: true}}"]
    res = run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)
    assert RunResults.from_dict(res).to_dict() == res
    lams = [r["group_lambda"] for r in res["rounds"]]
    assert all(set(lam) == {"F", "M"} and sum(lam.values()) == pytest.approx(1.0) for lam in lams)
    assert lams[0]["F"] != 0.5 and lams[1] != lams[0]  # the state carries over rounds and keeps moving


def test_stratified_sampling_balances_every_round_in_a_real_run(tiny_hparams_overrides, tmp_path):
    sim = _run(tiny_hparams_overrides, tmp_path / "strat", "--clients_per_round={count: 2, stratify: gender}",
               "--rounds=3")
    genders = {c: sim.setup.genders[sim.setup.partition.clients[c][0]] for c in sim.setup.partition.client_ids}
    assert sim.setup.client_groups == genders
    for record in sim.history:  # one client of each gender every round, all trained and averaged
        assert sorted(genders[c] for c in record["clients"]) == ["F", "M"]
    assert len({tuple(r["clients"]) for r in sim.history}) > 1
