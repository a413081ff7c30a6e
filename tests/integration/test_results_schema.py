"""results.json of a real (tiny) run follows the typed schema and every key is documented in the README."""

import re
from pathlib import Path

import pytest

import speechfl.experiment.run as run_module
from speechfl.experiment.results import SCHEMA_VERSION, RunResults
from speechfl.experiment.run import run_federated
from speechfl.io import read_json
from tests.integration.helpers import FED_HPARAMS, fed_hparams

README = Path(__file__).resolve().parents[2] / "README.md"
BACKDOOR = "--malicious={count: 1, data_attack: {name: audio_backdoor, target_text: OPEN THE DOOR, fraction: 0.5}}"


def schema_table() -> str:
    text = README.read_text()
    start = text.index("## results.json schema")
    return text[start:text.index("\n## ", start + 1)]


EDIT = "\nrounds: 99  # edited while the run trained\n"


@pytest.fixture(scope="module")
def backdoor_run(tiny_hparams_overrides, tmp_path_factory):
    """A real run from a copy of the recipe's hparams file, which is edited while the run trains."""
    out = tmp_path_factory.mktemp("schema_run")
    hparams_file = out.parent / f"{out.name}.yaml"
    hparams_file.write_text(FED_HPARAMS.read_text())
    argv = ["--rounds=1", "--clients_per_round=2", "--eval_every=0", "--augment=null", BACKDOOR,
            "--client={local_epochs: null, local_steps: 1, batch_size: 8, optimizer: {name: sgd, lr: 0.1}}"]
    hp = fed_hparams(tiny_hparams_overrides, out, *argv)
    real_engine = run_module.get_engine

    def editing_engine(name):
        def run(setup, folder, progress):
            with hparams_file.open("a") as f:  # the user edits the file while the run trains
                f.write(EDIT)
            return real_engine(name)(setup, folder, progress)
        return run

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_module, "get_engine", editing_engine)
        returned = run_federated(hp, str(hparams_file), argv, progress=False)
    assert hparams_file.read_text().endswith(EDIT)  # the edit did happen during the run
    return returned, read_json(out / "results.json")


def test_config_records_the_hparams_file_as_it_was_run(backdoor_run):
    """results.json keeps the text read when the run started, not the file edited during training."""
    _, written = backdoor_run
    assert written["config"]["hparams_text"] == FED_HPARAMS.read_text()
    assert EDIT not in written["config"]["hparams_text"]
    assert written["config"]["argv"][:2] == ["--rounds=1", "--clients_per_round=2"]


def test_written_document_parses_and_round_trips(backdoor_run):
    returned, written = backdoor_run
    assert written == returned
    parsed = RunResults.from_dict(written)
    assert parsed.to_dict() == written  # the writer and the reader are the same dataclasses
    assert written["schema"] == SCHEMA_VERSION == 2 and written["kind"] == "federated"
    assert written["engine"] == "inprocess"
    bd = parsed.attack.backdoor_success
    assert 0.0 <= bd.success_rate <= 1.0 and bd.n_triggered > 0 and bd.target_text == "OPEN THE DOOR"
    assert parsed.attack.malicious_clients == parsed.partition.malicious and len(parsed.partition.malicious) == 1
    assert parsed.communication.bytes_up_total == sum(r["bytes_up"] for r in written["rounds"])


def test_every_key_of_a_real_run_is_documented_in_the_readme(backdoor_run):
    _, written = backdoor_run
    doc = schema_table()
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)", doc))  # `key` ...
    documented |= set(re.findall(r"[{,]\s*([a-z_][a-z0-9_]*)", doc))  # ... and keys inside {a, b}
    typed = ("config", "model", "communication", "partition", "attack", "privacy_budget")
    keys = set(written) | {k for s in typed if isinstance(written.get(s), dict) for k in written[s]}
    keys |= set(written["test"]) | set(written["attack"]["backdoor_success"])
    assert sorted(keys - documented) == []


def test_unknown_or_drifted_sections_are_refused_with_the_key(backdoor_run):
    from speechfl.experiment.results import ResultsError

    _, written = backdoor_run
    with pytest.raises(ResultsError, match=r"results.json: unknown key\(s\) \['atack'\]"):
        RunResults.from_dict({**written, "atack": {}})
    with pytest.raises(ResultsError, match=r"attack.backdoor_success: must be a mapping, got float"):
        RunResults.from_dict({**written, "attack": {**written["attack"], "backdoor_success": 0.5}})
    with pytest.raises(ResultsError, match=r"schema: 9 is not readable"):
        RunResults.from_dict({**written, "schema": 9})


def test_an_engine_adds_its_own_section_and_only_known_ones(tiny_hparams_overrides, tmp_path, monkeypatch):
    """A registered engine returning (history, params, {"decentralized": ...}) gets kind 'decentralized'."""
    from speechfl.config import Engine
    from speechfl.federated import engines

    monkeypatch.setattr(engines.ENGINES, "_entries", {k: v for k, v in engines.ENGINES._entries.items()
                                                      if k != "gossip"})
    monkeypatch.setitem(engines.ENGINE_MODULES, Engine.GOSSIP, "speechfl.federated.engines")
    extra = {"decentralized": {"topology": "ring"}}

    @engines.register_engine("gossip")
    def fake_gossip(setup, out, progress):
        history, flat = engines.run_inprocess(setup, out, progress)
        return history, flat, extra

    argv = ["--engine=gossip", "--rounds=1", "--clients_per_round=2", "--eval_every=0",
            "--client={local_epochs: null, local_steps: 1, batch_size: 8}"]
    res = run_federated(fed_hparams(tiny_hparams_overrides, tmp_path / "a", *argv), str(FED_HPARAMS), argv,
                        progress=False)
    assert res["kind"] == "decentralized" and res["engine"] == "gossip" and res["decentralized"] == {"topology": "ring"}
    assert RunResults.from_dict(res).to_dict() == res
    extra.clear()
    extra["gossip"] = {}
    with pytest.raises(ValueError, match=r"unknown results section\(s\) \['gossip'\]; engines may add"):
        run_federated(fed_hparams(tiny_hparams_overrides, tmp_path / "b", *argv), str(FED_HPARAMS), argv,
                      progress=False)
