"""Reading a run folder back for `speechfl evaluate`: stored configuration, tensors-only files, one-line errors."""

import json

import pytest
import torch

from speechfl.experiment.finished_run import RunFolderError, load_finished_run, load_recorded

HPARAMS = "seed: 3\nwidth: 4\nmodel: !new:torch.nn.Linear [!ref <width>, 2]\n"


class Payload:
    """Stands for arbitrary code a tampered pickle could run."""

    def __reduce__(self):
        return (print, ("pwned",))


def make_run(tmp_path, text=HPARAMS, argv=("--width=5",)):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({"config": {"hparams_file": str(tmp_path / "gone.yaml"),
                                                              "argv": list(argv), "hparams_text": text}}))
    torch.save(torch.nn.Linear(5, 2).state_dict(), run / "model.pt")
    return run


def test_model_is_rebuilt_from_the_stored_text_not_the_file_path(tmp_path):
    hp = tmp_path / "gone.yaml"
    hp.write_text("seed: 3\nwidth: 99\nmodel: !new:torch.nn.Linear [7, 7]\n")  # edited after the run
    run = load_finished_run(make_run(tmp_path))
    assert run.hparams["width"] == 5  # stored text + stored override, not the edited file
    run.hparams["model"].load_state_dict(run.state)
    assert run.initial_state is None and "initial_model.pt not found" in run.initial_note
    torch.save({"weight": torch.zeros(2, 5), "bias": torch.ones(2)}, tmp_path / "run" / "initial_model.pt")
    assert torch.equal(load_finished_run(tmp_path / "run").initial_state["bias"], torch.ones(2))


def test_not_a_run_folder_names_the_file_and_what_to_do(tmp_path):
    with pytest.raises(RunFolderError, match="results.json not found.*speechfl train"):
        load_finished_run(tmp_path)
    run = make_run(tmp_path)
    (run / "model.pt").unlink()
    with pytest.raises(RunFolderError, match=r"model.pt not found.*retrain"):
        load_finished_run(run)


def test_results_without_hparams_text_is_refused(tmp_path):
    run = make_run(tmp_path, text=None)
    with pytest.raises(RunFolderError, match="config.hparams_text is missing"):
        load_finished_run(run)


def test_pickled_object_in_a_model_or_recorded_file_is_refused_in_one_line(tmp_path, capsys):
    run = make_run(tmp_path)
    (run / "recorded").mkdir()
    torch.save({"round": 1, "global": torch.zeros(3), "updates": {"0": torch.zeros(3)}, "extra": Payload()},
               run / "recorded" / "round_1.pt")
    with pytest.raises(RunFolderError) as err:
        load_recorded(run)
    msg = str(err.value)
    assert "round_1.pt" in msg and "refused" in msg and "\n" not in msg
    assert "pwned" not in capsys.readouterr().out  # the payload never ran
    torch.save({"w": Payload()}, run / "model.pt")
    with pytest.raises(RunFolderError, match="model.pt: refused"):
        load_finished_run(run)


def test_truncated_or_malformed_recorded_file(tmp_path):
    run = make_run(tmp_path)
    (run / "recorded").mkdir()
    good = {"round": 1, "global": torch.zeros(3), "updates": {"0": torch.zeros(3)}}
    torch.save(good, run / "recorded" / "round_1.pt")
    assert load_recorded(run)[0]["round"] == 1
    data = (run / "recorded" / "round_1.pt").read_bytes()
    (run / "recorded" / "round_2.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(RunFolderError, match="round_2.pt: cannot read.*truncated"):
        load_recorded(run)
    torch.save({"round": 2, "global": torch.zeros(3)}, run / "recorded" / "round_2.pt")
    with pytest.raises(RunFolderError, match="round_2.pt: a recorded round must be a mapping with keys"):
        load_recorded(run)


def test_cli_prints_one_line(tmp_path):
    from speechfl.cli import main

    with pytest.raises(SystemExit) as err:
        main(["evaluate", str(tmp_path / "nothing")])
    assert str(err.value).startswith("speechfl evaluate: error: ") and "\n" not in str(err.value)
