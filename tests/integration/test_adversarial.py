"""Adversarial speaker-identity removal lowers a *freshly trained* probe's speaker accuracy."""

from speechfl.data.dataset import read_manifest
from speechfl.experiment.evaluate import extract
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from tests.integration.helpers import fed_hparams
from tests.integration.helpers import fresh_probe_top1 as probe_top1

# 80 mel bands (the recipe's default is now 40, for the Conformer): the conv + BiGRU this test pins learns
# speaker identity from the finer spectrum, which is what the adversary has to remove.
COMMON = ["--engine=centralized", "--rounds=6", "--eval_every=0", "--augment=null", "--dropout=0.0", "--n_mels=80",
          "--client={local_epochs: 2, batch_size: 8, optimizer: {name: adam, lr: 0.003}}"]


def fresh_probe_top1(overrides, out, *extra) -> float:
    setup = build_setup(fed_hparams(overrides, out, *COMMON, *extra), progress=False)
    sim = Simulation(setup, out, progress=False)
    sim.run()
    model = sim.global_model()
    ids = [r["ID"] for r in read_manifest(setup.corpus.manifests["train"])]
    reps, _ = extract(model, setup.corpus.manifests["train"], ids, setup.corpus)
    return probe_top1(reps), 1.0 / len(set(reps.spk_ids))  # the 4 training speakers


def test_adversary_lowers_fresh_probe_accuracy(tiny_hparams_overrides, tmp_path):
    plain, chance = fresh_probe_top1(tiny_hparams_overrides, tmp_path / "plain")
    adv, _ = fresh_probe_top1(
        tiny_hparams_overrides, tmp_path / "adv",
        "--adversary={target: speaker, heads: [mlp, linear], weight: 1.0, schedule: {kind: constant, lambda_max: 1.0}}")
    print("fresh probe top-1: plain", plain, "adversarial", adv, "chance", chance)
    assert plain > 0.6
    assert adv < plain - 0.25
