"""The results.json section dataclasses: hand-built documents, round trips, refusals naming the key."""

import pytest
import torch

from speechfl.experiment.results import (CommunicationSection, ResultsError, RunResults, capture_config,
                                         centralized_results)

TEST = {"wer": 10.0, "cer": 5.0, "n_utts": 2, "by_group": {"gender": {"F": {"wer": 10.0, "cer": 5.0, "n_utts": 2}}},
        "by_speaker": {"s1": {"wer": 10.0, "cer": 5.0, "n_utts": 2}}}


def test_centralized_recipe_document(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("seed: 1\n")
    config = capture_config(str(f), ["--seed=2"])  # at the start of the run
    f.write_text("seed: 3\n")  # edited while the run trains: not what was run
    doc = centralized_results(config=config, test=TEST, model=torch.nn.Linear(3, 2),
                              seconds=2.0, train_seconds=1.5, history=[{"epoch": 1, "train_loss": 3.0}])
    assert doc["schema"] == 2 and doc["kind"] == "centralized"
    assert doc["model"] == {"n_params": 8, "class": "Linear"}  # 3*2 weights + 2 biases
    assert doc["config"]["argv"] == ["--seed=2"] and doc["config"]["overrides"] == {"seed": 2}
    assert doc["config"]["hparams_text"] == "seed: 1\n"
    assert "rounds" not in doc and "engine" not in doc and doc["epochs"][0]["epoch"] == 1
    assert RunResults.from_dict(doc).to_dict() == doc
    with pytest.raises(TypeError, match="captured at the start of the run"):
        centralized_results(config=str(f), test=TEST, model=torch.nn.Linear(3, 2), seconds=2.0, train_seconds=1.5)


def test_communication_totals_are_hand_computed():
    hist = [{"bytes_up": 100, "bytes_down": 0, "clients": ["a", "b"]}, {"bytes_up": 60, "bytes_down": 0,
                                                                        "clients": ["a"]}]
    c = CommunicationSection.from_history(hist, dim=10)
    assert (c.bytes_up_total, c.fp32_bytes_up_total) == (160, 120)  # 4 bytes * 10 * 3 updates
    assert c.compression_ratio_up == pytest.approx(0.75) and c.compression_ratio_down is None


def test_missing_and_unknown_keys_name_the_section(tmp_path):
    doc = {"schema": 2, "kind": "centralized", "seconds": 1.0, "test": TEST,
           "config": {"hparams_file": "x", "overrides": {}, "argv": [], "hparams_text": None},
           "model": {"n_params": 1, "class": "M"}}
    assert RunResults.from_dict(doc).test.wer == 10.0
    with pytest.raises(ResultsError, match=r"test: missing key\(s\) \['n_utts'\]"):
        RunResults.from_dict({**doc, "test": {k: v for k, v in TEST.items() if k != "n_utts"}})
    with pytest.raises(ResultsError, match=r"model: unknown key\(s\) \['size'\]"):
        RunResults.from_dict({**doc, "model": {"n_params": 1, "class": "M", "size": 3}})
    with pytest.raises(ResultsError, match="kind: must be one of"):
        RunResults.from_dict({**doc, "kind": "federate"})
