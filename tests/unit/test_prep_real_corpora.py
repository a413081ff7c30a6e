"""Preparation of real corpora: transcript normalisation, --speakers (SPEAKERS.TXT or spk2gender),
followable skip_bad advice, and a carved dev split."""

import csv
import logging

import pytest

from data_prep.dev_split import carve_dev_split, choose_dev_speakers, default_dev_speakers
from data_prep.librispeech import prepare_librispeech
from data_prep.manifest import DataPrepError
from data_prep.normalize import normalize_transcript
from tests.unit.test_librispeech_prep import _cli, make_corpus, read_rows


# --- normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected, changed", [
    ("Café, naïve!", "CAFE NAIVE", ("!", ",", "é", "ï")),
    ("don\u2019t  stop\u2014now", "DON'T STOP NOW", ("\u2014", "\u2019")),
    ("Straße Æsop Øre Łódź", "STRASSE AESOP ORE LODZ", ("Æ", "Ø", "ß", "Ł", "ó", "ź")),
    ("well-known\u200b idea.", "WELL KNOWN IDEA", ("-", ".", "\u200b")),
    ("plain words", "PLAIN WORDS", ()),
    ("IT'S\tFINE", "IT'S FINE", ()),
])
def test_normalisation_folds_what_is_safe(text, expected, changed):
    norm = normalize_transcript(text)
    assert norm.text == expected and norm.changed == tuple(sorted(changed)) and norm.unmappable == ()


@pytest.mark.parametrize("text, bad", [("it costs 3 dollars", ("3",)), ("fifty %", ("%",)),
                                       ("\u041f\u0440\u0438 world", ("\u041f", "\u0438", "\u0440")),
                                       ("\u65e5\u672c", ("\u65e5", "\u672c"))])
def test_normalisation_refuses_what_cannot_be_mapped(text, bad):
    assert normalize_transcript(text).unmappable == tuple(sorted(bad))


def test_prepare_normalises_and_reports_each_change(tmp_path, caplog):
    layout = {"train": {"14": {"208": [(0, "Café, naïve!", 1600, 16000, "flac"), (1, "good day", 1600, 16000, "flac")]}}}
    corpus = make_corpus(tmp_path / "c", layout)
    with caplog.at_level(logging.WARNING):
        out = prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False)
    assert [r["wrd"] for r in read_rows(out["train"])[1]] == ["CAFE NAIVE", "GOOD DAY"]
    report = (tmp_path / "s" / "normalized_train.txt").read_text().splitlines()
    trans = corpus / "train" / "14" / "208" / "14-208.trans.txt"
    assert len(report) == 2 and report[1].startswith(f"{trans}:1\t14-208-0000\t")
    assert "'é' (U+00E9)" in report[1] and "'!' (U+0021)" in report[1]
    assert "normalised 1 transcript(s)" in caplog.text and "14-208-0000" in caplog.text


def test_prepare_refuses_unmappable_characters_naming_file_line_and_utterance(tmp_path):
    layout = {"train": {"14": {"208": [(0, "hello", 1600, 16000, "flac"), (1, "room 101", 1600, 16000, "flac")]}}}
    corpus = make_corpus(tmp_path / "c", layout)
    trans = corpus / "train" / "14" / "208" / "14-208.trans.txt"
    with pytest.raises(DataPrepError, match=rf"{trans}: line 2: utterance 14-208-0001 has characters that cannot "
                                            r"be mapped .*'0' \(U\+0030\), '1' \(U\+0031\)"):
        prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False)
    out = prepare_librispeech(corpus, tmp_path / "s", ["train"], skip_bad=True, progress=False)
    assert [r["ID"] for r in read_rows(out["train"])[1]] == ["14-208-0000"]
    assert "14-208-0001" in (tmp_path / "s" / "skipped_train.txt").read_text()


def test_bad_file_advice_names_what_the_user_types(tmp_path):
    layout = {"train": {"14": {"208": [(0, "room 101", 1600, 16000, "flac"), (1, "ok", 1600, 16000, "flac")]}}}
    corpus = make_corpus(tmp_path / "c", layout)
    with pytest.raises(DataPrepError) as info:
        prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False)
    msg = str(info.value)
    assert "`skip_bad: true` in the hparams file (or --skip_bad=true) for `speechfl train`" in msg
    assert "--skip-bad for `speechfl prepare librispeech`" in msg and "skip_bad=True" not in msg


# --- --speakers ---------------------------------------------------------------------------------
def _genders(csv_path):
    return {r["spk_id"]: r["gender"] for r in read_rows(csv_path)[1]}


LAYOUT = {"train": {s: {"1": [(0, "hello there", 1600, 16000, "flac")]} for s in ("14", "17", "99")}}


def test_speakers_file_in_spk2gender_format(tmp_path):
    corpus = make_corpus(tmp_path / "c", LAYOUT, speakers_txt=None)
    spk2gender = tmp_path / "spk2gender"
    spk2gender.write_text("14 f\n17 M\n\n")
    out = prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False, speakers_file=spk2gender)
    assert _genders(out["train"]) == {"14": "F", "17": "M", "99": "unknown"}


def test_speakers_file_in_speakers_txt_format_overrides_the_corpus_one(tmp_path):
    corpus = make_corpus(tmp_path / "c", LAYOUT)  # its SPEAKERS.TXT says 14 F, 17 M
    other = tmp_path / "mine.txt"
    other.write_text(";ID|SEX|SUBSET|MINUTES|NAME\n14 | M | train | 1.0 | A\n99 | F | train | | B\n")
    out = prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False, speakers_file=other)
    assert _genders(out["train"]) == {"14": "M", "17": "unknown", "99": "F"}
    other.write_text(";ID|SEX|SUBSET|MINUTES|NAME\n14 | F | train | 1.0 | A\n")  # edited file: prepared again
    out = prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False, speakers_file=other)
    assert _genders(out["train"])["14"] == "F"


@pytest.mark.parametrize("text, match", [("14 female\n", r"spk2gender:1: gender 'female' is not m or f"),
                                         ("14 f\n14 m\n", r"spk2gender:2: speaker 14 is listed twice"),
                                         ("14 f x\n", r"spk2gender:1: expected '<speaker-id> <m\|f>'"),
                                         ("; only a comment\n", "lists no speakers")])
def test_bad_spk2gender_names_file_and_line(tmp_path, text, match):
    corpus = make_corpus(tmp_path / "c", LAYOUT, speakers_txt=None)
    path = tmp_path / "spk2gender"
    path.write_text(text)
    with pytest.raises(DataPrepError, match=match):
        prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False, speakers_file=path)


def test_cli_speakers_and_carve_dev(tmp_path, capsys):
    layout = {"train": {s: {"1": [(0, "hello there", 1600, 16000, "flac"), (1, "good day", 1600, 16000, "flac")]}
                        for s in ("10", "11", "12", "13", "14", "15")}}
    corpus = make_corpus(tmp_path / "c", layout, speakers_txt=None)
    (tmp_path / "spk2gender").write_text("10 f\n11 f\n12 f\n13 m\n14 m\n15 m\n")
    assert _cli(["prepare", "librispeech", str(corpus), str(tmp_path / "s"), "--splits", "train", "--no-progress",
                 "--speakers", str(tmp_path / "spk2gender"), "--carve-dev"]) == 0
    printed = dict(line.split("\t") for line in capsys.readouterr().out.splitlines())
    assert set(printed) == {"train", "train_without_dev", "dev_carved"}
    dev = _genders(printed["dev_carved"])
    assert sorted(dev.values()) == ["F", "M"]  # gender-balanced
    assert not set(dev) & set(_genders(printed["train_without_dev"]))


# --- carved dev split ---------------------------------------------------------------------------
def _manifest(path, genders, utts=3):
    cols = ["ID", "duration", "wav", "spk_id", "gender", "wrd"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for s, g in genders.items():
            for i in range(utts):
                w.writerow([f"{s}-1-{i:04d}", "1.0", f"/x/{s}-{i}.flac", s, g, "HELLO"])
    return path


def test_default_number_of_dev_speakers():
    assert default_dev_speakers({str(i): "FM"[i % 2] for i in range(40)}) == 4  # 10%
    assert default_dev_speakers({str(i): "FM"[i % 2] for i in range(6)}) == 2  # one per gender
    assert default_dev_speakers({"a": "F", "b": "M", "c": "M"}) == 1  # F has one speaker: no per-gender minimum
    assert default_dev_speakers({"a": "F", "b": "F", "c": "M", "d": "M"}) == 2
    assert default_dev_speakers({"a": "F", "b": "M"}) == 1


def test_choice_is_deterministic_balanced_and_independent_of_order():
    genders = {f"s{i}": "FM"[i % 2] for i in range(20)}
    a = choose_dev_speakers(genders, 4, seed=0)
    b = choose_dev_speakers(dict(reversed(list(genders.items()))), 4, seed=0)
    assert a == b and sorted(genders[s] for s in a) == ["F", "F", "M", "M"]
    assert choose_dev_speakers(genders, 4, seed=1) != a
    one_gender = choose_dev_speakers({"a": "M", "b": "M", "c": "M"}, 1)
    assert len(one_gender) == 1
    with pytest.raises(DataPrepError, match="at least one must stay in training"):
        choose_dev_speakers({"a": "M", "b": "F"}, 2)


def test_carve_writes_disjoint_manifests_and_a_report(tmp_path, caplog):
    genders = {f"{i}": "FM"[i % 2] for i in range(10)}
    train = _manifest(tmp_path / "train.csv", genders)
    with caplog.at_level(logging.WARNING):
        carved = carve_dev_split(train, seed=0)
    kept, dev = read_rows(carved.train_csv)[1], read_rows(carved.dev_csv)[1]
    assert len(kept) + len(dev) == 30
    assert {r["spk_id"] for r in dev} == set(carved.dev_speakers) and len(carved.dev_speakers) == 2
    assert not {r["spk_id"] for r in dev} & {r["spk_id"] for r in kept}
    assert read_rows(carved.train_csv)[0] == read_rows(train)[0]  # same columns
    report = carved.report.read_text()
    assert all(s in report for s in carved.dev_speakers) and "round-robin over genders" in report
    assert "carved a speaker-disjoint dev split of 2 speaker(s)" in caplog.text
    again = carve_dev_split(train, seed=0)
    assert again.dev_speakers == carved.dev_speakers


def test_carve_refuses_one_speaker(tmp_path):
    with pytest.raises(DataPrepError, match="has 1 speaker"):
        carve_dev_split(_manifest(tmp_path / "train.csv", {"a": "F"}))


def test_a_manifest_transcript_outside_the_alphabet_names_the_utterance(tmp_path):
    from speechfl.data.dataset import ManifestError, make_dataset
    from speechfl.data.features import FeatureCache, FeatureConfig
    from speechfl.data.tokenizer import CharTokenizer
    from tests.unit.test_librispeech_prep import write_audio

    write_audio(tmp_path / "a.flac", 1600, 16000)
    manifest = tmp_path / "train.csv"
    manifest.write_text(f"ID,duration,wav,spk_id,gender,wrd\nu-1,0.1,{tmp_path / 'a.flac'},u,F,CAFÉ NAÏVE\n")
    ds = make_dataset(manifest, CharTokenizer(), FeatureCache(FeatureConfig(n_mels=20)))
    with pytest.raises(ManifestError, match=r"train.csv: utterance u-1: transcript has characters outside the "
                                            r"alphabet \['É', 'Ï'\].*speechfl prepare"):
        ds[0]


def test_manifests_prepared_with_skip_bad_are_reused_by_train(tmp_path, capsys):
    from speechfl.experiment.corpus import prepare_corpus
    from tests.unit.test_librispeech_prep import LAYOUT as BASE, write_audio

    corpus = make_corpus(tmp_path / "c", BASE)
    write_audio(corpus / "train" / "14" / "208" / "14-208-0007.flac", 1600, 16000)  # audio without transcript
    save = tmp_path / "save"
    assert _cli(["prepare", "librispeech", str(corpus), str(save), "--splits", "dev,train", "--skip-bad",
                 "--no-progress"]) == 0
    stamp = (save / "train.csv").stat().st_mtime_ns
    hp = {"data_folder": str(corpus), "save_folder": str(save), "train_splits": ["train"], "valid_split": "dev",
          "test_split": "dev", "skip_bad": True}
    got = prepare_corpus(hp, progress=False)
    assert got.manifests["train"] == save / "train.csv" and (save / "train.csv").stat().st_mtime_ns == stamp
    with pytest.raises(DataPrepError, match=r"`skip_bad: true` in the hparams file \(or --skip_bad=true\)"):
        prepare_corpus(dict(hp, skip_bad=False), progress=False)
    with pytest.raises(ValueError, match="skip_bad: must be true or false, got 'yes'"):
        prepare_corpus(dict(hp, skip_bad="yes"), progress=False)


@pytest.mark.parametrize("key, value, match", [
    ("carve_dev_speakers", 0, "carve_dev_speakers: must be a positive integer or null, got 0"),
    ("feature_cache_memory_mb", -1, "feature_cache_memory_mb: must be a number of MiB >= 0, got -1"),
    ("speakers_file", "/nowhere/spk2gender", "speakers_file: speakers file /nowhere/spk2gender does not exist"),
])
def test_data_keys_are_checked_before_anything_is_read(tmp_path, key, value, match):
    from speechfl.config.errors import ConfigError
    from speechfl.experiment.corpus import check_data_keys, prepare_corpus

    hp = {"data_folder": str(tmp_path / "absent"), "save_folder": str(tmp_path / "s"), "train_splits": ["train"],
          "valid_split": "dev", "test_split": "test", key: value}
    with pytest.raises(ConfigError, match=match):
        check_data_keys(hp)
    with pytest.raises(ConfigError, match=match):  # before the missing data folder is noticed
        prepare_corpus(hp, progress=False)
