"""LibriSpeech-layout reader: split folders -> SpeechBrain CSV manifests.

Layout read (the real corpus and the synthetic one)::

    data_folder/SPEAKERS.TXT                      (or data_folder/<split>/SPEAKERS.TXT)
    data_folder/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
    data_folder/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac   (or .wav, any sample rate)

Each split gives ``save_folder/<split>.csv`` with columns
``ID, duration, wav, spk_id, gender, wrd, chapter, sample_rate``. Bad input (audio without a
transcript line, a transcript line without audio, unreadable, truncated, empty or multi-channel
audio, misplaced files, transcript characters that cannot be mapped to A-Z) raises
:class:`DataPrepError` naming every offending file; with ``skip_bad=True`` (``--skip-bad`` for
``speechfl prepare librispeech``, hparams ``skip_bad: true`` for ``speechfl train``) those
utterances are left out and listed in ``save_folder/skipped_<split>.txt``. A missing folder or a
split with no utterances is always an error.

Transcripts are normalised to the LibriSpeech convention (:mod:`data_prep.normalize`: upper
case, accents folded, punctuation dropped); every utterance whose transcript changed beyond
upper-casing is listed (file, utterance id, characters) in ``save_folder/normalized_<split>.txt``
with a logged warning. Speaker genders come from ``SPEAKERS.TXT`` (found next to the splits), or
from ``speakers_file`` (a SPEAKERS.TXT-format file or a Kaldi ``spk2gender`` file).
"""

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import soundfile
from tqdm import tqdm

from data_prep.manifest import MANIFEST_COLUMNS, DataPrepError, atomic_write_text, read_marker, write_csv_atomic, \
    write_marker
from data_prep.normalize import describe, normalize_transcript
from data_prep.speakers import UNKNOWN_GENDER, find_speakers_txt, read_speakers_file, read_speakers_txt

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".flac", ".wav")
CSV_COLUMNS = MANIFEST_COLUMNS + ("chapter", "sample_rate")
MARKER_NAME = ".librispeech_prepare.json"
PREPARE_VERSION = 2  # 2: transcripts normalised (accents folded, punctuation dropped), speakers_file
_MAX_LISTED = 20
_TAIL_FRAMES = 256


@dataclass(frozen=True)
class Problem:
    """A file that cannot be used, and why."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Normalisation:
    """A transcript line that normalisation changed beyond upper-casing."""

    path: Path
    line: int
    utt_id: str
    chars: tuple


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


def _read_transcripts(path, spk_id, chapter, problems, changes):
    """utt_id -> words for one ``<spk>-<chapter>.trans.txt``.

    Malformed lines and characters that cannot be mapped become problems; lines changed by
    normalisation are appended to ``changes``.
    """
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
            norm = normalize_transcript(parts[1])
            if norm.unmappable:
                problems.append(Problem(path, f"line {number}: utterance {parts[0]} has characters that cannot be "
                                              f"mapped to A-Z, apostrophe and space {describe(norm.unmappable)}; "
                                              "write them out as words"))
            elif not norm.text:
                problems.append(Problem(path, f"line {number}: utterance {parts[0]} has no words after "
                                              "normalisation"))
            else:
                if norm.changed:
                    changes.append(Normalisation(path, number, parts[0], norm.changed))
                entries[parts[0]] = norm.text
    return entries


def _scan_split(split_dir, problems, changes):
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
                for utt_id, words in _read_transcripts(path, spk_id, chapter, problems, changes).items():
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
    raise DataPrepError(f"split {split!r} ({split_dir}) has {len(problems)} bad file(s); fix them, or skip them "
                        f"with a report in skipped_{split}.txt: `skip_bad: true` in the hparams file (or "
                        f"--skip_bad=true) for `speechfl train`, --skip-bad for `speechfl prepare librispeech`:"
                        f"\n{listed}{more}")


def _report_normalisations(split, save_folder, changes):
    report = Path(save_folder) / f"normalized_{split}.txt"
    if not changes:
        if report.exists():
            report.unlink()
        return
    lines = [f"# {len(changes)} transcript(s) of split {split!r} normalised (accents folded, punctuation "
             "dropped): file:line, utterance id, characters changed"]
    lines += [f"{c.path}:{c.line}\t{c.utt_id}\t{describe(c.chars)}" for c in changes]
    atomic_write_text(report, "\n".join(lines) + "\n")
    first = changes[0]
    logger.warning("normalised %d transcript(s) in split %r (e.g. %s in %s:%d, characters %s); see %s",
                   len(changes), split, first.utt_id, first.path, first.line, describe(first.chars), report)


def prepare_split(data_folder, split, save_folder, skip_bad=False, progress=True, speakers=None):
    """Write ``save_folder/<split>.csv`` for one split; returns its path (no skip check).

    ``speakers`` (spk_id -> SpeakerInfo) replaces the split's SPEAKERS.TXT when given.
    """
    split_dir = Path(data_folder) / split
    if not split_dir.is_dir():
        raise DataPrepError(f"split folder {split_dir} does not exist")
    if speakers is None:
        speakers_path = find_speakers_txt(split_dir)
        if speakers_path is None:
            logger.warning("no SPEAKERS.TXT in %s or its parent (and no speakers_file): gender is 'unknown' for "
                           "every speaker", split_dir)
        speakers = read_speakers_txt(speakers_path) if speakers_path is not None else {}
    problems, changes = [], []
    rows = []
    for utt in tqdm(_scan_split(split_dir, problems, changes), desc=f"reading {split}", unit="utt",
                    disable=not progress):
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
    _report_normalisations(split, save_folder, changes)
    return write_csv_atomic(Path(save_folder) / f"{split}.csv", CSV_COLUMNS, rows)


def prepare_librispeech(data_folder, save_folder, splits, skip_bad=False, progress=True, speakers_file=None):
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
    speakers_file : str or Path, optional
        Speaker metadata for every split instead of SPEAKERS.TXT: a SPEAKERS.TXT-format file or a
        Kaldi ``spk2gender`` file (format detected; see :func:`data_prep.speakers.read_speakers_file`).

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
    speakers = None
    config = {"preparation": "librispeech", "version": PREPARE_VERSION, "data_folder": str(data_folder),
              "splits": sorted(names), "skip_bad": bool(skip_bad)}  # split order does not change the manifests
    if speakers_file:
        speakers_file = Path(speakers_file).resolve()
        speakers = read_speakers_file(speakers_file)
        config["speakers_file"] = str(speakers_file)
        config["speakers_sha1"] = hashlib.sha1(speakers_file.read_bytes()).hexdigest()
    csv_paths = {name: save_folder / f"{name}.csv" for name in names}
    marker = save_folder / MARKER_NAME
    if read_marker(marker) == config and all(path.is_file() for path in csv_paths.values()):
        logger.info("%s already prepared with the same configuration: skipping", save_folder)
        return csv_paths
    save_folder.mkdir(parents=True, exist_ok=True)
    if marker.exists():
        marker.unlink()  # an interrupted run must not leave a stale marker next to new manifests
    for name in names:
        prepare_split(data_folder, name, save_folder, skip_bad=skip_bad, progress=progress, speakers=speakers)
    write_marker(marker, config)
    return csv_paths
