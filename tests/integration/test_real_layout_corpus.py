"""A corpus in LibriSpeech layout as real ones come: no dev split, 8 kHz and 44.1 kHz audio, accented
transcripts, a Kaldi spk2gender file instead of SPEAKERS.TXT, few speakers. The recipe runs unmodified."""

import shutil

import soundfile as sf
import torch
import torchaudio.functional as AF

from speechfl.data.dataset import read_manifest
from speechfl.federated.setup import build_setup
from speechfl.federated.simulation import Simulation
from tests.integration.helpers import fed_hparams


def _copy_resampled(src_split, dst_split, rate):
    for flac in sorted(src_split.rglob("*.flac")):
        wav, sr = sf.read(str(flac), dtype="float32")
        out = AF.resample(torch.from_numpy(wav), sr, rate).numpy()
        target = dst_split / flac.relative_to(src_split)
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(target.with_suffix(".wav")), out, rate, subtype="PCM_16")
    for trans in sorted(src_split.rglob("*.trans.txt")):
        target = dst_split / trans.relative_to(src_split)
        text = trans.read_text()
        # lower case with accents and punctuation, as many corpora are distributed
        target.write_text("\n".join(f"{line.split(' ', 1)[0]} {line.split(' ', 1)[1].lower()}, café!"
                                    for line in text.splitlines() if line.strip()) + "\n")


def test_corpus_without_dev_at_8k_and_44k_with_spk2gender_prepares_and_trains(tiny_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    _copy_resampled(tiny_corpus / "train", corpus / "train", 8000)
    _copy_resampled(tiny_corpus / "test", corpus / "test", 44100)
    assert not (corpus / "dev").exists() and not (corpus / "SPEAKERS.TXT").exists()
    genders = {}
    for line in (tiny_corpus / "SPEAKERS.TXT").read_text().splitlines():
        if line.strip() and not line.startswith(";"):
            spk, sex = [f.strip() for f in line.split("|")[:2]]
            genders[spk] = sex.lower()
    (corpus / "spk2gender").write_text("".join(f"{s} {g}\n" for s, g in sorted(genders.items())))
    shutil.rmtree(tmp_path / "out", ignore_errors=True)

    hp = fed_hparams([f"--data_folder={corpus}", "--synthetic=null", f"--feature_cache={tmp_path / 'cache'}",
                      f"--speakers_file={corpus / 'spk2gender'}"], tmp_path / "out",
                     "--rounds=1", "--eval_every=1", "--clients_per_round=1.0")
    setup = build_setup(hp, progress=False)
    save = tmp_path / "out" / "save"
    train, valid = read_manifest(setup.corpus.manifests["train"]), read_manifest(setup.corpus.manifests["valid"])
    assert setup.corpus.dev_carved and (save / "dev_carved.txt").is_file()
    assert not {r["spk_id"] for r in train} & {r["spk_id"] for r in valid}  # speaker-disjoint
    assert {r["gender"] for r in valid} == {"F", "M"}  # gender-balanced carve, genders from spk2gender
    assert {r["sample_rate"] for r in train} == {"8000"}
    assert {r["sample_rate"] for r in read_manifest(setup.corpus.manifests["test"])} == {"44100"}
    assert all(r["wrd"].endswith(" CAFE") and r["wrd"] == r["wrd"].upper() for r in train)
    assert (save / "normalized_train.txt").is_file()
    assert len(setup.partition.client_ids) == len({r["spk_id"] for r in train})  # fewer clients than defaults

    # 8 kHz and 44.1 kHz features have the 16 kHz frame rate (10 ms hop): frames ~ 100 x duration
    for rows, role in ((train, "train"), (read_manifest(setup.corpus.manifests["test"]), "test")):
        r = rows[0]
        feats = setup.corpus.cache.get(r["wav"])
        assert abs(feats.shape[0] - 100 * float(r["duration"])) <= 2, role

    sim = Simulation(setup, tmp_path / "out", progress=False)
    record = sim.run_round()
    assert torch.isfinite(torch.tensor(record["train_loss"])) and record["valid_cer"] is not None
