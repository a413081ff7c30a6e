"""The embedded synthetic corpus: espeak-ng speech written in the exact LibriSpeech layout.

``generate_corpus(out_dir)`` writes::

    out_dir/SPEAKERS.TXT
    out_dir/{train,dev,test}/<spk>/<chapter>/<spk>-<chapter>.trans.txt
    out_dir/{train,dev,test}/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac     (16 kHz mono int16)

Speakers are gender balanced overall and within every split, and the splits are speaker
disjoint; ``female_fraction`` (and per-gender ``utterances_female``/``utterances_male``) makes
the *training* split deliberately imbalanced while dev and test stay balanced, so a gender gap
can be created and measured. The accent of a speaker is its espeak-ng language voice, written
in the NAME field of SPEAKERS.TXT and read back by :func:`read_accents`. Every speaker is a distinct voice: (language/accent, variant, pitch, range, rate),
with the variant's gender as the speaker's gender, and reads its own sentences from
:mod:`data_prep.text`. The same configuration gives the same bytes: each speaker is
synthesized on a fresh :class:`~data_prep.espeak.EspeakEngine` (no state carried between
speakers or runs) with a fixed per-utterance noise seed, and all randomness comes from
``random.Random`` streams seeded from ``seed``.
"""

import contextlib
import functools
import io
import logging
import math
import os
import random
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
from scipy.signal import firwin, resample_poly
from tqdm import tqdm

from data_prep.espeak import EspeakEngine, VoiceSpec, variant_changes_audio
from data_prep.manifest import DataPrepError, atomic_write_text, read_marker, write_marker
from data_prep.text import generate_sentences, to_transcript

logger = logging.getLogger(__name__)

DEFAULT_SPEAKERS = 48
DEFAULT_UTTERANCES = 50
SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test")
GENERATOR_VERSION = 1
MARKER_NAME = ".speechfl_synthetic.json"
UTTERANCES_PER_CHAPTER = 25

# espeak-ng English language voices (accents); all verified to exist (en-gb is NOT a voice name)
LANGUAGES = ("en-us", "en", "en-gb-x-rp", "en-gb-scotland", "en-029", "en-us-nyc", "en-gb-x-gbclan",
             "en-gb-x-gbcwmd")
# Variant files in espeak-ng-data/voices/!v whose header says "gender female" / "gender male"
# and whose median F0 at pitch 50 is above 165 Hz / below 135 Hz (robot, whisper and
# creaky variants left out). Names are case sensitive.
FEMALE_VARIANTS = ("f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda",
                   "linda", "steph", "grandma")
MALE_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Andy", "Denis", "Diogo", "Henrique", "Hugo",
                 "Lee", "antonio", "michel", "miguel", "sandro", "travis")
PITCH_RANGE = {"F": (42, 75), "M": (30, 62)}  # espeak pitch 0-99 (50 = the variant's own); F0 ranges do not overlap
INTONATION_RANGE = (20, 80)
RATE_RANGE = (140, 190)  # words per minute


@dataclass(frozen=True)
class SyntheticSpeaker:
    """One planned speaker: LibriSpeech-style id, gender (``"F"``/``"M"``), split and voice."""

    spk_id: str
    gender: str
    split: str
    voice: VoiceSpec


def split_sizes(n_speakers, split_fractions=(0.67, 0.165, 0.165)):
    """Speakers per split (train, dev, test): dev and test rounded, at least one each.

    Raises
    ------
    ValueError
        If ``n_speakers`` cannot give every split at least one speaker, or the fractions are bad.
    """
    if not isinstance(n_speakers, int) or isinstance(n_speakers, bool):
        raise TypeError(f"n_speakers must be an int, got {type(n_speakers).__name__}")
    fractions = tuple(float(f) for f in split_fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split_fractions must be 3 positive numbers summing to 1, got {split_fractions!r}")
    n_dev = max(1, round(n_speakers * fractions[1]))
    n_test = max(1, round(n_speakers * fractions[2]))
    n_train = n_speakers - n_dev - n_test
    if n_train < 1:
        raise ValueError(f"n_speakers={n_speakers} is too small to give train, dev and test at least one "
                         f"speaker each with split_fractions={split_fractions} (need at least 3)")
    return n_train, n_dev, n_test


def check_fraction(female_fraction):
    """``None`` or a float in [0, 1]; anything else raises ValueError."""
    if female_fraction is None:
        return None
    if isinstance(female_fraction, bool) or not isinstance(female_fraction, (int, float)) \
            or not 0.0 <= float(female_fraction) <= 1.0:
        raise ValueError(f"female_fraction must be a number in [0, 1] or None, got {female_fraction!r}")
    return float(female_fraction)


def gender_sequence(sizes, female_fraction=None):
    """Genders of the speakers in plan order (train block, then dev, then test).

    ``None``: F, M, F, ... over the whole list (the balanced default). Otherwise the train
    split gets ``round(female_fraction * n_train)`` female speakers spread evenly through it
    (speaker ``i`` is female when ``floor((i+1) f) > floor(i f)`` with ``f = n_female/n_train``),
    and dev and test alternate F, M, ... within each split (balanced evaluation).
    """
    n_speakers = sum(sizes)
    if female_fraction is None:
        return ["F" if index % 2 == 0 else "M" for index in range(n_speakers)]
    n_train = sizes[0]
    n_female = round(check_fraction(female_fraction) * n_train)
    genders = ["F" if ((i + 1) * n_female) // n_train > (i * n_female) // n_train else "M" for i in range(n_train)]
    for size in sizes[1:]:
        genders += ["F" if index % 2 == 0 else "M" for index in range(size)]
    return genders


def plan_speakers(n_speakers, seed=0, split_fractions=(0.67, 0.165, 0.165), female_fraction=None):
    """Choose every speaker's id, gender, split and distinct voice.

    Genders alternate F, M, F, ... and the splits take consecutive blocks, so every split is
    balanced to within one speaker; with ``female_fraction`` the train split holds
    ``round(female_fraction * n_train)`` female speakers instead (:func:`gender_sequence`).
    (language, variant) pairs cycle through shuffled lists so
    that pairs repeat only after all are used; pitch, range and rate are drawn uniformly, and the
    full voice tuple is unique.
    """
    sizes = split_sizes(n_speakers, split_fractions)
    genders = gender_sequence(sizes, female_fraction)
    rng = random.Random(f"speechfl-synthetic-voices-{seed}")
    variants = {"F": list(FEMALE_VARIANTS), "M": list(MALE_VARIANTS)}
    languages = {"F": list(LANGUAGES), "M": list(LANGUAGES)}
    for gender in ("F", "M"):
        rng.shuffle(variants[gender])
        rng.shuffle(languages[gender])
    split_of = [split for split, size in zip(SPLITS, sizes) for _ in range(size)]
    speakers, seen, count = [], set(), {"F": 0, "M": 0}
    for index in range(n_speakers):
        gender = genders[index]
        k = count[gender]
        count[gender] += 1
        n_var, n_lang = len(variants[gender]), len(languages[gender])
        variant = variants[gender][k % n_var]
        language = languages[gender][(k + k // n_var) % n_lang]
        while True:
            voice = VoiceSpec(language, variant, pitch=rng.randint(*PITCH_RANGE[gender]),
                              pitch_range=rng.randint(*INTONATION_RANGE), rate=rng.randint(*RATE_RANGE))
            if voice not in seen:
                break
        seen.add(voice)
        speakers.append(SyntheticSpeaker(str(1001 + index), gender, split_of[index], voice))
    return speakers


@functools.lru_cache(maxsize=8)
def _resampling_filter(up, down):
    # the filter scipy's resample_poly designs by default (Kaiser, beta 5), built once per ratio
    max_rate = max(up, down)
    return firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0))


def to_sample_rate(audio, rate, target=SAMPLE_RATE):
    """Polyphase resampling of int16 audio to ``target`` Hz, rounded and clipped to int16."""
    if rate == target:
        return audio.astype(np.int16)
    g = math.gcd(int(rate), int(target))
    up, down = target // g, int(rate) // g
    resampled = resample_poly(audio.astype(np.float64), up, down, window=_resampling_filter(up, down))
    return np.clip(np.rint(resampled), -32768, 32767).astype(np.int16)


def flac_bytes(audio, sample_rate=SAMPLE_RATE):
    """Encode int16 mono audio as FLAC in memory (one write per file is much faster on slow disks)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, audio, sample_rate, subtype="PCM_16", format="FLAC")
    return buffer.getvalue()


def _config(n_speakers, n_utterances, seed, split_fractions, imbalance=None):
    config = {"generator": "speechfl-synthetic", "version": GENERATOR_VERSION, "n_speakers": n_speakers,
              "n_utterances": n_utterances, "seed": seed, "split_fractions": [float(f) for f in split_fractions]}
    # only set keys enter the marker, so balanced corpora made before these options stay valid
    config.update({key: value for key, value in (imbalance or {}).items() if value is not None})
    return config


def utterance_counts(speakers, n_utterances, utterances_female=None, utterances_male=None):
    """Utterances per speaker: the per-gender count for train speakers when given, else ``n_utterances``."""
    per_gender = {"F": utterances_female, "M": utterances_male}
    return [per_gender[s.gender] if s.split == "train" and per_gender[s.gender] is not None else n_utterances
            for s in speakers]


def read_accents(speakers_txt):
    """Speaker id -> accent (the espeak-ng language voice) from a synthetic corpus's SPEAKERS.TXT.

    The NAME field reads ``espeak-ng <language>+<variant> pitch ...``; the language voice
    (``en-us``, ``en-gb-scotland``, ...) is the speaker's accent group. Raises DataPrepError
    (file and line named) on a NAME that is not in this form.
    """
    from data_prep.speakers import read_speakers_txt

    accents = {}
    for spk_id, info in read_speakers_txt(speakers_txt).items():
        fields = info.name.split()
        if len(fields) < 2 or fields[0] != "espeak-ng" or fields[1].split("+")[0] not in LANGUAGES:
            raise DataPrepError(f"{speakers_txt}: speaker {spk_id}: NAME {info.name!r} is not "
                                "'espeak-ng <language>+<variant> ...' (not a synthetic corpus)")
        accents[spk_id] = fields[1].split("+")[0]
    return accents


def _check_out_dir(out_dir, config):
    """Return True when ``out_dir`` already holds this completed corpus; raise if it holds another."""
    marker = read_marker(out_dir / MARKER_NAME)
    if marker is None:
        if out_dir.exists() and any(out_dir.iterdir()):
            raise DataPrepError(f"{out_dir} is not empty and holds no synthetic corpus marker ({MARKER_NAME}); "
                                "choose an empty or new folder")
        return False
    if marker.get("config") != config:
        raise DataPrepError(f"{out_dir} holds a synthetic corpus with another configuration "
                            f"{marker.get('config')}, requested {config}; choose another folder or delete it")
    if marker.get("complete"):
        return True
    logger.info("%s holds an unfinished corpus of the same configuration: generating it again", out_dir)
    for split in SPLITS:
        shutil.rmtree(out_dir / split, ignore_errors=True)
    return False


def _verify_variants(speakers):
    for variant in sorted({speaker.voice.variant for speaker in speakers}):
        if not variant_changes_audio("en-us", variant):
            raise RuntimeError(f"espeak-ng variant {variant!r} sounds exactly like the base voice: it is missing "
                               "from this espeak-ng-data (espeak falls back silently)")


def _speakers_txt(speakers, minutes):
    lines = ["; speechfl synthetic corpus, synthesized with espeak-ng",
             "; NAME gives the espeak-ng voice: language+variant, pitch (0-99), range (0-99), rate (words/min)",
             ";ID      |SEX| SUBSET           |MINUTES| NAME"]
    for speaker in speakers:
        voice = speaker.voice
        name = f"espeak-ng {voice.name} pitch {voice.pitch} range {voice.pitch_range} rate {voice.rate}"
        lines.append(f"{speaker.spk_id:<8}| {speaker.gender} | {speaker.split:<17}| "
                     f"{minutes[speaker.spk_id]:5.2f} | {name}")
    return "\n".join(lines) + "\n"


def _write_speaker(engine, speaker, index, n_utterances, seed, out_dir, bar):
    """Synthesize one speaker's chapters; returns its total duration in seconds."""
    rng = random.Random(f"speechfl-synthetic-text-{seed}-{index}")
    sentences = generate_sentences(rng, n_utterances)
    total_samples = 0
    for chapter_index in range(math.ceil(n_utterances / UTTERANCES_PER_CHAPTER)):
        chapter = str(int(speaker.spk_id) * 100 + chapter_index + 1)
        chapter_dir = out_dir / speaker.split / speaker.spk_id / chapter
        chapter_dir.mkdir(parents=True, exist_ok=True)
        start = chapter_index * UTTERANCES_PER_CHAPTER
        lines = []
        for utt, text in enumerate(sentences[start:start + UTTERANCES_PER_CHAPTER]):
            utt_id = f"{speaker.spk_id}-{chapter}-{utt:04d}"
            noise_seed = (seed * 1_000_003 + index * 10_007 + start + utt) % (2**31)
            audio = engine.synthesize(text, speaker.voice, seed=noise_seed)
            if audio.size == 0:
                raise RuntimeError(f"espeak-ng produced no audio for {utt_id} ({text!r}, {speaker.voice.name})")
            audio = to_sample_rate(audio, engine.sample_rate)
            (chapter_dir / f"{utt_id}.flac").write_bytes(flac_bytes(audio))
            total_samples += audio.size
            lines.append(f"{utt_id} {to_transcript(text)}")
            bar.update(1)
        atomic_write_text(chapter_dir / f"{speaker.spk_id}-{chapter}.trans.txt", "\n".join(lines) + "\n")
    return total_samples / SAMPLE_RATE


def _synthesize_speaker(speaker, index, n_utterances, seed, out_dir, bar):
    with EspeakEngine() as engine:
        return _write_speaker(engine, speaker, index, n_utterances, seed, out_dir, bar)


def generate_corpus(out_dir, n_speakers=DEFAULT_SPEAKERS, n_utterances=DEFAULT_UTTERANCES, seed=0,
                    split_fractions=(0.67, 0.165, 0.165), progress=True, workers=None, female_fraction=None,
                    utterances_female=None, utterances_male=None):
    """Synthesize the embedded corpus in the LibriSpeech layout (idempotent).

    Parameters
    ----------
    out_dir : str or Path
        Empty or new folder. If it holds a finished corpus of the same configuration this returns
        at once; a corpus of another configuration (or any foreign content) raises DataPrepError.
    n_speakers : int
        At least 3 (every split gets a speaker); half female, half male.
    n_utterances : int
        Utterances per speaker (sentences of 5-14 words, about 2-5 s).
    seed : int
        Seed of voices, sentences and espeak's noise: same seed, same bytes.
    split_fractions : tuple of 3 floats
        Fractions of speakers in train, dev, test.
    progress : bool
        Show a tqdm progress bar.
    workers : int or None
        Speakers synthesized in parallel threads (espeak runs without the GIL; each speaker has
        its own engine, so the bytes do not depend on it). None: ``min(4, os.cpu_count())``.
    female_fraction : float or None
        Fraction of female speakers in the *train* split (``round(f * n_train)`` of them,
        spread evenly); dev and test stay balanced. None: balanced everywhere.
    utterances_female, utterances_male : int or None
        Utterances of each female / male *train* speaker (dev and test keep ``n_utterances``).

    Returns
    -------
    pathlib.Path
        ``out_dir``.
    """
    if not isinstance(n_utterances, int) or isinstance(n_utterances, bool) or n_utterances < 1:
        raise ValueError(f"n_utterances must be a positive int, got {n_utterances!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"workers must be a positive int or None, got {workers!r}")
    for key, value in (("utterances_female", utterances_female), ("utterances_male", utterances_male)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"{key} must be a positive int or None, got {value!r}")
    female_fraction = check_fraction(female_fraction)
    speakers = plan_speakers(n_speakers, seed, split_fractions, female_fraction=female_fraction)
    counts = utterance_counts(speakers, n_utterances, utterances_female, utterances_male)
    out_dir = Path(out_dir).resolve()
    config = _config(n_speakers, n_utterances, seed, split_fractions,
                     {"female_fraction": female_fraction, "utterances_female": utterances_female,
                      "utterances_male": utterances_male})
    marker = read_marker(out_dir / MARKER_NAME)
    if marker is not None and marker.get("config") == config and marker.get("complete"):
        return out_dir  # finished: no lock needed (the folder may be read-only)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(out_dir.parent / f".{out_dir.name}.lock"):  # another process may be generating it now
        if _check_out_dir(out_dir, config):
            return out_dir
        _write_corpus(out_dir, speakers, counts, config, seed, progress, workers)
    return out_dir


@contextlib.contextmanager
def _exclusive(lock_path):
    """An exclusive advisory lock (``flock``) on ``lock_path`` for the duration: two processes (e.g. the cells of
    ``speechfl sweep --jobs``) asking for the same corpus generate it once; the second finds it complete."""
    import fcntl

    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_corpus(out_dir, speakers, counts, config, seed, progress, workers):
    out_dir.mkdir(parents=True, exist_ok=True)
    _verify_variants(speakers)
    with EspeakEngine() as probe:
        version = probe.version
    write_marker(out_dir / MARKER_NAME, {"config": config, "complete": False, "espeak_ng": version})
    with tqdm(total=sum(counts), desc="synthesizing", unit="utt", disable=not progress) as bar, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_synthesize_speaker, speaker, index, count, seed, out_dir, bar)
                   for index, (speaker, count) in enumerate(zip(speakers, counts))]
        minutes = {speaker.spk_id: future.result() / 60.0 for speaker, future in zip(speakers, futures)}
    atomic_write_text(out_dir / "SPEAKERS.TXT", _speakers_txt(speakers, minutes))
    write_marker(out_dir / MARKER_NAME, {"config": config, "complete": True, "espeak_ng": version})
