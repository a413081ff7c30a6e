"""prepare -> centralized CTC recipe on the tiny synthetic corpus: the model learns."""

import importlib.util
import json

import torch

from speechfl.data.dataset import make_dataset, make_loader
from speechfl.experiment.corpus import prepare_corpus
from speechfl.experiment.hparams import load_hparams
from speechfl.metrics.asr import pooled_rates, transcribe
from tests.integration.helpers import CTC_HPARAMS, TINY_MODEL


def load_recipe():
    spec = importlib.util.spec_from_file_location("ctc_train", CTC_HPARAMS.parents[1] / "train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_recipe_learns_train_cer_falls(tiny_hparams_overrides, tmp_path):
    out = tmp_path / "ctc"
    # Scoring the training split shows learning without a large held-out set.
    overrides = [*tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL, "--dropout=0.0", "--augment=null",
                 "--number_of_epochs=30", "--batch_size=8", "--lr=0.003", "--test_split=train"]
    hp = load_hparams(CTC_HPARAMS, overrides)
    corpus = prepare_corpus(hp, progress=False)
    torch.manual_seed(0)
    untrained = pooled_rates(transcribe(hp["model"], make_loader(
        make_dataset(corpus.manifests["test"], corpus.tokenizer, corpus.cache), 16, False), corpus.tokenizer))

    load_recipe().main([str(CTC_HPARAMS), *overrides])
    res = json.loads((out / "results.json").read_text())
    # an untrained CTC model emits near-garbage (how near depends on the encoder and features in the hparams)
    assert untrained["cer"] > 80, untrained["cer"]
    assert res["test"]["cer"] < min(60, untrained["cer"] - 25), (res["test"]["cer"], untrained["cer"])
    assert res["model"]["n_params"] > 0 and res["seconds"] > 0
    assert res["test"]["by_group"]["gender"].keys() == {"F", "M"}
    assert all(v["n_utts"] > 0 for v in res["test"]["by_speaker"].values())
    assert len(res["epochs"]) == 30 and res["epochs"][-1]["train_loss"] < res["epochs"][0]["train_loss"]
    # The finished CTC run is a run `speechfl evaluate` accepts (model.pt, initial_model.pt, test utterances);
    # its test split is the train split, so test utterances are deduplicated and only dev speakers are non-members.
    from speechfl.experiment.evaluate import evaluate_run

    ev = evaluate_run(out, attackers=["linear"], max_per_speaker=6, progress=False)
    p = ev["privacy"]
    assert p["representations"]["strongest"]["top1"] > 0 and p["data"]["n_duplicates"]["test"] > 0
    mia = p["reports"]["membership"]
    assert mia["utterance"]["calibrated"] is not None and mia["n_shared_speakers"] == 0
    assert "recorded" in p["notes"]["update_linkage"] and ev["fairness"]["gender"]["worst_group"] in {"F", "M"}
