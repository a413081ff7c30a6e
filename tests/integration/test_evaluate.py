"""`speechfl evaluate` on a finished tiny federated run: every section filled, attacks work."""

import json
import shutil

import pytest
import torch

from speechfl.cli import main as cli_main
from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS, TINY_MODEL, fed_hparams


def test_evaluate_adds_privacy_and_fairness(tiny_hparams_overrides, tmp_path, capsys):
    """Also: the hparams file is deleted after the run (evaluate uses the stored text), and valid_split points
    at the test split (no dev split): utterances are attacked once, the overlap is reported."""
    out = tmp_path / "run"
    hp_file = tmp_path / "copy_of_fedavg.yaml"
    shutil.copy(FED_HPARAMS, hp_file)
    argv = [*tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL, "--rounds=2", "--record_updates=[1, 2]",
            "--eval_every=0", "--valid_split=test",
            "--client={local_epochs: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}"]
    run_federated(load_hparams(hp_file, argv), str(hp_file), argv, progress=False)
    hp_file.unlink()  # evaluating must not depend on the file any more
    assert (out / "initial_model.pt").is_file()
    init = torch.load(out / "initial_model.pt", weights_only=True)
    assert any(not torch.equal(init[k], v) for k, v in torch.load(out / "model.pt", weights_only=True).items())
    cli_main(["evaluate", str(out), "--attackers", "linear,mlp", "--no-progress"])
    assert "written:" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    p, f = res["privacy"], res["fairness"]
    # Unprotected: raw Fbank identifies the attack speakers far above chance (1 / attack speakers, not 1 / 6).
    fb = p["fbank"]["strongest"]
    assert fb["top1"] > 0.8 > fb["chance"] == 1 / fb["n_id_speakers"]
    assert fb["top1_ci"]["low"] <= fb["top1"] <= fb["top1_ci"]["high"] and fb["few_speakers"]
    assert 0.0 <= p["representations"]["strongest"]["eer"] <= 0.5
    # Server-side: source inference with the real local models beats chance 1/n.
    si = p["source_inference"]
    assert si["accuracy"] > si["chance"]
    assert "accuracy" in p["linkage"] and "auc" in p["membership"]
    for sec, key in (("source_inference", "accuracy"), ("linkage", "accuracy"), ("membership", "auc")):
        ci = p[sec][f"{key}_ci"]  # every figure says what it rests on
        assert ci is None or ci["low"] <= p[sec][key] <= ci["high"]
    assert p["membership"]["auc_ci"]["unit"] == "speaker" and p["source_inference"]["n_clients"] >= 2
    assert set(p["strongest"]) >= {"speaker_identification", "source_inference", "membership"}
    # Full reports are kept, not only summaries.
    rep = p["reports"]
    assert rep["membership"]["utterance"]["calibrated"] is not None  # reference: initial_model.pt
    assert rep["source_inference"]["per_client_accuracy"] and rep["update_linkage"]["methods"]
    assert rep["speaker"]["chance_note"].startswith("identification among the")
    # valid = test: every test utterance deduplicated, reported.
    assert p["data"]["n_duplicates"]["test"] > 0 and p["data"]["n_utterances"]["test"] == 0
    assert "duplicates/test" in p["data"]["notes"]
    assert f["individual"]["max"] >= f["individual"]["mean"]
    assert "gender" in f and "worst_group" in f["gender"]
    assert res["evaluation"]["attackers"] == ["linear", "mlp"]

    # A tampered recorded round is refused before any work, in one line naming the file.
    rec = torch.load(out / "recorded" / "round_0001.pt", weights_only=True)
    rec["extra"] = _Payload()
    torch.save(rec, out / "recorded" / "round_0001.pt")
    with pytest.raises(SystemExit) as err:
        cli_main(["evaluate", str(out), "--attackers", "linear", "--no-progress"])
    assert "round_0001.pt: refused" in str(err.value) and "\n" not in str(err.value)


class _Payload:
    def __reduce__(self):
        return (print, ("pwned",))


def test_evaluate_adversarial_centralized_run_skips_server_side_with_reason(tiny_hparams_overrides, tmp_path):
    """The adversary heads are part of model.pt and the recorded updates; one pooled client has nothing to link."""
    from speechfl.experiment.evaluate import evaluate_run

    out = tmp_path / "run"
    argv = ["--rounds=1", "--record_updates=[1]", "--eval_every=0", "--engine=centralized",
            "--adversary={target: speaker, heads: [linear], weight: 0.5}"]
    run_federated(fed_hparams(tiny_hparams_overrides, out, *argv), str(FED_HPARAMS),
                  [*tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL, *argv], progress=False)
    res = evaluate_run(out, attackers=["linear"], progress=False)
    p = res["privacy"]
    assert "skipped" in p["linkage"] and "skipped" in p["source_inference"]
    assert "fewer than 2 clients" in p["notes"]["server_side"]
    assert p["representations"]["strongest"]["top1"] > 0


def test_evaluate_one_gender_corpus_skips_gender_attacks_with_reason_and_writes_the_rest(
        tiny_hparams_overrides, tiny_corpus, tmp_path):
    """Every speaker is labelled M (Kaldi spk2gender): gender attacks skip with the reason, the rest is written."""
    from speechfl.experiment.evaluate import evaluate_run

    speakers = sorted({p.name for split in ("train", "dev", "test") for p in (tiny_corpus / split).iterdir()
                       if p.is_dir()})
    (tmp_path / "spk2gender").write_text("".join(f"{s} m\n" for s in speakers))
    out = tmp_path / "run"
    argv = ["--rounds=1", "--eval_every=0", f"--speakers_file={tmp_path / 'spk2gender'}",
            "--client={local_epochs: 1, batch_size: 4, optimizer: {name: adam, lr: 0.003}}"]
    run_federated(fed_hparams(tiny_hparams_overrides, out, *argv), str(FED_HPARAMS),
                  [*tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL, *argv], progress=False)
    res = evaluate_run(out, attackers=["linear"], baseline=str(out), progress=False)  # itself as the baseline
    p = json.loads((out / "results.json").read_text())["privacy"]
    assert set(p["reports"]["scenarios"]) == {"ignorant", "lazy_informed", "semi_informed"}
    assert p == res["privacy"]
    for key in ("gender", "fbank_gender"):
        assert p["notes"][key].startswith("skipped:") and "['M']" in p["notes"][key]
        assert p["reports"][key] is None
    assert "['M']" in p["gender_inference"]["skipped"]
    assert p["representations"]["strongest"]["top1"] >= 0
    assert p["reports"]["speaker"]["families"]["linear"]["per_gender"].keys() == {"M"}
    assert "auc" in p["membership"] and res["fairness"]["gender"]["gap_abs"] is None
