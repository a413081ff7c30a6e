"""Compression, robustness, privacy defenses inside the real engine, on the tiny synthetic corpus."""

import pytest
import torch

from speechfl.experiment.run import run_federated
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from speechfl.metrics.asr import mean_loss
from tests.integration.helpers import FED_HPARAMS, fed_hparams

LEARN = "--client={local_epochs: 6, batch_size: 4, optimizer: {name: adam, lr: 0.003}}"


def _run(overrides, out, *extra):
    hp = fed_hparams(overrides, out, *extra)
    return run_federated(hp, str(FED_HPARAMS), list(extra), progress=False)


def test_topk_error_feedback_learns_with_far_fewer_bytes(tiny_hparams_overrides, tmp_path):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "x", "--rounds=2", "--clients_per_round=3", LEARN)
    initial = mean_loss(build_setup(hp, progress=False).model, build_setup(hp, progress=False).eval_loader("valid"))
    res = _run(tiny_hparams_overrides, tmp_path / "topk", "--rounds=2", "--clients_per_round=3", LEARN,
               "--uplink={name: ef, inner: {name: topk, fraction: 0.05}}")
    assert res["rounds"][-1]["valid_loss"] < initial - 0.3
    assert res["communication"]["compression_ratio_up"] > 8  # 5% values + compact indices vs fp32


def _valid_after(overrides, out, *extra) -> float:
    return _run(overrides, out, "--rounds=2", "--eval_every=2", LEARN, "--augment=null", "--dropout=0.0",
                *extra)["rounds"][-1]["valid_loss"]


def test_sign_flipping_minority_breaks_mean_not_robust_rules(tiny_hparams_overrides, tmp_path):
    flip = "--malicious={count: 1, attack: {name: sign_flip, scale: 4.0}}"
    clean = _valid_after(tiny_hparams_overrides, tmp_path / "clean")
    mean = _valid_after(tiny_hparams_overrides, tmp_path / "mean", flip)
    robust = {name: _valid_after(tiny_hparams_overrides, tmp_path / name, flip, f"--aggregator={spec}")
              for name, spec in [("median", "median"), ("trimmed_mean", "{name: trimmed_mean, f: 1}"),
                                 ("cc", "{name: centered_clipping, tau: 0.5, iters: 3}")]}
    print("valid loss: clean", clean, "mean under attack", mean, robust)
    assert mean > clean + 1.0  # mean aggregation degrades clearly
    for name, loss in robust.items():
        assert loss < clean + 0.35 * (mean - clean), name  # robust rules stay close to the clean run


def test_secure_aggregation_equals_plain_fedavg(tiny_hparams_overrides, tmp_path):
    plain = fed_hparams(tiny_hparams_overrides, tmp_path / "p", "--rounds=1", "--eval_every=0", "--augment=null",
                        "--dropout=0.0")
    masked = fed_hparams(tiny_hparams_overrides, tmp_path / "s", "--rounds=1", "--eval_every=0", "--augment=null",
                         "--dropout=0.0", "--secagg={}")
    a = Simulation(build_setup(plain, progress=False), tmp_path / "p", progress=False)
    b = Simulation(build_setup(masked, progress=False), tmp_path / "s", progress=False)
    a.run_round()
    b.run_round()
    # fixed-point masks (2^-24 resolution) only perturb at float tolerance
    assert torch.allclose(a.server.global_flat, b.server.global_flat, atol=1e-5)
    assert not torch.equal(a.server.global_flat, b.setup.init_flat)


def test_secure_aggregation_refuses_robust_aggregators(tiny_hparams_overrides, tmp_path):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "x", "--secagg={}", "--aggregator=median")
    with pytest.raises(ValueError, match="individual client updates"):
        build_setup(hp, progress=False)
