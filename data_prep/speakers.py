"""Reading LibriSpeech ``SPEAKERS.TXT``.

The real file looks like::

    ; Some readers are listed under more than one subset ...
    ;ID      |SEX| SUBSET           |MINUTES| NAME
    14      | F | train-clean-360  | 25.03 | Kristin LeMoine
    60      | M | train-clean-100  | 20.18 | |CBW|Simon

Lines starting with ``;`` are comments; fields are separated by ``|`` with ragged spacing, and
the NAME (the last field) may itself contain ``|``, so a line is split at its first four bars.
A SEX other than F or M gives ``"unknown"``: gender is never guessed.
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataPrepError(f"speakers file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataPrepError(f"cannot read speakers file {path}: {error}") from None
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


def find_speakers_txt(split_dir):
    """The SPEAKERS.TXT at the split folder's root or one level up, or None when there is none."""
    split_dir = Path(split_dir)
    for candidate in (split_dir / "SPEAKERS.TXT", split_dir.parent / "SPEAKERS.TXT"):
        if candidate.is_file():
            return candidate
    return None
