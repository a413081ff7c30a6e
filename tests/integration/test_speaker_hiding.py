"""A bottleneck attached by hparams lowers a *freshly trained* probe's speaker accuracy while the ASR loss falls."""

import types

import pytest

import torch

from speechfl.data.dataset import read_manifest
from speechfl.experiment.evaluate import extract
from speechfl.experiment.hparams import load_hparams
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from speechfl.privacy.bottleneck import Bottleneck
from tests.integration.helpers import RECIPES, TINY_MODEL, fresh_probe_top1

BASE = RECIPES / "federated" / "hparams" / "hiding_none.yaml"

COMMON = ["--engine=centralized", "--rounds=5", "--eval_every=0", "--augment=null", "--dropout=0.0",
          "--client={local_epochs: 2, batch_size: 8, optimizer: {name: adam, lr: 0.003}}"]


def run_and_probe(overrides, out, *extra):
    hparams = load_hparams(BASE, [*overrides, f"--output_folder={out}", *TINY_MODEL, *COMMON, *extra])
    setup = build_setup(hparams, progress=False)
    sim = Simulation(setup, out, progress=False)
    history = sim.run()
    model = sim.global_model()
    ids = [r["ID"] for r in read_manifest(setup.corpus.manifests["train"])]
    reps, _ = extract(model, setup.corpus.manifests["train"], ids, setup.corpus)
    top1 = fresh_probe_top1(reps)
    # ``speechfl evaluate`` rebuilds the model from the run's hparams: it must see the same representation
    from speechfl.experiment.evaluate import _build_model

    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.bottleneck = None  # (hparams["model"] is this very object: rebuild it bare)
    train_rows = read_manifest(setup.corpus.manifests["train"])
    rebuilt = _build_model(types.SimpleNamespace(hparams=hparams), train_rows, "cpu")
    rebuilt.load_state_dict(state)
    again, _ = extract(rebuilt, setup.corpus.manifests["train"], ids, setup.corpus)
    assert all(torch.equal(a, b) for a, b in zip(again.frames, reps.frames))
    return top1, [h["train_loss"] for h in history], model


def test_vq_bottleneck_lowers_fresh_probe_accuracy_while_asr_learns(tiny_hparams_overrides, tmp_path, one_thread):
    plain, plain_losses, _ = run_and_probe(tiny_hparams_overrides, tmp_path / "plain")
    hidden, losses, model = run_and_probe(tiny_hparams_overrides, tmp_path / "vq",
                                          "--bottleneck=[instance_norm, {name: vq, codes: 2}]")
    print("fresh probe top-1: plain", plain, "vq-2", hidden, "train CTC per round", losses, "plain", plain_losses)
    assert isinstance(model.bottleneck, Bottleneck)  # attached by hparams, and what extract() saw
    assert plain > 0.6
    assert hidden < plain - 0.25
    # the ASR still learns through the bottleneck, about as far as the plain model in this budget
    assert all(b < a for a, b in zip(losses, losses[1:])) and losses[-1] < losses[0] - 0.15
    assert losses[-1] < 1.05 * plain_losses[-1]


def test_fedaws_recipe_wraps_the_server_step_and_keeps_rows_per_speaker(tiny_hparams_overrides, tmp_path):
    from speechfl.privacy.fedaws import ClassEmbeddingHead, SpreadOutServer

    path = RECIPES / "federated" / "hparams" / "hiding_fedaws.yaml"
    hparams = load_hparams(path, [*tiny_hparams_overrides, f"--output_folder={tmp_path}", *TINY_MODEL])
    setup = build_setup(hparams, progress=False)
    (head,) = setup.model.adversary.heads
    assert isinstance(head, ClassEmbeddingHead) and head.negatives == "own_class"
    assert head.classes.shape[0] == len(setup.label_maps["speaker"])  # one row (embedding) per training speaker
    assert isinstance(setup.server_optimizer, SpreadOutServer) and setup.server_optimizer.slices
    with torch.no_grad():  # nearly collapsed rows (exact collapse is a saddle of R): the step must separate them
        head.classes.copy_(1e-3 * torch.randn(head.classes.shape, generator=torch.Generator().manual_seed(0)))
    from speechfl.federated.update import flatten_params

    x = flatten_params(setup.model, setup.layout)
    new = setup.server_optimizer.step(x, torch.zeros_like(x))
    off, (c, e) = setup.server_optimizer.slices[0]
    before, rows = x[off:off + c * e].view(c, e), new[off:off + c * e].view(c, e)
    assert torch.equal(new[:off], x[:off]) and torch.equal(new[off + c * e:], x[off + c * e:])
    min_dist = lambda w: float(torch.cdist(w, w).add(torch.eye(c) * 1e9).min())  # noqa: E731
    assert min_dist(rows) > 10 * min_dist(before)


def test_public_pool_negatives_train_resume_and_rebuild(tiny_hparams_overrides, tmp_path, one_thread):
    """A federated speaker adversary with a public pool: N + P classes, pool draws in every local step,
    bit-identical resume, and ``speechfl evaluate``'s rebuilt model has the same layout."""
    import math

    from speechfl.experiment.evaluate import _build_model
    from tests.integration.helpers import straight_and_resumed

    pool = (f"{{data_folder: {tmp_path / 'pool'}, split: train, speakers: 2, per_speaker: 3, per_step: 2, "
            "synthetic: {speakers: 6, utterances: 3, seed: 5}}")
    adv = (f"--adversary={{target: speaker, heads: [linear, mlp], weight: 0.3, objective: confusion, "
           f"public_pool: {pool}}}")
    extra = ["--rounds=2", "--clients_per_round=2", "--eval_every=0",
             "--client={local_epochs: null, local_steps: 2, batch_size: 4}", adv]
    full, resumed = straight_and_resumed(tiny_hparams_overrides, tmp_path, 1, *extra)
    assert torch.equal(resumed.server.global_flat, full.server.global_flat)
    setup = full.setup
    n_train = len(setup.label_maps["speaker"])
    assert setup.public_pool is not None and setup.public_pool.speakers == sorted(setup.public_pool.speakers)
    assert set(setup.public_pool.labels) == {n_train, n_train + 1}  # the pool's classes follow the training speakers
    assert setup.model.adversary.n_classes == n_train + 2
    assert len(full.history) == 2
    assert all(r["adversary_uniform_ce"] == pytest.approx(math.log(n_train + 2)) for r in full.history)
    train_rows = read_manifest(setup.corpus.manifests["train"])
    rebuilt = _build_model(types.SimpleNamespace(hparams=setup.hparams), train_rows, "cpu")
    rebuilt.load_state_dict(full.global_model().state_dict())  # same layout: the head has N + P rows


def test_vq_codebook_is_fit_by_the_server_on_public_utterances_after_the_warmup(tiny_hparams_overrides, tmp_path,
                                                                                 one_thread):
    """``vq.init.public_pool``: at the first round starting at or after the warm-up, the global codebook becomes
    k-means of the public utterances' representations (recomputed here as the oracle), once; resume is
    bit-identical across it."""
    from speechfl.privacy.bottleneck import kmeans
    from speechfl.privacy.public_pool import load_public_pool
    from tests.integration.helpers import straight_and_resumed

    pool = (f"{{data_folder: {tmp_path / 'pool'}, split: train, speakers: 2, per_speaker: 3, "
            "synthetic: {speakers: 6, utterances: 3, seed: 5}}")
    bn = f"--bottleneck=[instance_norm, {{name: vq, codes: 4, warmup_steps: 2, init: {{public_pool: {pool}, iterations: 5}}}}]"
    extra = ["--rounds=3", "--clients_per_round=2", "--eval_every=0",
             "--client={local_epochs: null, local_steps: 2, batch_size: 4}", bn]
    full, resumed = straight_and_resumed(tiny_hparams_overrides, tmp_path, 1, *extra)
    assert torch.equal(resumed.server.global_flat, full.server.global_flat)
    assert [r.get("vq_codebook_fit") for r in full.history] == [None, ["bottleneck.stages.1.codebook"], None]
    assert full.vq_initialised == {"bottleneck.stages.1.codebook": 2}
    # oracle: the global model after round 1, its pool representations through instance_norm, then k-means
    from speechfl.federated.setup import build_setup
    from speechfl.federated.simulation import Simulation
    from tests.integration.helpers import fed_hparams

    one = Simulation(build_setup(fed_hparams(tiny_hparams_overrides, tmp_path / "c", *extra), progress=False),
                     tmp_path / "c", progress=False)
    one.run_round()
    model = one.global_model()
    setup = one.setup
    feats = load_public_pool({"data_folder": str(tmp_path / "pool"), "split": "train", "speakers": 2,
                              "per_speaker": 3, "per_step": 4, "synthetic": None}, cache=setup.corpus.cache,
                             save_folder=tmp_path / "oracle", first_label=0).feats
    model.eval()
    with torch.no_grad():
        frames = []
        for f in feats:
            reps, lengths = model.encode_frames(f.unsqueeze(0), torch.ones(1))
            frames.append(model.bottleneck.stages[0](reps, torch.ones(1, reps.shape[1], dtype=torch.bool))[0])
    want = kmeans(torch.cat(frames), 4, 5, seed=setup.seed + 2)
    assert one._fit_codebooks(2) == ["bottleneck.stages.1.codebook"]  # what round 2 does before its clients train
    got = one.server.global_flat[setup.layout.slices()["bottleneck.stages.1.codebook"]].view(1, 4, -1)[0]
    assert torch.allclose(got, want, atol=1e-4)
    assert one._fit_codebooks(3) == []  # once


def test_noisy_whitened_bottleneck_resumes_bit_identically_and_evaluates_the_same_twice(tiny_hparams_overrides,
                                                                                         tmp_path):
    from tests.integration.helpers import straight_and_resumed

    extra = ("--rounds=3", "--clients_per_round=2", "--eval_every=0",
             "--bottleneck=[{name: projection, dim: 8, whiten: true, noise: 0.5}]")
    full, resumed = straight_and_resumed(tiny_hparams_overrides, tmp_path, 1, *extra)  # noise drawn in every round
    assert torch.equal(resumed.server.global_flat, full.server.global_flat)
    model = full.global_model().eval()
    manifest, corpus = full.setup.corpus.manifests["train"], full.setup.corpus
    ids = [r["ID"] for r in read_manifest(manifest)][:6]
    first, _ = extract(model, manifest, ids, corpus)
    second, _ = extract(model, manifest, ids, corpus)
    assert all(torch.equal(a, b) for a, b in zip(first.frames, second.frames))  # inference noise: per utterance
    model.bottleneck.stages[0].noise = 0.0
    clean, _ = extract(model, manifest, ids, corpus)
    assert all(not torch.allclose(a, b) for a, b in zip(first.frames, clean.frames))  # and it is there
