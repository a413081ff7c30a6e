"""SPEAKERS.TXT parsing on the real LibriSpeech format."""

import pytest

from data_prep.manifest import DataPrepError
from data_prep.speakers import SpeakerInfo, find_speakers_txt, parse_speaker_line, read_speakers_txt

# Header and lines in the style of the real LibriSpeech SPEAKERS.TXT (ragged spacing, a name
# containing '|', a name with spaces and an apostrophe).
REAL_STYLE = """\
; Some readers are listed under more than one subset (e.g. train-clean-100 and train-other-500),
; as the latter only comprises the readers' "other" recordings.
;
;ID      |SEX| SUBSET           |MINUTES| NAME
14      | F | train-clean-360  | 25.03 | Kristin LeMoine
16      | F | train-clean-360  | 25.11 | Alys AtteWater
17      | M | train-clean-360  | 25.04 | Gord Mackenzie
60      | M | train-clean-100  | 20.18 | |CBW|Simon
1088    | F | train-clean-360  | 25.10 | Christabel Aubrey's Reader
   8063 |  M|dev-other|10.5|  Robert Snoza
"""


@pytest.fixture
def speakers_file(tmp_path):
    path = tmp_path / "SPEAKERS.TXT"
    path.write_text(REAL_STYLE, encoding="utf-8")
    return path


def test_real_format_lines(speakers_file):
    speakers = read_speakers_txt(speakers_file)
    assert list(speakers) == ["14", "16", "17", "60", "1088", "8063"]
    assert speakers["14"] == SpeakerInfo("14", "F", "train-clean-360", 25.03, "Kristin LeMoine")
    assert speakers["17"].gender == "M"
    assert speakers["1088"].name == "Christabel Aubrey's Reader"


def test_name_containing_bars_is_kept_whole(speakers_file):
    assert read_speakers_txt(speakers_file)["60"] == SpeakerInfo("60", "M", "train-clean-100", 20.18, "|CBW|Simon")


def test_odd_spacing(speakers_file):
    assert read_speakers_txt(speakers_file)["8063"] == SpeakerInfo("8063", "M", "dev-other", 10.5, "Robert Snoza")


def test_missing_speaker_is_absent_not_guessed(speakers_file):
    speakers = read_speakers_txt(speakers_file)
    assert "19" not in speakers  # callers map absent speakers to "unknown"


@pytest.mark.parametrize("sex", ["", "X", "?", "N/A"])
def test_unknown_sex_is_unknown(sex):
    assert parse_speaker_line(f"42 | {sex} | train | 1.0 | Someone").gender == "unknown"


def test_lower_case_sex_is_read():
    assert parse_speaker_line("42 | f | train | 1.0 | Someone").gender == "F"


def test_empty_minutes_is_none():
    assert parse_speaker_line("42 | M | train |  | Someone").minutes is None


@pytest.mark.parametrize("line, fragment", [
    ("42 | M | train | 1.0", "expected 'ID | SEX | SUBSET | MINUTES | NAME'"),
    ("42 | M | train | ten | Someone", "MINUTES 'ten' is not a number"),
    (" | M | train | 1.0 | Someone", "bad speaker id"),
])
def test_malformed_line_names_file_and_line(tmp_path, line, fragment):
    path = tmp_path / "SPEAKERS.TXT"
    path.write_text(";ID|SEX|SUBSET|MINUTES|NAME\n14 | F | train | 1.0 | A\n" + line + "\n", encoding="utf-8")
    with pytest.raises(DataPrepError, match=fragment) as info:
        read_speakers_txt(path)
    assert f"{path}:3" in str(info.value)


def test_duplicate_speaker_is_an_error(tmp_path):
    path = tmp_path / "SPEAKERS.TXT"
    path.write_text("14 | F | a | 1 | A\n14 | M | b | 2 | B\n", encoding="utf-8")
    with pytest.raises(DataPrepError, match="listed twice"):
        read_speakers_txt(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataPrepError, match=str(tmp_path / "nope.txt")):
        read_speakers_txt(tmp_path / "nope.txt")


def test_find_at_split_root_then_one_level_up(tmp_path):
    split = tmp_path / "LibriSpeech" / "dev-clean"
    split.mkdir(parents=True)
    assert find_speakers_txt(split) is None
    (tmp_path / "LibriSpeech" / "SPEAKERS.TXT").write_text(REAL_STYLE)
    assert find_speakers_txt(split) == tmp_path / "LibriSpeech" / "SPEAKERS.TXT"
    (split / "SPEAKERS.TXT").write_text(REAL_STYLE)
    assert find_speakers_txt(split) == split / "SPEAKERS.TXT"
    (tmp_path / "SPEAKERS.TXT").write_text(REAL_STYLE)  # two levels up is not looked at
    (split / "SPEAKERS.TXT").unlink()
    (tmp_path / "LibriSpeech" / "SPEAKERS.TXT").unlink()
    assert find_speakers_txt(split) is None
