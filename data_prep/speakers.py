"""Reading LibriSpeech ``SPEAKERS.TXT``.

The real file looks like::

    ; Some readers are listed under more than one subset ...
    ;ID      |SEX| SUBSET           |MINUTES| NAME
    14      | F | train-clean-360  | 25.03 | Kristin LeMoine
    60      | M | train-clean-100  | 20.18 | |CBW|Simon

Lines starting with ``;`` are comments; fields are separated by ``|`` with ragged spacing, and
the NAME (the last field) may itself contain ``|``, so a line is split at its first four bars.
A SEX other than F or M gives ``"unknown"``: gender is never guessed.

Corpora without SPEAKERS.TXT can give their speakers' genders in a Kaldi ``spk2gender`` file
(one ``<speaker-id> <m|f>`` per line); :func:`read_speakers_file` reads either format.
"""

from dataclasses import dataclass
from pathlib import Path

from data_prep.manifest import DataPrepError

UNKNOWN_GENDER = "unknown"


@dataclass(frozen=True)
class SpeakerInfo:
    """One SPEAKERS.TXT entry.

    Attributes
    ----------
    spk_id : str
    gender : str
        ``"F"``, ``"M"`` or ``"unknown"``.
    subset : str
    minutes : float or None
        None when the field is empty.
    name : str
    """

    spk_id: str
    gender: str
    subset: str
    minutes: float | None
    name: str


def parse_speaker_line(line, source="SPEAKERS.TXT", line_number=0):
    """Parse one non-comment SPEAKERS.TXT line into a :class:`SpeakerInfo`."""
    fields = [field.strip() for field in line.split("|", 4)]
    where = f"{source}:{line_number}"
    if len(fields) != 5:
        raise DataPrepError(f"{where}: expected 'ID | SEX | SUBSET | MINUTES | NAME', got {line.strip()!r}")
    spk_id, sex, subset, minutes_field, name = fields
    if not spk_id or any(ch.isspace() for ch in spk_id):
        raise DataPrepError(f"{where}: bad speaker id {spk_id!r}")
    minutes = None
    if minutes_field:
        try:
            minutes = float(minutes_field)
        except ValueError:
            raise DataPrepError(f"{where}: MINUTES {minutes_field!r} is not a number") from None
    gender = sex.upper() if sex.upper() in ("F", "M") else UNKNOWN_GENDER
    return SpeakerInfo(spk_id, gender, subset, minutes, name)


def read_speakers_txt(path):
    """Read a SPEAKERS.TXT file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict of str to SpeakerInfo
        Keyed by speaker id. Speakers absent from the file are absent from the dict; callers
        give them gender ``"unknown"``.

    Raises
    ------
    DataPrepError
        Missing or undecodable file, malformed line or duplicate id (the message names the
        file and line).
    """
    path = Path(path)
    text = _read_speakers_file(path)
    speakers = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith(";"):
            continue
        info = parse_speaker_line(line, source=str(path), line_number=line_number)
        if info.spk_id in speakers:
            raise DataPrepError(f"{path}:{line_number}: speaker {info.spk_id} is listed twice")
        speakers[info.spk_id] = info
    return speakers


def _read_speakers_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataPrepError(f"speakers file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataPrepError(f"cannot read speakers file {path}: {error}") from None


def find_speakers_txt(split_dir):
    """The SPEAKERS.TXT at the split folder's root or one level up, or None when there is none."""
    split_dir = Path(split_dir)
    for candidate in (split_dir / "SPEAKERS.TXT", split_dir.parent / "SPEAKERS.TXT"):
        if candidate.is_file():
            return candidate
    return None


def read_spk2gender(path):
    """Read a Kaldi ``spk2gender`` file (``<speaker-id> <m|f>`` per line, case-insensitive).

    Returns
    -------
    dict of str to SpeakerInfo
        Keyed by speaker id; ``subset`` and ``name`` are empty and ``minutes`` is None.

    Raises
    ------
    DataPrepError
        Missing or undecodable file, a line without exactly two fields, a gender other than
        m/f, or a duplicate id (the message names the file and line).
    """
    path = Path(path)
    text = _read_speakers_file(path)
    speakers = {}
    for line_number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{path}:{line_number}"
        if len(fields) != 2:
            raise DataPrepError(f"{where}: expected '<speaker-id> <m|f>' (Kaldi spk2gender), got {line.strip()!r}")
        spk_id, sex = fields
        if sex.lower() not in ("m", "f"):
            raise DataPrepError(f"{where}: gender {sex!r} is not m or f")
        if spk_id in speakers:
            raise DataPrepError(f"{where}: speaker {spk_id} is listed twice")
        speakers[spk_id] = SpeakerInfo(spk_id, sex.upper(), "", None, "")
    return speakers


def read_speakers_file(path):
    """Read speaker metadata from a SPEAKERS.TXT-format file or a Kaldi ``spk2gender`` file.

    The format is detected from the content: a file whose first non-blank, non-comment line
    contains ``|`` is SPEAKERS.TXT, anything else is read as ``spk2gender``.

    Returns
    -------
    dict of str to SpeakerInfo

    Raises
    ------
    DataPrepError
        As :func:`read_speakers_txt` / :func:`read_spk2gender`; also for a file with no speakers.
    """
    path = Path(path)
    text = _read_speakers_file(path)
    first = next((line for line in text.splitlines() if line.strip() and not line.strip().startswith(";")), None)
    if first is None:
        raise DataPrepError(f"speakers file {path} lists no speakers")
    return read_speakers_txt(path) if "|" in first else read_spk2gender(path)
