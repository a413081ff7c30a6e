"""`speechfl evaluate --threats reconstruction` on a finished tiny federated run (trains: slow)."""

import json

import pytest

from speechfl.cli import main as cli_main
from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS, TINY_MODEL


@pytest.mark.slow
def test_evaluate_reconstruction_threat(tiny_hparams_overrides, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL, "--rounds=2", "--record_updates=[1, 2]",
            "--eval_every=0", "--client={local_epochs: null, local_steps: 3, batch_size: 4, "
                              "optimizer: {name: sgd, lr: 0.05}}"]
    run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)
    cli_main(["evaluate", str(out), "--attackers", "linear", "--threats", "reconstruction", "--no-progress"])
    printed = capsys.readouterr().out
    assert "reconstruction:" in printed and " s" in printed  # its cost is printed
    rec = json.loads((out / "results.json").read_text())["privacy"]["reconstruction"]
    lab = rec["labels"]["recorded"]
    # SGD clients, uncompressed: the sign rule never names an absent character
    assert lab["sign_precision"] == 1.0 and lab["n_updates"] >= 2
    assert 0.0 <= lab["f1"] <= 1.0 and rec["seconds"] > 0
    assert "inversion" in rec["notes"]
    with pytest.raises(SystemExit, match="unknown threat"):
        cli_main(["evaluate", str(out), "--threats", "nope", "--no-progress"])
