"""LibriSpeech-layout reader: split folders -> SpeechBrain CSV manifests.

Layout read (the real corpus and the synthetic one)::

    data_folder/SPEAKERS.TXT                      (or data_folder/<split>/SPEAKERS.TXT)
    data_folder/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
    data_folder/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac   (or .wav, any sample rate)

Each split gives ``save_folder/<split>.csv`` with columns
``ID, duration, wav, spk_id, gender, wrd, chapter, sample_rate``. Bad input (audio without a
transcript line, a transcript line without audio, unreadable, truncated, empty or multi-channel
audio, misplaced files) raises :class:`DataPrepError` naming every offending file; with
``skip_bad=True`` those utterances are left out and listed in ``save_folder/skipped_<split>.txt``.
A missing folder or a split with no utterances is always an error.
"""

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import soundfile
from tqdm import tqdm

from data_prep.manifest import MANIFEST_COLUMNS, DataPrepError, atomic_write_text, read_marker, write_csv_atomic, \
    write_marker
from data_prep.speakers import UNKNOWN_GENDER, find_speakers_txt, read_speakers_txt

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".flac", ".wav")
CSV_COLUMNS = MANIFEST_COLUMNS + ("chapter", "sample_rate")
MARKER_NAME = ".librispeech_prepare.json"
PREPARE_VERSION = 1
_MAX_LISTED = 20
_TAIL_FRAMES = 256


@dataclass(frozen=True)
class Problem:
    """A file that cannot be used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class _Utterance:
    utt_id: str
    spk_id: str
    chapter: str
    audio: Path
    words: str


def parse_splits(splits):
    """Normalise ``splits`` (a list of names or one comma-separated string) to a tuple of names."""
    if isinstance(splits, str):
        splits = splits.split(",")
    names = tuple(str(name).strip() for name in splits)
    if not names or any(not name for name in names):
        raise ValueError(f"splits must name at least one split and no empty ones, got {splits!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"splits lists a split twice: {splits!r}")
    for name in names:
        if "/" in name or "\\" in name or name in (".", ".."):
            raise ValueError(f"split {name!r} must be a folder name inside data_folder, not a path")
    return names


def _read_transcripts(path, spk_id, chapter, problems):
    """utt_id -> words for one ``<spk>-<chapter>.trans.txt``; malformed lines become problems."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(path, f"unreadable transcript file ({error})"))
        return {}
    pattern = re.compile(rf"{re.escape(spk_id)}-{re.escape(chapter)}-\d+")
    entries = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or not pattern.fullmatch(parts[0]):
            problems.append(Problem(path, f"line {number} is not '<{spk_id}-{chapter}-N> TRANSCRIPT': {line!r}"))
        elif parts[0] in entries:
            problems.append(Problem(path, f"line {number}: utterance {parts[0]} appears twice"))
        else:
            entries[parts[0]] = " ".join(parts[1].upper().split())
    return entries


def _scan_split(split_dir, problems):
    """Find the utterances of a split (audio matched with transcript lines)."""
    audio, transcripts, transcript_file = {}, {}, {}
    for root, dirs, files in os.walk(split_dir):
        dirs.sort()
        depth = len(Path(root).relative_to(split_dir).parts)
        for name in sorted(files):
            path = Path(root) / name
            is_audio = path.suffix.lower() in AUDIO_EXTENSIONS
            is_transcript = name.endswith(".trans.txt")
            if not (is_audio or is_transcript):
                continue
            spk_id, chapter = (Path(root).parent.name, Path(root).name) if depth == 2 else ("?", "?")
            if is_transcript:
                if depth != 2 or name != f"{spk_id}-{chapter}.trans.txt":
                    problems.append(Problem(path, "transcript file is not at "
                                                  "<spk>/<chapter>/<spk>-<chapter>.trans.txt"))
                    continue
                for utt_id, words in _read_transcripts(path, spk_id, chapter, problems).items():
                    transcripts[utt_id] = words
                    transcript_file[utt_id] = path
                continue
            utt_id = path.name[: -len(path.suffix)]
            if depth != 2 or not re.fullmatch(rf"{re.escape(spk_id)}-{re.escape(chapter)}-\d+", utt_id):
                problems.append(Problem(path, "audio file is not at <spk>/<chapter>/<spk>-<chapter>-<utt>.flac|.wav"))
            elif utt_id in audio:
                problems.append(Problem(path, f"second audio file for utterance {utt_id} (also {audio[utt_id]})"))
            else:
                audio[utt_id] = path
    utterances = []
    for utt_id, path in audio.items():
        if utt_id not in transcripts:
            expected = path.parent / f"{path.parent.parent.name}-{path.parent.name}.trans.txt"
            problems.append(Problem(path, f"audio without a transcript line (none for {utt_id} in {expected})"))
            continue
        spk_id, chapter = path.parent.parent.name, path.parent.name
        utterances.append(_Utterance(utt_id, spk_id, chapter, path, transcripts[utt_id]))
    for utt_id in sorted(set(transcripts) - set(audio)):
        problems.append(Problem(transcript_file[utt_id], f"transcript line for {utt_id} has no audio file "
                                                         f"({utt_id}.flac or .wav)"))
    return sorted(utterances, key=lambda u: u.utt_id)


def _inspect_audio(path):
    """(frames, sample_rate, None) for usable mono audio, else (0, 0, reason)."""
    try:
        with soundfile.SoundFile(str(path)) as handle:
            frames, rate, channels = handle.frames, handle.samplerate, handle.channels
            if channels != 1:
                return 0, 0, f"expected mono audio, got {channels} channels"
            if frames <= 0:
                return 0, 0, "audio has no samples"
            start = max(0, frames - _TAIL_FRAMES)  # reading the tail catches truncated files cheaply
            try:
                handle.seek(start)
                complete = len(handle.read(frames - start, dtype="int16")) == frames - start
            except (soundfile.LibsndfileError, RuntimeError) as error:
                complete, detail = False, f": {error}"
            else:
                detail = ""
            if not complete:
                return 0, 0, f"audio is truncated or corrupt (its header promises {frames} samples{detail})"
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        return 0, 0, f"unreadable or corrupt audio ({error})"
    return frames, rate, None


def audio_facts(path):
    """(frames, sample_rate) of a mono audio file, reading its tail to catch truncation.

    Raises
    ------
    DataPrepError
        Unreadable, corrupt, truncated, empty or multi-channel audio (naming the file).
    """
    frames, rate, reason = _inspect_audio(path)
    if reason is not None:
        raise DataPrepError(f"{path}: {reason}")
    return frames, rate


def _fail(split, split_dir, problems):
    listed = "\n".join(f"  {p.path}: {p.reason}" for p in problems[:_MAX_LISTED])
    more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
    raise DataPrepError(f"split {split!r} ({split_dir}) has {len(problems)} bad file(s); fix them or use "
                        f"skip_bad=True (--skip-bad) to skip them with a report:\n{listed}{more}")


def prepare_split(data_folder, split, save_folder, skip_bad=False, progress=True):
    """Write ``save_folder/<split>.csv`` for one split; returns its path (no skip check)."""
    split_dir = Path(data_folder) / split
    if not split_dir.is_dir():
        raise DataPrepError(f"split folder {split_dir} does not exist")
    speakers_path = find_speakers_txt(split_dir)
    if speakers_path is None:
        logger.warning("no SPEAKERS.TXT in %s or its parent: gender is 'unknown' for every speaker", split_dir)
    speakers = read_speakers_txt(speakers_path) if speakers_path is not None else {}
    problems = []
    rows = []
    for utt in tqdm(_scan_split(split_dir, problems), desc=f"reading {split}", unit="utt", disable=not progress):
        frames, rate, reason = _inspect_audio(utt.audio)
        if reason is not None:
            problems.append(Problem(utt.audio, reason))
            continue
        info = speakers.get(utt.spk_id)
        rows.append({"ID": utt.utt_id, "duration": frames / rate, "wav": str(utt.audio.resolve()),
                     "spk_id": utt.spk_id, "gender": info.gender if info else UNKNOWN_GENDER, "wrd": utt.words,
                     "chapter": utt.chapter, "sample_rate": rate})
    if problems and not skip_bad:
        _fail(split, split_dir, problems)
    if skip_bad:
        report = Path(save_folder) / f"skipped_{split}.txt"
        lines = [f"# {len(problems)} file(s) skipped in split {split!r} of {split_dir}"]
        lines += [f"{p.path}\t{p.reason}" for p in problems]
        atomic_write_text(report, "\n".join(lines) + "\n")
        if problems:
            logger.warning("skipped %d bad file(s) in split %r; see %s", len(problems), split, report)
    if not rows:
        raise DataPrepError(f"split folder {split_dir} holds no usable utterances")
    return write_csv_atomic(Path(save_folder) / f"{split}.csv", CSV_COLUMNS, rows)


def prepare_librispeech(data_folder, save_folder, splits, skip_bad=False, progress=True):
    """Prepare CSV manifests for the given splits; skip when already prepared identically.

    Parameters
    ----------
    data_folder : str or Path
        Folder holding the split folders (e.g. ``.../LibriSpeech``).
    save_folder : str or Path
        Where ``<split>.csv`` (and ``skipped_<split>.txt`` with ``skip_bad``) are written.
    splits : sequence of str or str
        Split folder names, or one comma-separated string.
    skip_bad : bool
        Skip bad files (listed in a report, with a logged warning) instead of raising.
    progress : bool
        Show tqdm progress bars.

    Returns
    -------
    dict of str to pathlib.Path
        Split name -> CSV path.
    """
    data_folder = Path(data_folder).resolve()
    save_folder = Path(save_folder).resolve()
    names = parse_splits(splits)
    if not data_folder.is_dir():
        raise DataPrepError(f"data folder {data_folder} does not exist")
    config = {"preparation": "librispeech", "version": PREPARE_VERSION, "data_folder": str(data_folder),
              "splits": list(names), "skip_bad": bool(skip_bad)}
    csv_paths = {name: save_folder / f"{name}.csv" for name in names}
    marker = save_folder / MARKER_NAME
    if read_marker(marker) == config and all(path.is_file() for path in csv_paths.values()):
        logger.info("%s already prepared with the same configuration: skipping", save_folder)
        return csv_paths
    save_folder.mkdir(parents=True, exist_ok=True)
    if marker.exists():
        marker.unlink()  # an interrupted run must not leave a stale marker next to new manifests
    for name in names:
        prepare_split(data_folder, name, save_folder, skip_bad=skip_bad, progress=progress)
    write_marker(marker, config)
    return csv_paths
