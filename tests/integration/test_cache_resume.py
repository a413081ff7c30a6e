"""The feature cache survives training untouched; resume is bit-identical and refuses another configuration.

A client whose data leaves a last batch of ONE utterance used to hand SpecAugment a tensor that shared
memory with the cached features (a padded batch of one is the cached tensor itself), so masks were
written into the cache and each round trained on progressively zeroed features.
"""

import pytest
import torch

from speechfl.data.dataset import read_manifest
from speechfl.data.features import load_audio
from speechfl.federated.checkpoint import CheckpointError
from speechfl.federated.client import ClientConfig, local_train
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import CHECKPOINT, Simulation
from tests.integration.helpers import fed_hparams, straight_and_resumed

# the tiny corpus has 12 utterances per speaker: batches of 11 leave a remainder of exactly 1
REMAINDER_ONE = "--client={local_epochs: 1, local_steps: null, batch_size: 11, optimizer: {name: adam, lr: 0.001}}"
STRONG_AUGMENT = ("--augment=!new:speechfl.data.augment.SpecAugment {time_drops: 4, time_width: 30, "
                  "freq_drops: 4, freq_width: 30}")


def _features(setup, ids):
    rows = {r["ID"]: r for r in read_manifest(setup.corpus.manifests["train"])}
    return {u: setup.corpus.cache.get(rows[u]["wav"]).clone() for u in ids}


def _recomputed(setup, ids):
    """The oracle: features extracted again from the audio, bypassing every cache."""
    rows = {r["ID"]: r for r in read_manifest(setup.corpus.manifests["train"])}
    cache = setup.corpus.cache
    return {u: cache.extractor(load_audio(rows[u]["wav"], cache.config.sample_rate)) for u in ids}


def test_cache_is_unchanged_after_local_training_with_a_batch_of_one(tiny_hparams_overrides, tmp_path):
    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "run", REMAINDER_ONE, STRONG_AUGMENT, "--rounds=1")
    setup = build_setup(hp, progress=False)
    cid = setup.partition.client_ids[0]
    ids = setup.partition.utterances[cid]
    assert len(ids) % 11 == 1
    before = _features(setup, ids)
    cfg = ClientConfig(**dict(hp["client"]))
    for round_ in (1, 2, 3):
        local_train(setup.model, setup.layout, setup.init_flat, setup.client_dataset(cid), cfg, client_id=cid,
                    seed=setup.seed, round_=round_, augment=hp["augment"])
    after = _features(setup, ids)
    changed = [u for u in ids if not torch.equal(before[u], after[u])]
    assert changed == []
    oracle = _recomputed(setup, ids)
    assert all(torch.equal(after[u], oracle[u]) for u in ids)


def test_kill_and_resume_is_bit_identical_with_a_remainder_of_one(tiny_hparams_overrides, tmp_path):
    extra = (REMAINDER_ONE, STRONG_AUGMENT, "--rounds=3", "--clients_per_round=1.0", "--eval_every=0")
    # "killed" after round 2: the resumed Simulation has a fresh (cold) feature cache, as a new process would
    full, resumed = straight_and_resumed(tiny_hparams_overrides, tmp_path, 2, *extra)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert torch.equal(resumed.server.global_flat, full.server.global_flat)
    # the checkpoint is tensors and plain containers: it loads with weights_only=True
    state = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)
    assert state["round"] == 3 and "config_fingerprint" in state


def test_changed_configuration_is_refused_then_fresh_restarts(tiny_hparams_overrides, tmp_path):
    base = ("--rounds=2", "--clients_per_round=2", "--eval_every=0", "--augment=null")
    sim = Simulation(build_setup(fed_hparams(tiny_hparams_overrides, tmp_path, *base), progress=False), tmp_path,
                     progress=False)
    sim.run_round()
    changed = fed_hparams(tiny_hparams_overrides, tmp_path, *base, "--seed=7",
                          "--server_optimizer={name: fedavgm, lr: 1.0, momentum: 0.9}")
    with pytest.raises(CheckpointError, match=r"differing hparams: seed, server_optimizer\);.*--resume=fresh"):
        Simulation(build_setup(changed, progress=False), tmp_path, progress=False)
    bigger = fed_hparams(tiny_hparams_overrides, tmp_path, *base, "--hidden=64")
    with pytest.raises(CheckpointError, match=r"differing hparams: hidden, model\);"):
        Simulation(build_setup(bigger, progress=False), tmp_path, progress=False)
    # how evaluation batches are sized is not part of the training configuration: this resumes
    same = fed_hparams(tiny_hparams_overrides, tmp_path, *base, "--eval_batch_size=3")
    assert Simulation(build_setup(same, progress=False), tmp_path, progress=False).round == 1
    fresh = dict(fed_hparams(tiny_hparams_overrides, tmp_path, *base, "--seed=7",
                             "--server_optimizer={name: fedavgm, lr: 1.0, momentum: 0.9}"), resume="fresh")
    restarted = Simulation(build_setup(fresh, progress=False), tmp_path, progress=False)
    assert restarted.round == 0 and restarted.history == []
    assert (tmp_path / "superseded-1" / CHECKPOINT).is_file() and not (tmp_path / CHECKPOINT).exists()
    restarted.run_round()
    changed = fed_hparams(tiny_hparams_overrides, tmp_path, *base, "--seed=7",
                          "--server_optimizer={name: fedavgm, lr: 1.0, momentum: 0.9}")
    again = Simulation(build_setup(changed, progress=False), tmp_path, progress=False)
    assert again.round == 1  # the new run's checkpoint now matches the new configuration



def test_speechfl_train_on_a_truncated_checkpoint_is_one_line(tiny_hparams_overrides, tmp_path, capsys):
    from speechfl.cli import main
    from tests.integration.helpers import FED_HPARAMS, TINY_MODEL

    out = tmp_path / "run"
    out.mkdir()
    (out / CHECKPOINT).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(SystemExit):
        main(["train", str(FED_HPARAMS), *tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL,
              "--rounds=1"])
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err = [line for line in stderr.splitlines() if line.startswith("speechfl")]  # the rest are progress bars
    assert len(err) == 1 and err[0].startswith("speechfl train: error: ")
    assert f"{out / CHECKPOINT} is truncated or corrupt" in err[0] and "--resume=fresh" in err[0]
