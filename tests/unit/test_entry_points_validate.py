"""Every entry point that trains validates its configuration and output folder before the corpus (issue 13 §3).

``run_federated`` is covered by test_config.py / test_refusals_before_corpus.py; here the Flower
deployment (``run_deployment``, the ServerApp on a SuperLink) and the centralized CTC recipe. The
oracle is that ``prepare_corpus`` is never called and the corpus folder never created.
"""

import importlib.util

import pytest

import speechfl.federated.setup as setup_stage
from speechfl.config import ConfigError
from tests.integration.helpers import CTC_HPARAMS, FED_HPARAMS

UNWRITABLE = "/proc/speechfl_not_writable"


def _no_corpus(*args, **kwargs):
    raise AssertionError("prepare_corpus was called before the refusal")


@pytest.mark.parametrize("overrides,message", [
    (f"--output_folder={UNWRITABLE}", f"output_folder: {UNWRITABLE} is not writable"),
    ("--secagg={} --aggregator='{name: trimmed_mean, f: 1}'", "secagg: .*individual client updates"),
    ("--rounds=0", "rounds: must be an integer >= 1, got 0"),
])
def test_flower_deployment_refuses_before_the_corpus(tmp_path, monkeypatch, overrides, message):
    pytest.importorskip("flwr")
    from speechfl.federated.flower.server_app import run_deployment

    monkeypatch.setattr(setup_stage, "prepare_corpus", _no_corpus)
    corpus = tmp_path / "corpus"
    run_config = {"hparams-file": str(FED_HPARAMS),
                  "overrides": f"--data_folder={corpus} --output_folder={tmp_path / 'out'} {overrides}"}
    with pytest.raises(ConfigError, match=message):
        run_deployment(None, run_config)  # refused before the grid (the SuperNodes) is used
    assert not corpus.exists()


def test_ctc_recipe_refuses_an_unwritable_output_folder_before_the_corpus(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("ctc_train_validate", CTC_HPARAMS.parents[1] / "train.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    monkeypatch.setattr(recipe, "prepare_corpus", _no_corpus)
    corpus = tmp_path / "corpus"
    with pytest.raises(ConfigError, match=f"output_folder: {UNWRITABLE} is not writable"):
        recipe.main([str(CTC_HPARAMS), f"--data_folder={corpus}", f"--output_folder={UNWRITABLE}"])
    assert not corpus.exists()


def test_resolved_output_folder_equals_what_loading_builds(tmp_path):
    from speechfl.config.output import resolved_output_folder
    from speechfl.experiment.hparams import load_hparams

    overrides = [f"--output_folder=!ref {tmp_path}/run_<seed>", "--seed=5", f"--data_folder={tmp_path / 'c'}"]
    assert resolved_output_folder(CTC_HPARAMS, overrides) == tmp_path / "run_5"
    assert resolved_output_folder(CTC_HPARAMS, f"{{seed: 6, output_folder: {tmp_path}/o}}") == tmp_path / "o"
    assert str(resolved_output_folder(CTC_HPARAMS, overrides)) == load_hparams(CTC_HPARAMS, overrides)["output_folder"]
