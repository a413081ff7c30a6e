"""Every federated recipe hparams file runs one round in debug size on the tiny corpus.

A file whose aggregator needs more clients than the tiny corpus has (Krum with f=6 needs 15)
must fail at setup with a clear message, before any training.
"""

import math

import pytest

from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.results import RunResults
from speechfl.experiment.run import run_federated
from tests.integration.helpers import RECIPES, TINY_MODEL

FILES = sorted((RECIPES / "federated" / "hparams").glob("*.yaml"))
LIBRISPEECH_ONLY = {"fedavg.yaml", "fedadam.yaml"}  # need --data_folder; same keys as synthetic_fedavg


@pytest.mark.parametrize("path", [f for f in FILES if f.name not in LIBRISPEECH_ONLY], ids=lambda p: p.stem)
def test_recipe_runs_one_round_in_debug_size(path, tiny_hparams_overrides, tmp_path):
    # a bottleneck placed between encoder blocks needs the (tiny) conformer; every other recipe runs the small conv_rnn
    inner = "after_layer:" in path.read_text()
    model = ["--n_mels=40", "--dropout=0.0"] if inner else TINY_MODEL
    argv = [*tiny_hparams_overrides, f"--output_folder={tmp_path}", *model, "--rounds=1", "--eval_every=0"]
    hp = load_hparams(path, argv)
    agg = hp["aggregator"]
    if isinstance(agg, dict) and agg.get("f", 0) >= 2:
        with pytest.raises(ValueError, match="needs at least"):
            run_federated(hp, str(path), argv, progress=False)
        assert not [f for f in ("checkpoint.pt", "model.pt", "results.json") if (tmp_path / f).exists()]  # no training
        return
    res = run_federated(hp, str(path), argv, progress=False)
    if inner:  # the bottleneck sits where the recipe says
        assert hp["model"].split == hp["bottleneck"]["after_layer"]
    assert RunResults.from_dict(res).to_dict() == res  # every mechanism's sections follow the typed schema
    (r,) = res["rounds"]
    assert r["bytes_up"] > 0 and res["test"]["n_utts"] > 0
    if hp.get("dp_user"):
        assert r["epsilon"] > 0
    if hp.get("dp_sample"):
        assert r["epsilon_sample_max"] > 0
    if hp.get("adversary"):
        assert r["adversary_train_accuracy"] is not None
        # the heads' cross-entropy beside log C (C classes: exp of it is the class count)
        assert math.isfinite(r["adversary_ce"]) and r["adversary_ce"] > 0
        assert r["adversary_uniform_ce"] > 0 and abs(math.exp(r["adversary_uniform_ce"]) - round(math.exp(r["adversary_uniform_ce"]))) < 1e-6
    if hp.get("malicious"):
        assert res["attack"]["malicious_clients"]
    if hp.get("uplink"):
        assert res["communication"]["compression_ratio_up"] > 1.5


@pytest.mark.parametrize("name", sorted(LIBRISPEECH_ONLY))
def test_librispeech_files_share_the_synthetic_keys(name):
    import yaml

    class Loose(yaml.SafeLoader):
        pass

    Loose.add_multi_constructor("!", lambda loader, suffix, node: None)
    keys = lambda p: set(yaml.load(p.read_text(), Loader=Loose))  # noqa: E731
    assert keys(RECIPES / "federated" / "hparams" / name) == keys(RECIPES / "federated" / "hparams" /
                                                                  "synthetic_fedavg.yaml")
