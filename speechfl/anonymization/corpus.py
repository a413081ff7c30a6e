"""Evaluation corpora with or without transcripts: one split -> manifest rows.

A split ``NAME`` of a corpus folder ``ROOT`` is, in this order of precedence:

1. a Kaldi data dir ``ROOT/NAME`` (has ``wav.scp``; :mod:`data_prep.kaldi`);
2. the VoicePrivacy layout: Kaldi dirs ``ROOT/NAME_enrolls`` and ``ROOT/NAME_trials_f`` /
   ``ROOT/NAME_trials_m`` (merged; their ``enrolls`` / ``trials`` files are the trial lists);
3. a LibriSpeech-layout split folder ``ROOT/NAME/<spk>/<chapter>/<spk>-<chapter>-<n>.flac|wav``,
   gender from ``SPEAKERS.TXT`` (in the split or ``ROOT``), transcripts from ``*.trans.txt``
   when *every* chapter has one, else privacy-only (``wrd`` empty).

Trial lists found beside the split (``enrolls``, ``trials``, ``trials_f``, ``trials_m``) are
returned as paths for :mod:`speechfl.anonymization.trials`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Tuple

from data_prep.kaldi import read_kaldi_dir
from data_prep.librispeech import AUDIO_EXTENSIONS, audio_facts
from data_prep.manifest import DataPrepError
from data_prep.speakers import UNKNOWN_GENDER, find_speakers_txt, read_speakers_txt

TRIAL_FILES = ("enrolls", "trials", "trials_f", "trials_m")


@dataclass(frozen=True)
class SplitData:
    """One evaluation split: manifest rows, whether all have transcripts, and trial-list files found."""

    name: str
    rows: Tuple[dict, ...]
    has_text: bool
    trial_files: Dict[str, Tuple[Path, ...]] = field(default_factory=dict)

    @property
    def by_id(self) -> Dict[str, dict]:
        return {r["ID"]: r for r in self.rows}


def _trial_files(dirs: List[Path]) -> Dict[str, Tuple[Path, ...]]:
    found: Dict[str, List[Path]] = {}
    for d in dirs:
        for name in TRIAL_FILES:
            if (d / name).is_file():
                found.setdefault(name, []).append(d / name)
    return {k: tuple(v) for k, v in found.items()}


def _scan_librispeech(split_dir: Path) -> Tuple[List[dict], bool]:
    speakers_path = find_speakers_txt(split_dir)
    speakers = read_speakers_txt(speakers_path) if speakers_path is not None else {}
    rows, texts, chapters_without_text = [], {}, 0
    for dirpath, dirs, files in os.walk(split_dir):
        dirs.sort()
        here = Path(dirpath)
        if len(here.relative_to(split_dir).parts) != 2:
            continue
        spk, chapter = here.parent.name, here.name
        trans = here / f"{spk}-{chapter}.trans.txt"
        if trans.is_file():
            for number, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), start=1):
                parts = line.split(maxsplit=1)
                if parts:
                    texts[parts[0]] = " ".join(parts[1].upper().split()) if len(parts) == 2 else ""
        else:
            chapters_without_text += 1
        for name in sorted(files):
            path = here / name
            if path.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            utt = path.name[: -len(path.suffix)]
            if not re.fullmatch(rf"{re.escape(spk)}-{re.escape(chapter)}-\d+", utt):
                raise DataPrepError(f"{path}: audio file is not at <spk>/<chapter>/<spk>-<chapter>-<n>.flac|.wav")
            frames, rate = audio_facts(path)
            info = speakers.get(spk)
            rows.append({"ID": utt, "duration": frames / rate, "wav": str(path.resolve()), "spk_id": spk,
                         "gender": info.gender if info else UNKNOWN_GENDER, "wrd": "", "chapter": chapter,
                         "sample_rate": rate})
    has_text = chapters_without_text == 0 and bool(rows) and all(r["ID"] in texts for r in rows)
    if has_text:
        for r in rows:
            r["wrd"] = texts[r["ID"]]
    return sorted(rows, key=lambda r: r["ID"]), has_text


def load_split(root, name: str) -> SplitData:
    """The split ``name`` of corpus folder ``root`` (see the module docstring)."""
    root = Path(root)
    direct = root / name
    if (direct / "wav.scp").is_file():
        kaldi = read_kaldi_dir(direct)
        return SplitData(name, kaldi.rows, kaldi.has_text, _trial_files([direct]))
    vpc = [root / f"{name}_{part}" for part in ("enrolls", "trials_f", "trials_m")]
    if all((d / "wav.scp").is_file() for d in vpc):
        parts = [read_kaldi_dir(d) for d in vpc]
        merged: Dict[str, dict] = {}
        for part in parts:
            for r in part.rows:
                merged.setdefault(r["ID"], r)
        return SplitData(name, tuple(merged.values()), all(p.has_text for p in parts), _trial_files(vpc))
    if direct.is_dir():
        rows, has_text = _scan_librispeech(direct)
        if not rows:
            raise DataPrepError(f"split folder {direct} holds no audio at <spk>/<chapter>/*.flac|.wav")
        return SplitData(name, tuple(rows), has_text, _trial_files([direct]))
    raise DataPrepError(f"no split {name!r} in {root}: expected a Kaldi dir {direct} (wav.scp), VPC dirs "
                        f"{name}_enrolls/{name}_trials_f/{name}_trials_m, or a LibriSpeech-layout folder {direct}")
