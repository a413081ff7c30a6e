"""`speechfl train`: --help lists the hparams keys; every error is one line, the traceback only with --debug."""

import pytest

from speechfl.cli import error_line, main
from speechfl.config import ConfigError
from tests.integration.helpers import FED_HPARAMS


def run(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out = capsys.readouterr()
    return info.value.code, out.out, out.err


def test_train_help_says_keys_are_overridable_and_lists_them(capsys):
    main(["train", str(FED_HPARAMS), "--help"])
    out = capsys.readouterr().out
    assert "--key=value" in out and "replaces the" in out
    for key in ("--rounds", "--clients_per_round", "--aggregator", "--uplink", "--dp_user", "--model"):
        assert f"\n  {key} " in out
    assert "__set_seed" not in out
    main(["train", "--help"])
    assert "speechfl train HPARAMS.yaml --help" in capsys.readouterr().out


@pytest.mark.parametrize("override,message", [
    ("--rounds=two", "rounds: must be an integer >= 1, got 'two'"),
    ("--rounds=0", "rounds: must be an integer >= 1, got 0"),
    ("--engine=flower", "engine: a real Flower deployment is started with `flwr run`"),
    ("--roundz=3", "unknown override key(s) ['roundz']"),
])
def test_train_errors_are_one_line_before_anything_is_generated(tmp_path, capsys, override, message):
    corpus = tmp_path / "corpus"
    code, out, err = run(["train", str(FED_HPARAMS), f"--data_folder={corpus}",
                          f"--output_folder={tmp_path / 'out'}", override], capsys)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("speechfl train: error: ") and message in err
    assert "Traceback" not in err and not corpus.exists()


def test_missing_hparams_file_is_one_line(tmp_path, capsys):
    code, _, err = run(["train", str(tmp_path / "nope.yaml")], capsys)
    assert code == 1 and err == f"speechfl train: error: hparams file {tmp_path / 'nope.yaml'} does not exist\n"


def test_debug_shows_the_real_exception(tmp_path):
    with pytest.raises(ConfigError, match="rounds"):
        main(["train", str(FED_HPARAMS), f"--data_folder={tmp_path / 'c'}", f"--output_folder={tmp_path / 'o'}",
              "--rounds=-1", "--debug"])


def test_error_line_flattens_and_names_likely_bugs():
    assert error_line(ValueError("bad\n  value")) == "bad value"
    assert error_line(KeyError("seed")) == "missing key 'seed'"
    assert error_line(RuntimeError("boom")) == "RuntimeError: boom (rerun with --debug for the traceback)"


@pytest.mark.parametrize("flag,value,message", [("--jobs", "0", "expected a positive integer, got 0"),
                                                ("--jobs", "two", "expected a positive integer, got 'two'"),
                                                ("--threads", "-1", "expected a positive integer, got -1")])
def test_sweep_refuses_non_positive_jobs_and_threads(flag, value, message, capsys, tmp_path):
    code, _, err = run(["sweep", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "out"), flag, value], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "out").exists()
