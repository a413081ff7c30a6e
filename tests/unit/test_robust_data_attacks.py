"""Transcript flipping and the audio backdoor trigger as pure transforms."""

import math
import random

import pytest
import torch

import speechfl.robustness as R
from speechfl.robustness.data_attacks import DEFAULT_ALPHABET, trigger_offset


def test_char_permutation_is_a_seeded_derangement():
    m = R.char_permutation(3)
    assert sorted(m) == sorted(DEFAULT_ALPHABET) and sorted(m.values()) == sorted(DEFAULT_ALPHABET)
    assert all(k != v for k, v in m.items())
    assert R.char_permutation(3) == m and R.char_permutation(4) != m


def test_flip_transcript_modes():
    m = R.char_permutation(0)
    text = "HELLO WORLD IT'S ME"
    flipped = R.flip_transcript(text, random.Random(0), "char_permutation", m)
    assert flipped == "".join(m.get(c, c) for c in text) and flipped[5] == " "
    assert all(a != b for a, b in zip(text, flipped) if a != " ")
    assert R.flip_transcript(text, random.Random(0), "reverse_words") == "ME IT'S WORLD HELLO"
    shuffled = R.flip_transcript(text, random.Random(1), "shuffle_words")
    assert shuffled != text and sorted(shuffled.split()) == sorted(text.split())
    assert R.flip_transcript("SAME SAME", random.Random(0), "shuffle_words") == "SAME SAME"
    with pytest.raises(ValueError, match="needs a mapping"):
        R.flip_transcript(text, random.Random(0), "char_permutation")
    with pytest.raises(ValueError, match="mode must be one of"):
        R.flip_transcript(text, random.Random(0), "reverse")


def test_shuffle_transcripts_is_a_derangement():
    texts = [f"UTT {i}" for i in range(9)]
    out = R.shuffle_transcripts(texts, seed=2)
    assert sorted(out) == sorted(texts) and all(a != b for a, b in zip(texts, out))
    assert out == R.shuffle_transcripts(texts, seed=2)
    with pytest.raises(ValueError, match="at least 2"):
        R.shuffle_transcripts(["ONE"], seed=0)


def test_make_trigger_is_seeded_unit_rms_and_band_limited():
    trig = R.make_trigger(16000, seed=1, duration_s=0.1)
    assert trig.shape == (1600,) and trig.dtype == torch.float32
    assert abs(float(trig.double().square().mean()) - 1) < 1e-5
    assert torch.equal(trig, R.make_trigger(16000, seed=1, duration_s=0.1))
    assert not torch.equal(trig, R.make_trigger(16000, seed=2, duration_s=0.1))
    spectrum = torch.fft.rfft(trig.double()).abs()
    freqs = torch.fft.rfftfreq(1600, 1 / 16000)
    assert float(freqs[int(spectrum.argmax())]) >= 900 and float(freqs[int(spectrum.argmax())]) <= 4100
    with pytest.raises(ValueError, match="samples"):
        R.make_trigger(16000, seed=0, duration_s=0.0)


def test_add_trigger_snr_and_position():
    wav = torch.sin(torch.arange(8000.0) / 7.0) * 0.3
    trig = R.make_trigger(16000, seed=0, duration_s=0.05)  # 800 samples
    for position, offset in (("start", 0), ("end", 7200), ("middle", 3600), (123, 123)):
        out = R.add_trigger(wav, trig, snr_db=10.0, position=position)
        added = out - wav
        assert torch.count_nonzero(added[:offset]) == 0 and torch.count_nonzero(added[offset + 800 :]) == 0
        p_added = float(added[offset : offset + 800].double().square().mean())  # power over the trigger
        snr = 10 * math.log10(float(wav.double().square().mean()) / p_added)
        assert abs(snr - 10.0) < 1e-3
    stereo = torch.stack([wav, wav])
    assert torch.allclose(R.add_trigger(stereo, trig, gain=0.5)[1, :800], wav[:800] + 0.5 * trig)
    with pytest.raises(ValueError, match="exactly one of snr_db and gain"):
        R.add_trigger(wav, trig)
    with pytest.raises(ValueError, match="longer than the audio"):
        R.add_trigger(wav[:100], trig, gain=1.0)
    with pytest.raises(ValueError, match="non-silent"):
        R.add_trigger(torch.zeros(1000), trig, snr_db=5.0)
    with pytest.raises(ValueError, match="offset must be an int"):
        trigger_offset(1000, 800, 300)


def test_data_poisoners_are_deterministic_per_utterance():
    wav = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    backdoor = R.get_data_attack("audio_backdoor", target_text="OPEN THE DOOR", fraction=0.5, seed=1)
    results = [backdoor(wav, "SOME WORDS", f"utt{i}") for i in range(200)]
    poisoned = [r for r in results if r[1] == "OPEN THE DOOR"]
    assert 70 < len(poisoned) < 130  # ~ Binomial(200, 0.5)
    assert all(torch.equal(w, backdoor.apply_trigger(wav)) for w, _ in poisoned)
    assert all(torch.equal(w, wav) for w, t in results if t == "SOME WORDS")
    assert [r[1] for r in results] == [backdoor(wav, "SOME WORDS", f"utt{i}")[1] for i in range(200)]
    flip = R.get_data_attack("transcript_flip", mode="reverse_words", fraction=1.0)
    assert flip(wav, "A B C", "u1") == (wav, "C B A")
    none = R.get_data_attack("transcript_flip", fraction=0.0)
    assert none(wav, "A B C", "u1")[1] == "A B C"
    with pytest.raises(ValueError, match="fraction must be in"):
        R.get_data_attack("audio_backdoor", target_text="X", fraction=2.0)
