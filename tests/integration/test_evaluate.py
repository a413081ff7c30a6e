"""`speechfl evaluate` on a finished tiny federated run: every section filled, attacks work."""

import json

from speechfl.cli import main as cli_main
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS, fed_hparams


def test_evaluate_adds_privacy_and_fairness(tiny_hparams_overrides, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--rounds=2", "--record_updates=[1, 2]", "--eval_every=0",
            "--client={local_epochs: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}"]
    run_federated(fed_hparams(tiny_hparams_overrides, out, *argv), str(FED_HPARAMS),
                  [*tiny_hparams_overrides, f"--output_folder={out}", "--channels=16", "--proj=96", "--hidden=96",
                   "--layers=2", *argv], progress=False)
    cli_main(["evaluate", str(out), "--attackers", "linear,mlp", "--no-progress"])
    assert "written:" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    p, f = res["privacy"], res["fairness"]
    # Unprotected: raw Fbank identifies the 6 speakers far above chance.
    fb = p["fbank"]["strongest"]
    assert fb["top1"] > 0.8 > fb["chance"]
    assert 0.0 <= p["representations"]["strongest"]["eer"] <= 0.5
    # Server-side: source inference with the real local models beats chance 1/n.
    si = p["source_inference"]
    assert si["accuracy"] > si["chance"]
    assert "accuracy" in p["linkage"] and "auc" in p["membership"]
    assert set(p["strongest"]) >= {"speaker_identification", "source_inference", "membership"}
    assert f["individual"]["max"] >= f["individual"]["mean"]
    assert "gender" in f and "worst_group" in f["gender"]
    assert res["evaluation"]["attackers"] == ["linear", "mlp"]


def test_evaluate_adversarial_centralized_run_skips_server_side_with_reason(tiny_hparams_overrides, tmp_path):
    """The adversary heads are part of model.pt and the recorded updates; one pooled client has nothing to link."""
    from speechfl.experiment.evaluate import evaluate_run

    out = tmp_path / "run"
    argv = ["--rounds=1", "--record_updates=[1]", "--eval_every=0", "--engine=centralized",
            "--adversary={target: speaker, heads: [linear], weight: 0.5}"]
    run_federated(fed_hparams(tiny_hparams_overrides, out, *argv), str(FED_HPARAMS),
                  [*tiny_hparams_overrides, f"--output_folder={out}", "--channels=16", "--proj=96", "--hidden=96",
                   "--layers=2", *argv], progress=False)
    res = evaluate_run(out, attackers=["linear"], progress=False)
    p = res["privacy"]
    assert "skipped" in p["linkage"] and "skipped" in p["source_inference"]
    assert "fewer than 2 clients" in p["notes"]["server_side"]
    assert p["representations"]["strongest"]["top1"] > 0
