"""LibriSpeech-layout preparation: manifests, skip-if-prepared, every bad-input case, --skip-bad."""

import argparse
import csv
import logging

import numpy as np
import pytest
import soundfile

from data_prep.librispeech import CSV_COLUMNS, audio_facts, parse_splits, prepare_librispeech
from data_prep.manifest import DataPrepError, write_csv_atomic
from speechfl.cli_prepare import register

SPEAKERS = """\
; Some readers are listed under more than one subset
;ID      |SEX| SUBSET           |MINUTES| NAME
14      | F | train-clean-360  | 25.03 | Kristin LeMoine
17      | M | train-clean-360  | 25.04 | Gord Mackenzie
60      | M | dev-clean        | 20.18 | |CBW|Simon
"""

# split -> speaker -> chapter -> list of (utterance number, words, n_samples, sample_rate, extension)
LAYOUT = {
    "train": {"14": {"208": [(0, "HELLO THERE", 4800, 16000, "flac"), (1, "GOOD MORNING SIR", 3200, 16000, "flac")]},
              "17": {"362": [(0, "IT'S A FINE DAY", 6615, 22050, "wav")]},
              "99": {"500": [(3, "NOBODY KNOWS ME", 1600, 16000, "flac")]}},
    "dev": {"60": {"1001": [(0, "THE END", 2400, 8000, "flac")]}},
}


def write_audio(path, n_samples, rate, channels=1):
    rng = np.random.default_rng(n_samples)
    t = np.arange(n_samples) / rate
    mono = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(n_samples)
    data = mono if channels == 1 else np.stack([mono] * channels, axis=1)
    soundfile.write(path, data, rate, subtype="PCM_16")


def make_corpus(root, layout=LAYOUT, speakers_txt=SPEAKERS):
    for split, spks in layout.items():
        for spk, chapters in spks.items():
            for chapter, utts in chapters.items():
                folder = root / split / spk / chapter
                folder.mkdir(parents=True)
                lines = []
                for number, words, n_samples, rate, ext in utts:
                    utt_id = f"{spk}-{chapter}-{number:04d}"
                    write_audio(folder / f"{utt_id}.{ext}", n_samples, rate)
                    lines.append(f"{utt_id} {words}")
                (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    if speakers_txt is not None:
        (root / "SPEAKERS.TXT").write_text(speakers_txt)
    return root


def read_rows(path):
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


@pytest.fixture
def corpus(tmp_path):
    return make_corpus(tmp_path / "LibriSpeech")


def test_manifests_have_the_expected_rows(corpus, tmp_path):
    out = prepare_librispeech(corpus, tmp_path / "save", ["train", "dev"], progress=False)
    assert out == {"train": tmp_path / "save" / "train.csv", "dev": tmp_path / "save" / "dev.csv"}
    header, rows = read_rows(out["train"])
    assert tuple(header) == CSV_COLUMNS
    assert tuple(header[:6]) == ("ID", "duration", "wav", "spk_id", "gender", "wrd")
    by_id = {row["ID"]: row for row in rows}
    assert sorted(by_id) == ["14-208-0000", "14-208-0001", "17-362-0000", "99-500-0003"]
    first = by_id["14-208-0000"]
    assert float(first["duration"]) == pytest.approx(4800 / 16000)
    assert first["wav"] == str((corpus / "train/14/208/14-208-0000.flac").resolve())
    assert (first["spk_id"], first["gender"], first["wrd"], first["chapter"]) == ("14", "F", "HELLO THERE", "208")
    wav_row = by_id["17-362-0000"]  # a 22.05 kHz .wav is accepted as is
    assert (wav_row["gender"], wav_row["sample_rate"], wav_row["wrd"]) == ("M", "22050", "IT'S A FINE DAY")
    assert float(wav_row["duration"]) == pytest.approx(6615 / 22050, abs=1e-4)
    assert by_id["99-500-0003"]["gender"] == "unknown"  # absent from SPEAKERS.TXT: never guessed
    _, dev_rows = read_rows(out["dev"])
    assert [(r["ID"], r["gender"], r["sample_rate"]) for r in dev_rows] == [("60-1001-0000", "M", "8000")]


def test_speechbrain_reads_the_manifest(corpus, tmp_path):
    from speechbrain.dataio.dataio import load_data_csv

    out = prepare_librispeech(corpus, tmp_path / "save", "train", progress=False)
    data = load_data_csv(str(out["train"]))
    assert data["14-208-0001"]["duration"] == pytest.approx(0.2)
    assert data["14-208-0001"]["wrd"] == "GOOD MORNING SIR"


def test_transcripts_are_upper_cased_and_spaces_normalised(tmp_path):
    layout = {"train": {"14": {"208": [(0, "hello   there", 1600, 16000, "flac")]}}}
    corpus = make_corpus(tmp_path / "c", layout)
    _, rows = read_rows(prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False)["train"])
    assert rows[0]["wrd"] == "HELLO THERE"


def test_same_configuration_is_skipped_and_a_new_one_is_not(corpus, tmp_path):
    save = tmp_path / "save"
    prepare_librispeech(corpus, save, ["train"], progress=False)
    stray = corpus / "train/14/208/14-208-0005.flac"
    write_audio(stray, 1600, 16000)  # would be an error if the split were read again
    prepare_librispeech(corpus, save, ["train"], progress=False)
    with pytest.raises(DataPrepError, match="14-208-0005.flac"):
        prepare_librispeech(corpus, save, ["train", "dev"], progress=False)
    assert not (save / ".librispeech_prepare.json").exists()  # no stale marker after a failed run
    stray.unlink()
    prepare_librispeech(corpus, save, ["train", "dev"], progress=False)
    (save / "dev.csv").unlink()  # a missing manifest also forces a new preparation
    assert prepare_librispeech(corpus, save, ["train", "dev"], progress=False)["dev"].is_file()


def test_no_speakers_txt_gives_unknown_gender(tmp_path, caplog):
    corpus = make_corpus(tmp_path / "c", speakers_txt=None)
    with caplog.at_level(logging.WARNING):
        out = prepare_librispeech(corpus, tmp_path / "s", ["train"], progress=False)
    assert {row["gender"] for row in read_rows(out["train"])[1]} == {"unknown"}
    assert "no SPEAKERS.TXT" in caplog.text


def test_speakers_txt_inside_the_split_folder_is_used(tmp_path):
    corpus = make_corpus(tmp_path / "c", speakers_txt=None)
    (corpus / "dev" / "SPEAKERS.TXT").write_text(SPEAKERS)
    out = prepare_librispeech(corpus, tmp_path / "s", ["dev"], progress=False)
    assert read_rows(out["dev"])[1][0]["gender"] == "M"


def _bad_corpus_cases():
    """name -> (mutation of a corpus, returns the path the error must name, message fragment)."""

    def audio_without_transcript(root):
        path = root / "train/14/208/14-208-0007.flac"
        write_audio(path, 1600, 16000)
        return path, "audio without a transcript line"

    def transcript_without_audio(root):
        path = root / "train/14/208/14-208.trans.txt"
        path.write_text(path.read_text() + "14-208-0009 LOST WORDS\n")
        return path, "14-208-0009 has no audio file"

    def corrupt_audio(root):
        path = root / "train/17/362/17-362-0000.wav"
        path.write_bytes(b"\x00" * 200)
        return path, "unreadable or corrupt audio"

    def truncated_audio(root):
        path = root / "train/14/208/14-208-0000.flac"
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated"

    def stereo_audio(root):
        path = root / "train/14/208/14-208-0001.flac"
        write_audio(path, 1600, 16000, channels=2)
        return path, "expected mono audio, got 2 channels"

    def misplaced_audio(root):
        path = root / "train/14/14-208-0003.flac"
        write_audio(path, 1600, 16000)
        return path, "audio file is not at <spk>/<chapter>/"

    def malformed_transcript_line(root):
        path = root / "train/17/362/17-362.trans.txt"
        path.write_text(path.read_text() + "17-999-0001 WRONG CHAPTER\n")
        return path, "line 2 is not"

    return {f.__name__: f for f in (audio_without_transcript, transcript_without_audio, corrupt_audio,
                                    truncated_audio, stereo_audio, misplaced_audio, malformed_transcript_line)}


BAD_CASES = _bad_corpus_cases()


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_an_error_naming_the_file(corpus, tmp_path, case):
    path, fragment = BAD_CASES[case](corpus)
    with pytest.raises(DataPrepError) as info:
        prepare_librispeech(corpus, tmp_path / "save", ["train"], progress=False)
    message = str(info.value)
    assert f"{path}: " in message and fragment in message
    assert not (tmp_path / "save" / "train.csv").exists()


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_skip_bad_skips_and_reports(corpus, tmp_path, case, caplog):
    path, fragment = BAD_CASES[case](corpus)
    with caplog.at_level(logging.WARNING):
        out = prepare_librispeech(corpus, tmp_path / "save", ["train"], skip_bad=True, progress=False)
    report = (tmp_path / "save" / "skipped_train.txt").read_text().splitlines()
    assert report[0].startswith("# 1 file(s) skipped")
    reported_path, reason = report[1].split("\t")
    assert reported_path == str(path) and fragment in reason
    assert "skipped 1 bad file(s)" in caplog.text
    ids = {row["ID"] for row in read_rows(out["train"])[1]}
    assert 1 <= len(ids) <= 4 and path.name.split(".")[0] not in ids


def test_skip_bad_with_nothing_bad_writes_an_empty_report(corpus, tmp_path):
    prepare_librispeech(corpus, tmp_path / "save", ["dev"], skip_bad=True, progress=False)
    assert (tmp_path / "save" / "skipped_dev.txt").read_text().startswith("# 0 file(s) skipped")


def test_missing_split_folder_is_named(corpus, tmp_path):
    with pytest.raises(DataPrepError, match=f"split folder {corpus / 'test-clean'} does not exist"):
        prepare_librispeech(corpus, tmp_path / "save", ["train", "test-clean"], skip_bad=True, progress=False)


def test_missing_data_folder_is_named(tmp_path):
    with pytest.raises(DataPrepError, match=f"data folder {tmp_path / 'nowhere'} does not exist"):
        prepare_librispeech(tmp_path / "nowhere", tmp_path / "save", ["train"], progress=False)


def test_empty_split_is_an_error_even_with_skip_bad(corpus, tmp_path):
    (corpus / "test").mkdir()
    (corpus / "test" / "README.txt").write_text("nothing here")
    for skip_bad in (False, True):
        with pytest.raises(DataPrepError, match=f"split folder {corpus / 'test'} holds no usable utterances"):
            prepare_librispeech(corpus, tmp_path / "save", ["test"], skip_bad=skip_bad, progress=False)


def test_split_with_only_bad_files_is_empty_after_skipping(tmp_path):
    corpus = make_corpus(tmp_path / "c", {"dev": {"60": {"1001": [(0, "THE END", 2400, 8000, "flac")]}}})
    (corpus / "dev/60/1001/60-1001-0000.flac").write_bytes(b"junk")
    with pytest.raises(DataPrepError, match="holds no usable utterances"):
        prepare_librispeech(corpus, tmp_path / "save", ["dev"], skip_bad=True, progress=False)


def test_every_problem_is_listed(corpus, tmp_path):
    for name in ("audio_without_transcript", "corrupt_audio", "stereo_audio"):
        BAD_CASES[name](corpus)
    with pytest.raises(DataPrepError, match=r"has 3 bad file\(s\)"):
        prepare_librispeech(corpus, tmp_path / "save", ["train"], progress=False)


def test_audio_facts(corpus):
    assert audio_facts(corpus / "train/17/362/17-362-0000.wav") == (6615, 22050)
    with pytest.raises(DataPrepError, match="unreadable or corrupt"):
        audio_facts(corpus / "train/17/362/17-362.trans.txt")


def test_parse_splits():
    assert parse_splits("a, b,c") == ("a", "b", "c")
    assert parse_splits(["dev-clean"]) == ("dev-clean",)
    for bad in ("", "a,,b", "a,a", ["x/y"], [".."], []):
        with pytest.raises(ValueError):
            parse_splits(bad)


def test_csv_write_is_atomic(tmp_path):
    path = tmp_path / "m.csv"
    write_csv_atomic(path, ["ID", "wrd"], [{"ID": "a", "wrd": "X, Y"}])
    with pytest.raises(ValueError, match="row 1"):
        write_csv_atomic(path, ["ID", "wrd"], [{"ID": "b", "wrd": "Z"}, {"ID": "c"}])
    assert read_rows(path)[1] == [{"ID": "a", "wrd": "X, Y"}]  # old content intact, comma quoted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]  # no temporary file left


def _cli(argv):
    parser = argparse.ArgumentParser(prog="speechfl")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_prepare_librispeech(corpus, tmp_path, capsys):
    assert _cli(["prepare", "librispeech", str(corpus), str(tmp_path / "s"), "--splits", "train,dev",
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"train\t{tmp_path / 's' / 'train.csv'}",
                                                    f"dev\t{tmp_path / 's' / 'dev.csv'}"]
    BAD_CASES["corrupt_audio"](corpus)
    with pytest.raises(SystemExit, match="17-362-0000.wav"):
        _cli(["prepare", "librispeech", str(corpus), str(tmp_path / "s2"), "--splits", "train", "--no-progress"])
    assert _cli(["prepare", "librispeech", str(corpus), str(tmp_path / "s3"), "--splits", "train", "--skip-bad",
                 "--no-progress"]) == 0
    assert (tmp_path / "s3" / "skipped_train.txt").is_file()
