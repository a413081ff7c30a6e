"""Synthetic espeak-ng corpus: voices checked by their audio, determinism, layout, idempotence, text."""

import argparse
import hashlib
import json
import random
import re

import numpy as np
import pytest
import soundfile

from data_prep.espeak import EspeakEngine, VoiceSpec, variant_changes_audio
from data_prep.librispeech import prepare_librispeech
from data_prep.manifest import DataPrepError
from data_prep.speakers import read_speakers_txt
from data_prep.synthetic import (DEFAULT_SPEAKERS, DEFAULT_UTTERANCES, FEMALE_VARIANTS, LANGUAGES, MALE_VARIANTS,
                                 MARKER_NAME, PITCH_RANGE, SAMPLE_RATE, generate_corpus, plan_speakers, split_sizes,
                                 to_sample_rate)
from data_prep.text import generate_sentences, number_words, to_transcript, vocabulary
from speechfl.cli_prepare import register

TEXT = "one two three four five six seven"


def median_f0(audio, rate, fmin=60.0, fmax=400.0):
    """Slow, obvious pitch estimate: autocorrelation peak of each loud, periodic 40 ms frame."""
    x = audio.astype(np.float64) / 32768.0
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    lo, hi = int(rate / fmax), int(rate / fmin)
    starts = range(0, len(x) - frame, hop)
    floor = 0.1 * max(np.mean(x[s:s + frame] ** 2) for s in starts)
    f0s = []
    for s in starts:
        seg = x[s:s + frame] - x[s:s + frame].mean()
        if np.mean(seg ** 2) < floor:
            continue
        ac = np.correlate(seg, seg, "full")[frame - 1:]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.5 * ac[0]:
            f0s.append(rate / lag)
    return float(np.median(f0s))


def synth(voice, text=TEXT, seed=0):
    with EspeakEngine() as engine:
        return engine.synthesize(text, voice, seed=seed), engine.sample_rate


def file_hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def seeded_corpus(tmp_path_factory):
    return generate_corpus(tmp_path_factory.mktemp("tiny") / "corpus", n_speakers=4, n_utterances=3, seed=3,
                           progress=False, workers=1)


# ---------------------------------------------------------------- voices, checked by the audio

def test_fresh_engines_give_identical_audio():
    voice = VoiceSpec("en-us", "Alicia", pitch=60, pitch_range=40, rate=150)  # Alicia is breathy: uses noise
    first, rate = synth(voice, seed=5)
    again, _ = synth(voice, seed=5)
    assert rate == 22050 and first.dtype == np.int16 and first.size > rate
    assert np.array_equal(first, again)


def test_misspelled_variant_silently_gives_the_base_voice():
    base, _ = synth(VoiceSpec("en-us", ""))
    misspelled, _ = synth(VoiceSpec("en-us", "alicia"))  # the file is "Alicia": espeak still returns success
    assert np.array_equal(base, misspelled)
    assert not variant_changes_audio("en-us", "alicia")
    assert variant_changes_audio("en-us", "Alicia")


@pytest.mark.parametrize("variant", FEMALE_VARIANTS + MALE_VARIANTS)
def test_every_variant_we_use_exists(variant):
    assert variant_changes_audio("en-us", variant)


def test_unknown_language_voice_is_an_error():
    with pytest.raises(ValueError, match="no voice named 'en-gb'"):
        synth(VoiceSpec("en-gb", "f2"))


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_voice_exists_and_differs(language):
    audio, _ = synth(VoiceSpec(language, "m3"))
    if language != "en-us":
        assert not np.array_equal(audio, synth(VoiceSpec("en-us", "m3"))[0])


def test_female_variants_are_higher_than_male_ones_at_every_planned_pitch():
    # the lowest female pitch we plan must stay above the highest male one
    female = {v: median_f0(*synth(VoiceSpec("en-us", v, pitch=PITCH_RANGE["F"][0]))) for v in FEMALE_VARIANTS}
    male = {v: median_f0(*synth(VoiceSpec("en-us", v, pitch=PITCH_RANGE["M"][1]))) for v in MALE_VARIANTS}
    assert max(male.values()) < min(female.values()), (male, female)
    assert 70 < min(male.values()) and max(female.values()) < 400


def test_pitch_parameter_moves_f0():
    low = median_f0(*synth(VoiceSpec("en-us", "m3", pitch=20)))
    high = median_f0(*synth(VoiceSpec("en-us", "m3", pitch=80)))
    assert high > 1.4 * low


def test_voice_spec_validation():
    for kwargs in ({"pitch": 100}, {"pitch_range": -1}, {"rate": 20}, {"pitch": 5.5}):
        with pytest.raises(ValueError):
            VoiceSpec("en-us", "f1", **kwargs)
    with pytest.raises(ValueError):
        VoiceSpec("en-us+f1", "f2")


# ---------------------------------------------------------------- speaker plan

def test_default_plan_is_balanced_disjoint_and_distinct():
    speakers = plan_speakers(48, seed=0)
    assert split_sizes(48) == (32, 8, 8)
    for split, size in (("train", 32), ("dev", 8), ("test", 8)):
        members = [s for s in speakers if s.split == split]
        assert len(members) == size
        assert sum(s.gender == "F" for s in members) == size // 2
    assert len({s.spk_id for s in speakers}) == 48
    assert len({s.voice for s in speakers}) == 48
    assert len({(s.voice.language, s.voice.variant) for s in speakers}) == 48
    for s in speakers:
        assert s.voice.variant in (FEMALE_VARIANTS if s.gender == "F" else MALE_VARIANTS)
        assert PITCH_RANGE[s.gender][0] <= s.voice.pitch <= PITCH_RANGE[s.gender][1]
        assert 140 <= s.voice.rate <= 190


def test_small_plans():
    assert split_sizes(6) == (4, 1, 1)
    assert split_sizes(3) == (1, 1, 1)
    for n in (0, 1, 2):
        with pytest.raises(ValueError, match="too small"):
            split_sizes(n)
    with pytest.raises(ValueError, match="split_fractions"):
        split_sizes(10, (0.5, 0.5, 0.5))
    assert plan_speakers(48, seed=1) != plan_speakers(48, seed=0)
    assert plan_speakers(48, seed=1) == plan_speakers(48, seed=1)


# ---------------------------------------------------------------- corpus

def test_same_seed_same_bytes_whatever_the_thread_count(seeded_corpus, tmp_path):
    again = generate_corpus(tmp_path / "again", n_speakers=4, n_utterances=3, seed=3, progress=False, workers=3)
    assert file_hashes(again) == file_hashes(seeded_corpus)
    other = generate_corpus(tmp_path / "other", n_speakers=4, n_utterances=3, seed=4, progress=False)
    assert file_hashes(other) != file_hashes(seeded_corpus)


def test_layout_is_librispeech(seeded_corpus):
    speakers = read_speakers_txt(seeded_corpus / "SPEAKERS.TXT")
    assert {s.gender for s in speakers.values()} == {"F", "M"}
    assert [s.subset for s in speakers.values()] == ["train", "train", "dev", "test"]
    for spk_id, info in speakers.items():
        chapters = list((seeded_corpus / info.subset / spk_id).iterdir())
        assert len(chapters) == 1
        chapter = chapters[0].name
        lines = (chapters[0] / f"{spk_id}-{chapter}.trans.txt").read_text().splitlines()
        assert [line.split()[0] for line in lines] == [f"{spk_id}-{chapter}-{u:04d}" for u in range(3)]
        for line in lines:
            utt_id, words = line.split(" ", 1)
            assert re.fullmatch(r"[A-Z']+( [A-Z']+){4,13}", words)
            audio = chapters[0] / f"{utt_id}.flac"
            meta = soundfile.info(str(audio))
            assert (meta.samplerate, meta.channels, meta.subtype, meta.format) == (SAMPLE_RATE, 1, "PCM_16", "FLAC")
            assert 1.0 < meta.duration < 7.0
        assert info.minutes == pytest.approx(
            sum(soundfile.info(str(p)).duration for p in chapters[0].glob("*.flac")) / 60, abs=0.01)


def test_speakers_read_different_sentences(seeded_corpus):
    texts = [set(p.read_text().split("\n")) for p in seeded_corpus.rglob("*.trans.txt")]
    words = [{line.split(" ", 1)[1] for line in t if line} for t in texts]
    assert all(not (a & b) for i, a in enumerate(words) for b in words[i + 1:])


def test_librispeech_preparation_reads_the_synthetic_corpus(seeded_corpus, tmp_path):
    out = prepare_librispeech(seeded_corpus, tmp_path / "manifests", ["train", "dev", "test"], progress=False)
    rows = out["train"].read_text().splitlines()
    assert len(rows) == 1 + 2 * 3 and rows[0].startswith("ID,duration,wav,spk_id,gender,wrd")
    assert {row.split(",")[4] for row in rows[1:]} == {"F", "M"}


def test_rerun_is_skipped_and_another_config_is_refused(seeded_corpus):
    before = file_hashes(seeded_corpus)
    mtime = (seeded_corpus / "SPEAKERS.TXT").stat().st_mtime_ns
    assert generate_corpus(seeded_corpus, n_speakers=4, n_utterances=3, seed=3, progress=False) == seeded_corpus
    assert (seeded_corpus / "SPEAKERS.TXT").stat().st_mtime_ns == mtime and file_hashes(seeded_corpus) == before
    with pytest.raises(DataPrepError, match="another configuration"):
        generate_corpus(seeded_corpus, n_speakers=4, n_utterances=4, seed=3, progress=False)


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataPrepError, match="not empty"):
        generate_corpus(tmp_path, n_speakers=3, n_utterances=1, progress=False)


def test_unfinished_corpus_is_generated_again(tmp_path):
    out = generate_corpus(tmp_path / "c", n_speakers=3, n_utterances=1, seed=0, progress=False)
    reference = file_hashes(out)
    marker = json.loads((out / MARKER_NAME).read_text())
    marker["complete"] = False
    (out / MARKER_NAME).write_text(json.dumps(marker))
    (out / "SPEAKERS.TXT").unlink()
    next(out.rglob("*.flac")).write_bytes(b"half written")
    generate_corpus(out, n_speakers=3, n_utterances=1, seed=0, progress=False)
    assert file_hashes(out) == reference


@pytest.mark.parametrize("kwargs", [{"n_speakers": 2}, {"n_utterances": 0}, {"seed": -1}, {"n_speakers": 4.0},
                                    {"workers": 0}])
def test_bad_arguments(tmp_path, kwargs):
    with pytest.raises((ValueError, TypeError)):
        generate_corpus(tmp_path / "c", **{"n_utterances": 1, "progress": False, **kwargs})
    assert not (tmp_path / "c").exists()


def test_cli_prepare_synthetic(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="speechfl")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prepare", "synthetic", str(tmp_path / "c"), "--speakers", "3", "--utterances", "1",
                              "--seed", "2", "--no-progress"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c")
    assert len(list((tmp_path / "c").rglob("*.flac"))) == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["prepare", "synthetic", str(tmp_path / "d"), "--speakers", "zero"])


def test_cli_help_states_the_real_defaults():
    parser = argparse.ArgumentParser(prog="speechfl")
    register(parser.add_subparsers(dest="command"))
    synthetic = parser._subparsers._group_actions[0].choices["prepare"]._subparsers._group_actions[0].choices
    helps = {action.dest: action.help for action in synthetic["synthetic"]._actions}
    assert helps["speakers"].endswith(f"DEFAULT_SPEAKERS, {DEFAULT_SPEAKERS})")
    assert helps["utterances"].endswith(f"DEFAULT_UTTERANCES, {DEFAULT_UTTERANCES})")
    assert DEFAULT_SPEAKERS >= 40 and DEFAULT_UTTERANCES >= 25


# ---------------------------------------------------------------- resampling and text

def test_resampling_keeps_a_tone_and_the_duration():
    rate = 22050
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.int16)
    out = to_sample_rate(tone, rate)
    assert out.dtype == np.int16 and out.size == SAMPLE_RATE
    spectrum = np.abs(np.fft.rfft(out.astype(np.float64)))
    assert np.argmax(spectrum) == 440  # 1 s at 16 kHz: bin k is k Hz


def test_number_words():
    cases = {0: "zero", 7: "seven", 13: "thirteen", 20: "twenty", 42: "forty two", 100: "one hundred",
             305: "three hundred and five", 999: "nine hundred and ninety nine"}
    for n, words in cases.items():
        assert number_words(n) == words
    for bad in (-1, 1000, 2.0):
        with pytest.raises(ValueError):
            number_words(bad)


def test_to_transcript():
    assert to_transcript("Where's the old farmer's   hat?") == "WHERE'S THE OLD FARMER'S HAT"
    assert to_transcript("it was cold, wet - and 'dark'.") == "IT WAS COLD WET AND DARK"
    with pytest.raises(ValueError):
        to_transcript("?!")


def test_sentences_are_varied_bounded_and_seeded():
    first = generate_sentences(random.Random("a"), 200)
    assert first == generate_sentences(random.Random("a"), 200)
    assert len(set(first)) == 200
    lengths = [len(to_transcript(s).split()) for s in first]
    assert min(lengths) >= 5 and max(lengths) <= 14
    assert any(s.endswith("?") for s in first) and any("'" in s for s in first)
    used = {w for s in first for w in to_transcript(s).lower().split()}
    assert len(used) > 250 and used <= vocabulary()
    assert len(vocabulary()) >= 400
    other = generate_sentences(random.Random("b"), 200)
    assert len(set(first) & set(other)) < 5
    with pytest.raises(ValueError):
        generate_sentences(random.Random(0), 3, min_words=9, max_words=2)


def _generate_in_child(out, queue):
    try:
        generate_corpus(out, n_speakers=3, n_utterances=2, seed=8, progress=False, workers=1)
        queue.put("ok")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        queue.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_generating_the_same_corpus_at_once_both_get_it_whole(tmp_path):
    """The cells of `speechfl sweep --jobs` may ask for the same corpus together: one generates it under a lock,
    the other waits and finds it complete (no half-written folder, no error)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    out = tmp_path / "shared"
    procs = [ctx.Process(target=_generate_in_child, args=(out, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sorted(queue.get(timeout=5) for _ in procs) == ["ok", "ok"]
    reference = generate_corpus(tmp_path / "alone", n_speakers=3, n_utterances=2, seed=8, progress=False)
    digest = lambda root: {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
                           for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER_NAME}
    assert digest(out) == digest(reference) and len(digest(out)) > 6
