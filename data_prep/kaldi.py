"""Kaldi data directory reader: ``wav.scp``, ``utt2spk``, ``spk2gender`` [, ``text``] -> CSV manifest.

Layout read (a VoicePrivacy ``data/<set>`` folder, or any Kaldi data dir)::

    data_dir/wav.scp      <utt> <audio path>           (paths absolute, or relative to data_dir,
                                                          its parent, or the working directory)
    data_dir/utt2spk      <utt> <spk>
    data_dir/spk2gender   <spk> m|f
    data_dir/text         <utt> <transcript>            (optional)
    data_dir/enrolls, trials, trials_f, trials_m        (optional; read by speechfl.anonymization.trials)

The manifest has the columns of :mod:`data_prep.librispeech` (``ID, duration, wav, spk_id,
gender, wrd, chapter, sample_rate``; ``chapter`` is ``-``). Without ``text`` every ``wrd`` is
empty and the manifest is *privacy-only*: its sidecar ``<name>.meta.json`` says so
(:func:`is_privacy_only`; ASR code must check it, the token pipeline would see empty transcripts). Unsupported Kaldi features are refused with
a clear error: ``segments`` (sub-utterance ranges) and pipe commands in ``wav.scp``
(``sox ... |``). Every error names the file and line.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from data_prep.librispeech import CSV_COLUMNS, audio_facts
from data_prep.manifest import DataPrepError, atomic_write_text, write_csv_atomic

GENDERS = {"m": "M", "f": "F"}


@dataclass(frozen=True)
class KaldiDir:
    """A parsed Kaldi data directory: manifest rows in ``wav.scp`` order, and whether it has text."""

    path: Path
    rows: Tuple[dict, ...]
    has_text: bool

    @property
    def utt2spk(self) -> Dict[str, str]:
        return {r["ID"]: r["spk_id"] for r in self.rows}

    @property
    def spk2gender(self) -> Dict[str, str]:
        return {r["spk_id"]: r["gender"] for r in self.rows}


def read_table(path: Path, n_fields: Optional[int] = 2, rest: bool = False) -> List[Tuple[int, List[str]]]:
    """``(line number, fields)`` of a whitespace table; blank lines skipped, bad lines raise naming file:line.

    ``rest=True`` splits once: ``[key, everything else]`` (``wav.scp``, ``text``).
    """
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataPrepError(f"{path}: unreadable ({error})") from error
    out, seen = [], {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(maxsplit=1) if rest else line.split()
        if rest and len(fields) == 1:
            fields.append("")
        if n_fields is not None and len(fields) != n_fields:
            raise DataPrepError(f"{path}:{number}: expected {n_fields} fields, got {len(fields)}: {line!r}")
        if fields[0] in seen:
            raise DataPrepError(f"{path}:{number}: {fields[0]!r} already listed on line {seen[fields[0]]}")
        seen[fields[0]] = number
        out.append((number, fields))
    return out


def _resolve_audio(data_dir: Path, scp: Path, number: int, utt: str, spec: str) -> Path:
    spec = spec.strip()
    if spec.endswith("|"):
        raise DataPrepError(f"{scp}:{number}: utterance {utt} is a pipe command ({spec!r}); pipes in wav.scp are "
                            "unsupported: convert the audio to files (e.g. sox/ffmpeg) and list their paths")
    candidates = [Path(spec)] if Path(spec).is_absolute() else [data_dir / spec, data_dir.parent / spec,
                                                                 Path.cwd() / spec]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise DataPrepError(f"{scp}:{number}: utterance {utt} is listed but its audio {spec} is absent "
                        f"(looked in {', '.join(str(c.parent) for c in candidates)})")


def read_kaldi_dir(data_dir) -> KaldiDir:
    """Parse and validate a Kaldi data directory (see the module docstring); audio headers are read."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataPrepError(f"Kaldi data dir {data_dir} does not exist")
    if (data_dir / "segments").exists():
        raise DataPrepError(f"{data_dir / 'segments'}: Kaldi 'segments' (sub-utterance ranges) are unsupported; "
                            "cut the segments into their own audio files first")
    for required in ("wav.scp", "utt2spk", "spk2gender"):
        if not (data_dir / required).is_file():
            raise DataPrepError(f"{data_dir / required} is missing: a Kaldi data dir needs wav.scp, utt2spk and "
                                "spk2gender (gender is required for per-gender EER)")
    scp = data_dir / "wav.scp"
    wavs = {f[0]: (n, f[1]) for n, f in read_table(scp, rest=True)}
    utt2spk_path = data_dir / "utt2spk"
    utt2spk = {f[0]: (n, f[1]) for n, f in read_table(utt2spk_path)}
    gender_path = data_dir / "spk2gender"
    spk2gender = {}
    for n, (spk, g) in read_table(gender_path):
        if g.lower() not in GENDERS:
            raise DataPrepError(f"{gender_path}:{n}: gender of speaker {spk} must be m or f, got {g!r}")
        spk2gender[spk] = GENDERS[g.lower()]
    for utt, (n, _) in wavs.items():
        if utt not in utt2spk:
            raise DataPrepError(f"{scp}:{n}: utterance {utt} has no speaker in {utt2spk_path}")
    for utt, (n, spk) in utt2spk.items():
        if utt not in wavs:
            raise DataPrepError(f"{utt2spk_path}:{n}: utterance {utt} is listed but absent from {scp}")
        if spk not in spk2gender:
            raise DataPrepError(f"{utt2spk_path}:{n}: speaker {spk} of utterance {utt} is not in {gender_path}")
    text_path = data_dir / "text"
    texts = {}
    if text_path.is_file():
        texts = {f[0]: (n, " ".join(f[1].upper().split())) for n, f in read_table(text_path, rest=True)}
        for utt, (n, _) in texts.items():
            if utt not in wavs:
                raise DataPrepError(f"{text_path}:{n}: utterance {utt} is listed but absent from {scp}")
        for utt, (n, _) in wavs.items():
            if utt not in texts:
                raise DataPrepError(f"{scp}:{n}: utterance {utt} has no transcript in {text_path}")
    rows = []
    for utt, (n, spec) in wavs.items():
        audio = _resolve_audio(data_dir, scp, n, utt, spec)
        try:
            frames, rate = audio_facts(audio)
        except DataPrepError as error:
            raise DataPrepError(f"{scp}:{n}: {error}") from None
        spk = utt2spk[utt][1]
        rows.append({"ID": utt, "duration": frames / rate, "wav": str(audio), "spk_id": spk,
                     "gender": spk2gender[spk], "wrd": texts[utt][1] if texts else "", "chapter": "-",
                     "sample_rate": rate})
    if not rows:
        raise DataPrepError(f"{scp} lists no utterances")
    return KaldiDir(path=data_dir, rows=tuple(rows), has_text=bool(texts))


def meta_path(csv_path) -> Path:
    csv_path = Path(csv_path)
    return csv_path.with_name(csv_path.stem + ".meta.json")


def is_privacy_only(csv_path) -> bool:
    """True when the manifest was written without transcripts (ASR training and WER are impossible)."""
    meta = meta_path(csv_path)
    if not meta.is_file():
        return False
    return bool(json.loads(meta.read_text(encoding="utf-8")).get("privacy_only", False))


def write_manifest(rows, csv_path, *, source: str, has_text: bool) -> Path:
    """Write rows as a manifest plus its ``.meta.json`` sidecar (``privacy_only`` = no transcripts)."""
    csv_path = write_csv_atomic(csv_path, CSV_COLUMNS, rows)
    atomic_write_text(meta_path(csv_path), json.dumps({"source": str(source), "privacy_only": not has_text,
                                                       "utterances": len(rows)}, indent=2) + "\n")
    return csv_path


def prepare_kaldi(data_dir, save_folder, name: Optional[str] = None) -> Path:
    """Write ``save_folder/<name>.csv`` (default: the folder's name) from a Kaldi data dir; returns its path."""
    kaldi = read_kaldi_dir(data_dir)
    name = name or Path(data_dir).resolve().name
    return write_manifest(kaldi.rows, Path(save_folder) / f"{name}.csv", source=kaldi.path, has_text=kaldi.has_text)


def main(argv=None) -> int:
    """``python -m data_prep.kaldi DATA_DIR SAVE_FOLDER``: prints the manifest path."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2:
        print("usage: python -m data_prep.kaldi DATA_DIR SAVE_FOLDER", file=sys.stderr)
        return 2
    try:
        print(prepare_kaldi(argv[0], argv[1]))
    except DataPrepError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
