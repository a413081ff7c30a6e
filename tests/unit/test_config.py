"""The typed experiment configuration: every bad value is refused, naming its key, before any side effect."""

import pytest

from speechfl.config import (ConfigError, Engine, ExperimentConfig, build_components, check_against_partition,
                             check_output_writable)
from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import FED_HPARAMS

BASE = {"seed": 1, "rounds": 2, "output_folder": "out",
        "client": {"local_epochs": None, "local_steps": 1, "batch_size": 4}}


def cfg(**changes):
    return ExperimentConfig.from_hparams({**BASE, **changes})


def test_defaults_are_typed():
    c = cfg()
    assert c.engine is Engine.INPROCESS and c.rounds == 2 and c.clients_per_round == 1.0 and c.eval_every == 1
    assert c.client.local_steps == 1 and c.client.keep_optimizer_state is False
    assert cfg(engine="centralized").client.keep_optimizer_state is True  # pooled reference keeps Adam state
    with pytest.raises(Exception):
        c.rounds = 3  # frozen


@pytest.mark.parametrize("value", [0, -1, "two", 2.0, True, None])
def test_rounds_must_be_a_positive_integer(value):
    with pytest.raises(ConfigError, match=r"^rounds: must be an integer >= 1") as info:
        cfg(rounds=value)
    assert info.value.key == "rounds"


@pytest.mark.parametrize("key,value,message", [
    ("clients_per_round", 0, "clients_per_round: a count must be >= 1"),
    ("clients_per_round", 1.5, r"clients_per_round: a fraction must be in \(0, 1\]"),
    ("clients_per_round", "all", "clients_per_round: must be a count"),
    ("clients_per_round", {"count": 4, "stratify": "age"}, r"clients_per_round.stratify: must be one of \['gender'"),
    ("clients_per_round", {"count": 0.5, "stratify": "gender"}, "clients_per_round.count: stratified sampling needs a count"),
    ("clients_per_round", {"count": 4, "by": "gender"}, r"clients_per_round: a mapping takes exactly \['count', 'stratify'\]"),
    ("eval_every", -1, "eval_every: must be an integer >= 0"),
    ("seed", "x", "seed: must be an integer"),
    ("device", "tpu", "device: must be 'cpu' or 'cuda"),
    ("record_updates", [3], r"record_updates: must be a list of round numbers in 1..2"),
    ("engine", "warp", r"engine: unknown engine 'warp'; valid engines: inprocess, centralized, flower-sim"),
    ("engine", "flower", "engine: a real Flower deployment is started with `flwr run`"),
    ("client", {"batch_size": "eight"}, r"client.batch_size: must be an integer, got 'eight'"),
    ("client", {"local_step": 1}, r"client: unknown key\(s\) \['local_step'\]"),
    ("client", {"local_steps": 1, "local_epochs": 1}, "client: set exactly one of local_epochs and local_steps"),
    ("secagg", "yes", "secagg: must be a mapping"),
    ("dp_user", 1.0, "dp_user: must be a mapping or null"),
])
def test_bad_values_name_their_key(key, value, message):
    with pytest.raises(ConfigError, match=message):
        cfg(**{key: value})


@pytest.mark.parametrize("key,spec,message", [
    ("aggregator", "medain", r"aggregator: unknown aggregator 'medain'; valid aggregators: .*median"),
    ("aggregator", {"name": "krum", "g": 1}, r"aggregator: unknown parameter\(s\) 'g'"),
    ("uplink", {"name": "topk", "fraction": 0.1, "bits": 3}, r"uplink: unknown parameter\(s\) 'bits'"),
    ("server_optimizer", "fedsgd", r"server_optimizer: unknown server optimizer 'fedsgd'"),
])
def test_unknown_component_names_fail_when_components_are_built(key, spec, message):
    with pytest.raises(ConfigError, match=message):
        build_components(cfg(**{key: spec}))


def test_multi_krum_m_larger_than_the_round_is_refused_at_setup():
    # A count is known before the corpus: refused at once.
    with pytest.raises(ConfigError, match=r"aggregator: 'multi_krum' needs at least 5 updates per round, but "
                                          r"clients_per_round=3 samples 3"):
        build_components(cfg(aggregator={"name": "multi_krum", "f": 0, "m": 5}, clients_per_round=3))
    # A fraction needs the number of clients: refused right after the partition, before any client trains.
    c = cfg(aggregator={"name": "multi_krum", "f": 0, "m": 5}, clients_per_round=0.5)
    comps = build_components(c)
    assert check_against_partition(c, comps, n_clients=10) == 5
    with pytest.raises(ConfigError, match=r"samples 4 of 8 clients"):
        check_against_partition(c, comps, n_clients=8)


def test_clients_per_round_larger_than_the_partition_is_refused():
    c = cfg(clients_per_round=7)
    with pytest.raises(ConfigError, match="clients_per_round: 7 clients per round but the partition has 6"):
        check_against_partition(c, build_components(c), n_clients=6)


def test_output_folder_must_be_writable(tmp_path):
    assert check_output_writable(tmp_path / "a" / "b").is_dir()
    assert list((tmp_path / "a" / "b").iterdir()) == []  # the probe is removed
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"output_folder: .*file exists and is not a folder"):
        check_output_writable(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"output_folder: .*file/sub is not writable"):
        check_output_writable(tmp_path / "file" / "sub")


@pytest.mark.parametrize("override,message", [
    ("--rounds=0", "rounds: must be an integer >= 1, got 0"),
    ("--rounds=-1", "rounds: must be an integer >= 1, got -1"),
    ("--rounds=two", "rounds: must be an integer >= 1, got 'two'"),
    ("--aggregator={name: multi_krum, f: 0, m: 9}", "aggregator: 'multi_krum' needs at least 9 updates"),
    ("--output_folder=/proc/speechfl_not_writable", "output_folder: /proc/speechfl_not_writable is not writable"),
])
def test_run_refuses_before_the_corpus_is_generated(tmp_path, override, message):
    corpus = tmp_path / "corpus"
    hp = load_hparams(FED_HPARAMS, [f"--data_folder={corpus}", f"--output_folder={tmp_path / 'out'}",
                                    "--clients_per_round=4", override])
    with pytest.raises(ConfigError, match=message):
        run_federated(hp, str(FED_HPARAMS), [override], progress=False)
    assert not corpus.exists()  # nothing was generated


def test_stratified_sampling_is_parsed_and_refused_where_sampling_must_be_uniform():
    c = cfg(clients_per_round={"count": 4, "stratify": "gender"})
    assert c.clients_per_round == 4 and c.stratify == "gender" and cfg().stratify is None
    build_components(c)  # FedAvg: fine
    for changes, message in [({"engine": "centralized"}, "engine centralized has one pooled client"),
                             ({"dp_user": {"clip": 1.0, "noise_multiplier": 1.0}}, "dp_user's accountant assumes"),
                             ({"server_optimizer": "scaffold", "client": {"local_epochs": None, "local_steps": 2,
                               "batch_size": 4, "optimizer": {"name": "sgd", "lr": 0.1}}}, "uniform participation")]:
        with pytest.raises(ConfigError, match=r"clients_per_round.stratify: .*" + message):
            build_components(cfg(clients_per_round={"count": 4, "stratify": "gender"}, **changes))
