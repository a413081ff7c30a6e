"""Anonymization as a federated defense: the client data pipeline anonymizes before features; composes with attacks."""

import numpy as np
import pytest
import torch

from speechfl.anonymization.anonymizers import ANONYMIZERS
from speechfl.anonymization.defense import build_client_anonymizer, with_anonymizer
from speechfl.anonymization.mcadams import mcadams
from speechfl.data.dataset import DataTransforms, make_dataset, read_manifest
from speechfl.data.features import FeatureCache, FeatureConfig, load_audio
from speechfl.data.tokenizer import CharTokenizer
from speechfl.registry import RegistryError


class _AddOne:
    cache_tag = "plus-one"

    def __call__(self, wav):
        return wav + 1.0


def test_spec_validation_and_seed_default():
    assert build_client_anonymizer(None, seed=3) is None
    assert build_client_anonymizer("mcadams", seed=3).seed == 3
    assert build_client_anonymizer({"name": "vtln", "seed": 9}, seed=3).seed == 9
    with pytest.raises(RegistryError, match="valid anonymizers"):
        build_client_anonymizer("nope", seed=0)
    with pytest.raises(ValueError, match="changes duration"):
        build_client_anonymizer("speed", seed=0)


def test_anonymize_then_attack_order_and_text_kept():
    rows = [{"ID": "u1", "spk_id": "s1"}]
    attack = DataTransforms(audio=lambda uid: _AddOne(), text=lambda uid, t: t.lower())
    t = with_anonymizer({"name": "vtln", "per": "speaker"}, attack, rows=rows, seed=5, sample_rate=16000)
    wav = torch.randn(8000, dtype=torch.float64) * 0.1
    hook = t.audio("u1")
    expected = ANONYMIZERS.build("vtln", seed=5, per="speaker")(wav.numpy(), 16000, utt_id="u1", spk_id="s1") + 1.0
    np.testing.assert_allclose(hook(wav).numpy(), expected, atol=1e-9)
    assert hook.cache_tag.startswith("anon:vtln:") and hook.cache_tag.endswith("+plus-one")
    assert t.text("u1", "ABC") == "abc"
    clean = with_anonymizer("mcadams", None, rows=rows, seed=0, sample_rate=16000)
    assert clean.text is None and clean.audio("u1").cache_tag.startswith("anon:mcadams:")


def test_client_features_are_anonymized_and_cached_apart(tiny_corpus, tmp_path):
    from data_prep.librispeech import prepare_librispeech

    csv = prepare_librispeech(tiny_corpus, tmp_path / "m", ["train"], progress=False)["train"]
    rows = read_manifest(csv)[:2]
    cache = FeatureCache(FeatureConfig(n_mels=40))
    t = with_anonymizer({"name": "mcadams", "alpha_min": 0.7, "alpha_max": 0.7}, None, rows=rows, seed=0,
                        sample_rate=16000)
    ds = make_dataset(csv, CharTokenizer(), cache, transforms=t, ids=[r["ID"] for r in rows])
    anon = ds[0]["feats"]
    clean = cache.get(rows[0]["wav"])
    wav = load_audio(rows[0]["wav"])
    expected = cache.extractor(torch.from_numpy(mcadams(wav.double().numpy(), 16000, 0.7)).float())
    torch.testing.assert_close(anon, expected)
    assert anon.shape == clean.shape and not torch.allclose(anon, clean)


def test_federated_setup_applies_the_anonymize_key(tiny_hparams_overrides, tmp_path):
    from speechfl.federated.setup import build_setup
    from tests.integration.helpers import fed_hparams

    with pytest.raises(RegistryError, match="unknown anonymizer 'mcadam'"):
        build_setup(fed_hparams(tiny_hparams_overrides, tmp_path / "bad", "--anonymize=mcadam"), progress=False)
    setup = build_setup(fed_hparams(tiny_hparams_overrides, tmp_path / "a",
                                    "--anonymize={name: mcadams, per: speaker}"), progress=False)
    client = setup.partition.client_ids[0]
    item = setup.client_dataset(client)[0]
    row = next(r for r in setup.client_rows[client] if r["ID"] == item["id"])
    clean = setup.corpus.cache.get(row["wav"])
    assert item["feats"].shape == clean.shape and not torch.allclose(item["feats"], clean)
    plain = build_setup(fed_hparams(tiny_hparams_overrides, tmp_path / "p"), progress=False)
    torch.testing.assert_close(plain.client_dataset(client)[0]["feats"], clean)


def test_evaluate_attacks_what_anonymizing_clients_compute(tiny_hparams_overrides, tmp_path):
    """With the anonymize defense, evaluate's representation/Fbank attackers see the clients' anonymized view."""
    from speechfl.experiment.evaluate import extract, observed_transforms
    from speechfl.federated.setup import build_setup
    from tests.integration.helpers import fed_hparams

    hp = fed_hparams(tiny_hparams_overrides, tmp_path / "a", "--anonymize={name: mcadams, per: speaker}")
    setup = build_setup(hp, progress=False)
    client = setup.partition.client_ids[0]
    uid = setup.partition.utterances[client][0]
    rows = read_manifest(setup.corpus.manifests["train"])
    _, fbank = extract(setup.model, setup.corpus.manifests["train"], [uid], setup.corpus,
                       transforms=observed_transforms(hp, rows, setup.corpus))
    seen_in_training = next(item for item in setup.client_dataset(client) if item["id"] == uid)["feats"]
    torch.testing.assert_close(fbank.frames[0], seen_in_training)  # exactly what the client computed
    _, clean = extract(setup.model, setup.corpus.manifests["train"], [uid], setup.corpus)
    assert not torch.allclose(clean.frames[0], seen_in_training)
    plain = fed_hparams(tiny_hparams_overrides, tmp_path / "p")
    assert observed_transforms(plain, rows, setup.corpus) is None
