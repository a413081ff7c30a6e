"""Kaldi data dirs, privacy-only manifests, VPC trial lists: parsing, generation and errors naming file:line."""

import csv

import numpy as np
import pytest
import soundfile

from data_prep.kaldi import is_privacy_only, prepare_kaldi, read_kaldi_dir
from data_prep.manifest import DataPrepError
from speechfl.anonymization.corpus import load_split
from speechfl.anonymization.trials import Trial, generate_trials, read_trials, trials_for_split, write_trials

SPEAKERS = {"s1": "f", "s2": "f", "s3": "m", "s4": "m"}


def _wav(path, n=1600):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.random.default_rng(0).uniform(-0.1, 0.1, n), 16000, subtype="PCM_16")


def make_kaldi(root, per_spk=4, text=False):
    root.mkdir(parents=True, exist_ok=True)
    scp, u2s, txt = [], [], []
    for spk in SPEAKERS:
        for i in range(per_spk):
            utt = f"{spk}-u{i}"
            _wav(root / "wav" / f"{utt}.wav")
            scp.append(f"{utt} wav/{utt}.wav")
            u2s.append(f"{utt} {spk}")
            txt.append(f"{utt} hello world")
    (root / "wav.scp").write_text("\n".join(scp) + "\n")
    (root / "utt2spk").write_text("\n".join(u2s) + "\n")
    (root / "spk2gender").write_text("".join(f"{s} {g}\n" for s, g in SPEAKERS.items()))
    if text:
        (root / "text").write_text("\n".join(txt) + "\n")
    return root


def test_kaldi_dir_to_privacy_only_manifest(tmp_path):
    d = make_kaldi(tmp_path / "dev")
    kaldi = read_kaldi_dir(d)
    assert len(kaldi.rows) == 16 and not kaldi.has_text
    assert kaldi.spk2gender == {"s1": "F", "s2": "F", "s3": "M", "s4": "M"}
    assert kaldi.rows[0]["duration"] == pytest.approx(0.1) and kaldi.rows[0]["wrd"] == ""
    csv_path = prepare_kaldi(d, tmp_path / "save")
    assert is_privacy_only(csv_path)
    with open(csv_path) as fh:
        header = next(csv.reader(fh))
    assert header == ["ID", "duration", "wav", "spk_id", "gender", "wrd", "chapter", "sample_rate"]
    with_text = prepare_kaldi(make_kaldi(tmp_path / "dev2", text=True), tmp_path / "save")
    assert not is_privacy_only(with_text)
    assert read_kaldi_dir(tmp_path / "dev2").rows[0]["wrd"] == "HELLO WORLD"


def test_kaldi_errors_name_file_and_line(tmp_path):
    d = make_kaldi(tmp_path / "a")
    (d / "spk2gender").unlink()
    with pytest.raises(DataPrepError, match=r"a/spk2gender is missing"):
        read_kaldi_dir(d)
    d = make_kaldi(tmp_path / "b")
    (d / "spk2gender").write_text("s1 f\ns2 f\ns3 m\n")
    with pytest.raises(DataPrepError, match=r"b/utt2spk:13: speaker s4 of utterance s4-u0 is not in"):
        read_kaldi_dir(d)
    d = make_kaldi(tmp_path / "c")
    (d / "utt2spk").write_text((d / "utt2spk").read_text() + "ghost s1\n")
    with pytest.raises(DataPrepError, match=r"c/utt2spk:17: utterance ghost is listed but absent from .*wav.scp"):
        read_kaldi_dir(d)
    d = make_kaldi(tmp_path / "e")
    (d / "wav" / "s2-u1.wav").unlink()
    with pytest.raises(DataPrepError, match=r"e/wav.scp:6: utterance s2-u1 is listed but its audio wav/s2-u1.wav is absent"):
        read_kaldi_dir(d)
    d = make_kaldi(tmp_path / "f")
    (d / "segments").write_text("x s1-u0 0 1\n")
    with pytest.raises(DataPrepError, match="segments.*unsupported"):
        read_kaldi_dir(d)
    d = make_kaldi(tmp_path / "g")
    (d / "wav.scp").write_text("s1-u0 sox in.flac -t wav - |\n")
    (d / "utt2spk").write_text("s1-u0 s1\n")
    with pytest.raises(DataPrepError, match=r"g/wav.scp:1: utterance s1-u0 is a pipe command"):
        read_kaldi_dir(d)


def test_generated_trials_hand_counted_and_deterministic():
    rows = [{"ID": f"{s}-u{i}", "spk_id": s, "gender": g.upper()} for s, g in SPEAKERS.items() for i in range(4)]
    t = generate_trials(rows, seed=1, n_enroll=1)
    # 4 utterances -> 1 enrollment (min(1, 4 // 3)) + 3 test utterances per speaker;
    # each test utterance vs the 2 enrolled speakers of its gender: 4 * 3 * 2 = 24 trials, 12 target
    assert len(t.enrolls) == 4 and t.counts() == {"enroll_utterances": 4, "target": 12, "nontarget": 12}
    assert t == generate_trials(list(reversed(rows)), seed=1, n_enroll=1)
    assert len({generate_trials(rows, seed=k, n_enroll=1).enrolls for k in range(6)}) > 1  # the seed matters
    gender = {r["spk_id"]: r["gender"] for r in rows}
    spk_of = {r["ID"]: r["spk_id"] for r in rows}
    for trial in t.trials:
        assert gender[trial.speaker] == gender[spk_of[trial.utt]]  # same-gender non-targets
        assert trial.target == (spk_of[trial.utt] == trial.speaker)
        assert trial.utt not in t.enrolls


def test_read_trials_roundtrip_and_errors(tmp_path):
    rows = [{"ID": f"{s}-u{i}", "spk_id": s, "gender": g.upper()} for s, g in SPEAKERS.items() for i in range(4)]
    gen = generate_trials(rows, seed=0, n_enroll=1)
    write_trials(gen, tmp_path, {s: g.upper() for s, g in SPEAKERS.items()})
    utt2spk = {r["ID"]: r["spk_id"] for r in rows}
    back = read_trials([tmp_path / "enrolls"], [tmp_path / "trials_f", tmp_path / "trials_m"], utt2spk)
    assert set(back.trials) == set(gen.trials) and back.enrolls == gen.enrolls and back.source == "read"
    first_test = next(t.utt for t in gen.trials if t.speaker == "s1")
    (tmp_path / "bad").write_text(f"s1 {first_test} target\ns9 {first_test} nontarget\n")
    with pytest.raises(DataPrepError, match=r"bad:2: unknown speaker s9"):
        read_trials([tmp_path / "enrolls"], [tmp_path / "bad"], utt2spk)
    (tmp_path / "bad").write_text("s1 s1-u99 nontarget\n")
    with pytest.raises(DataPrepError, match=r"bad:1: test utterance s1-u99 is listed but absent"):
        read_trials([tmp_path / "enrolls"], [tmp_path / "bad"], utt2spk)
    (tmp_path / "bad").write_text(f"s2 {first_test} target\n")
    with pytest.raises(DataPrepError, match=r"bad:1: label target contradicts utt2spk"):
        read_trials([tmp_path / "enrolls"], [tmp_path / "bad"], utt2spk)
    (tmp_path / "enrolls2").write_text("s1-u0\nnope\n")
    with pytest.raises(DataPrepError, match=r"enrolls2:2: enrollment utterance nope is listed but absent"):
        read_trials([tmp_path / "enrolls2"], [tmp_path / "trials_f"], utt2spk)
    assert Trial("s1", first_test, True) in back.trials


def test_load_split_kaldi_with_lists_and_librispeech_without_text(tmp_path):
    d = make_kaldi(tmp_path / "corpus" / "dev")
    split = load_split(tmp_path / "corpus", "dev")
    assert trials_for_split(split).source == "generated"
    write_trials(generate_trials(split.rows, n_enroll=1), d, {s: g.upper() for s, g in SPEAKERS.items()})
    assert trials_for_split(load_split(tmp_path / "corpus", "dev")).source == "read"
    lib = tmp_path / "libri"
    for spk in ("11", "12"):
        for i in range(3):
            _wav(lib / "test" / spk / "7" / f"{spk}-7-{i}.flac")
    (lib / "SPEAKERS.TXT").write_text("11 | F | test | 1.0 | A\n12 | M | test | 1.0 | B\n")
    split = load_split(lib, "test")
    assert not split.has_text and len(split.rows) == 6 and split.rows[0]["gender"] == "F"
    (lib / "test" / "11" / "7" / "11-7.trans.txt").write_text("11-7-0 A\n11-7-1 B\n11-7-2 C\n")
    assert not load_split(lib, "test").has_text  # speaker 12 has no transcripts: privacy-only
    with pytest.raises(DataPrepError, match="no split 'train'"):
        load_split(lib, "train")


def test_privacy_only_split_manifest_and_feature_pipeline(tmp_path):
    import torch

    from data_prep.kaldi import is_privacy_only
    from speechfl.anonymization.features import feature_dataset, write_split_manifest
    from speechfl.data.dataset import make_dataset
    from speechfl.data.features import FeatureCache, FeatureConfig
    from speechfl.data.tokenizer import CharTokenizer

    lib = tmp_path / "libri"
    for spk in ("11", "12"):
        _wav(lib / "dev" / spk / "7" / f"{spk}-7-0.flac", n=4000)
    csv_path = write_split_manifest(lib, "dev", tmp_path / "m")
    assert is_privacy_only(csv_path)
    cache = FeatureCache(FeatureConfig(n_mels=40))
    ds = feature_dataset(csv_path, cache)
    item = ds[0]
    assert set(item) == {"id", "spk_id", "gender", "feats"} and item["feats"].shape == (26, 40)
    torch.testing.assert_close(item["feats"], cache.get(str((lib / "dev" / "11" / "7" / "11-7-0.flac").resolve())))
    # the ASR pipeline refuses it (it would see empty transcripts)
    with pytest.raises(ValueError, match="has no transcripts"):
        make_dataset(csv_path, CharTokenizer(), cache)


def test_prepare_kaldi_cli_and_privacy_only_manifest_refused_for_asr(tmp_path, capsys):
    """`speechfl prepare kaldi` writes the manifest; one without transcripts cannot feed ASR training."""
    from speechfl.cli import main as cli_main
    from speechfl.data.dataset import ManifestError, make_dataset
    from speechfl.data.features import FeatureCache
    from speechfl.data.tokenizer import CharTokenizer

    d = make_kaldi(tmp_path / "kaldi", text=False)
    cli_main(["prepare", "kaldi", str(d), str(tmp_path / "save"), "--name", "eval"])
    printed = capsys.readouterr().out.strip()
    assert printed == f"{tmp_path / 'save' / 'eval.csv'}  (no transcripts: privacy evaluation only)"
    with pytest.raises(ManifestError, match=r"eval.csv has no transcripts \(prepared for privacy evaluation only\)"):
        make_dataset(tmp_path / "save" / "eval.csv", CharTokenizer(), FeatureCache())
    with pytest.raises(SystemExit, match=r"speechfl prepare kaldi: error: .*spk2gender is missing"):
        (d / "spk2gender").unlink()
        cli_main(["prepare", "kaldi", str(d), str(tmp_path / "save2")])


def test_kaldi_manifest_with_transcripts_feeds_asr(tmp_path):
    from speechfl.data.dataset import make_dataset
    from speechfl.data.features import FeatureCache
    from speechfl.data.tokenizer import CharTokenizer

    path = prepare_kaldi(make_kaldi(tmp_path / "kaldi", text=True), tmp_path / "save")
    ds = make_dataset(path, CharTokenizer(), FeatureCache())
    assert len(ds) == 16 and ds[0]["tokens"].numel() > 0
