"""The Conformer preset runs both recipes in debug size; SCAFFOLD runs and checkpoints its control variates."""

import importlib.util
import json

import pytest
import torch

from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from speechfl.federated.setup import build_setup
from speechfl.models.conformer import ConformerASR
from tests.integration.helpers import CTC_HPARAMS, FED_HPARAMS

CONFORMER = ["--encoder=conformer", "--conformer_preset=tiny", "--n_mels=40"]
CLIENT = "--client={local_epochs: null, local_steps: 3, batch_size: 4, optimizer: {name: adam, lr: 0.002}}"
SGD_CLIENT = "--client={local_epochs: null, local_steps: 3, batch_size: 4, optimizer: {name: sgd, lr: 0.05}}"


def test_conformer_one_federated_round(tiny_hparams_overrides, tmp_path):
    out = tmp_path / "fed"
    argv = [*tiny_hparams_overrides, f"--output_folder={out}", *CONFORMER, "--rounds=1", "--clients_per_round=2",
            "--eval_every=1", CLIENT]
    res = run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)
    assert len(res["rounds"]) == 1 and res["rounds"][0]["update_norm"] > 0
    assert 0 <= res["test"]["cer"] and res["model"]["n_params"] > 400_000  # the tiny preset (0.47M at 40 mels)


def test_conformer_one_centralized_epoch(tiny_hparams_overrides, tmp_path):
    out = tmp_path / "ctc"
    spec = importlib.util.spec_from_file_location("ctc_train", CTC_HPARAMS.parents[1] / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.main([str(CTC_HPARAMS), *tiny_hparams_overrides, f"--output_folder={out}", *CONFORMER,
              "--number_of_epochs=1", "--batch_size=8", "--noprogressbar"])
    res = json.loads((out / "results.json").read_text())
    assert len(res["epochs"]) == 1 and res["epochs"][0]["train_loss"] > 0
    assert res["test"]["by_speaker"]


def test_scaffold_round_checkpoints_control_variates(tiny_hparams_overrides, tmp_path):
    out = tmp_path / "scaffold"
    argv = [*tiny_hparams_overrides, f"--output_folder={out}", *CONFORMER, "--rounds=2", "--clients_per_round=2",
            "--eval_every=0", "--server_optimizer={name: scaffold}", SGD_CLIENT]
    res = run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)
    assert len(res["rounds"]) == 2
    ckpt = torch.load(out / "checkpoint.pt", weights_only=False)
    control = ckpt["server"]["optimizer"]["control"]
    assert ckpt["server"]["optimizer"]["rounds"] == 2 and control.abs().sum() > 0
    variates = [s["scaffold_c"] for s in ckpt["client_states"].values() if "scaffold_c" in s]
    assert len(variates) >= 2 and all(v.shape == control.shape for v in variates)


def test_scaffold_refuses_local_epochs_and_adam_conformer_refuses_dp_sample(tiny_hparams_overrides, tmp_path):
    hp = load_hparams(FED_HPARAMS, [*tiny_hparams_overrides, f"--output_folder={tmp_path / 'a'}", *CONFORMER,
                                    "--server_optimizer={name: scaffold}"])
    with pytest.raises(ValueError, match="local_steps"):
        build_setup(hp, progress=False)
    hp = load_hparams(FED_HPARAMS, [*tiny_hparams_overrides, f"--output_folder={tmp_path / 'c'}", *CONFORMER,
                                    "--server_optimizer={name: scaffold}", CLIENT])
    with pytest.raises(ValueError, match="sgd"):
        build_setup(hp, progress=False)
    hp = load_hparams(FED_HPARAMS, [*tiny_hparams_overrides, f"--output_folder={tmp_path / 'b'}", *CONFORMER,
                                    "--dp_sample={noise_multiplier: 1.0, max_grad_norm: 1.0, delta: 1.0e-5}"])
    assert isinstance(hp["model"], ConformerASR)
    with pytest.raises(ValueError, match="Opacus"):
        build_setup(hp, progress=False)
