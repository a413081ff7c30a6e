"""Anonymize a corpus folder into a new folder of the same layout (``speechfl anonymize``).

Every audio file is replaced by its anonymized version at the same relative path (same format,
16-bit PCM, the file's own sample rate); every other file (``*.trans.txt``, ``SPEAKERS.TXT``,
``utt2spk``, ``spk2gender``, ``text``, ``enrolls``, ``trials_*``) is copied unchanged. Speakers
come from the LibriSpeech layout (``<spk>/<chapter>/<utt>.flac``) or, inside a Kaldi data dir,
from ``utt2spk``; a Kaldi dir's audio is written to ``<dir>/wav/<utt>.<ext>`` and its
``wav.scp`` rewritten to point there.

Work is parallel over utterances (at most 2 worker processes, one torch thread each) with a
progress bar. Files are written atomically, so an existing output is a finished one and a rerun
skips it; ``OUT/.speechfl_anonymize.json`` records the anonymizer, and a rerun with a different
one is refused rather than mixing two anonymizers in one folder. Output that would clip is
scaled to a peak of 0.999.
"""

from __future__ import annotations

import io
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import soundfile
from tqdm import tqdm

from speechfl.io import atomic_write_bytes, atomic_write_text

AUDIO_EXTENSIONS = (".flac", ".wav")
MARKER = ".speechfl_anonymize.json"
MAX_WORKERS = 2
_PEAK = 0.999


class AnonymizationError(ValueError):
    """Bad input to an anonymization run; the message names the file."""


@dataclass(frozen=True)
class Job:
    src: Path
    dst: Path
    utt_id: str
    spk_id: str


@dataclass(frozen=True)
class AnonymizeSummary:
    written: int
    skipped: int
    copied: int
    out_dir: Path


def _kaldi_jobs(data_dir: Path, out_dir: Path, in_root: Path) -> Tuple[List[Job], str, set]:
    """Jobs for one Kaldi dir, its rewritten wav.scp text, and the source audio paths it covers."""
    from data_prep.kaldi import read_kaldi_dir

    kaldi = read_kaldi_dir(data_dir)
    dst_dir = out_dir / data_dir.relative_to(in_root)
    jobs, scp = [], []
    for r in kaldi.rows:
        src = Path(r["wav"])
        rel = Path("wav") / f"{r['ID']}{src.suffix.lower()}"
        jobs.append(Job(src, dst_dir / rel, r["ID"], r["spk_id"]))
        scp.append(f"{r['ID']} {rel.as_posix()}\n")
    return jobs, "".join(scp), {Path(r["wav"]).resolve() for r in kaldi.rows}


def plan(in_dir: Path, out_dir: Path) -> Tuple[List[Job], List[Tuple[Path, Path]], Dict[Path, str]]:
    """Audio jobs, files to copy, and rewritten ``wav.scp`` texts for ``in_dir`` -> ``out_dir``."""
    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    jobs: List[Job] = []
    scps: Dict[Path, str] = {}
    covered: set = set()
    for scp in sorted(in_dir.rglob("wav.scp")):
        k_jobs, text, audio = _kaldi_jobs(scp.parent, out_dir, in_dir)
        jobs += k_jobs
        scps[out_dir / scp.relative_to(in_dir)] = text
        covered |= audio
    copies = []
    for dirpath, dirs, files in os.walk(in_dir):
        dirs.sort()
        for name in sorted(files):
            src = Path(dirpath) / name
            rel = src.relative_to(in_dir)
            if name.startswith(".speechfl") or name == "wav.scp":
                continue  # our markers (this run's, the synthetic corpus's) describe the input, not the output
            if src.suffix.lower() in AUDIO_EXTENSIONS:
                if src.resolve() in covered:
                    continue
                utt = src.name[: -len(src.suffix)]
                jobs.append(Job(src, out_dir / rel, utt, src.parent.parent.name))
            else:
                copies.append((src, out_dir / rel))
    source: Dict[str, Path] = {}
    for j in jobs:
        # the same utterance listed by two Kaldi dirs is fine (same seed, same output); two audio files are not
        if source.setdefault(j.utt_id, j.src.resolve()) != j.src.resolve():
            raise AnonymizationError(f"{in_dir}: utterance id {j.utt_id} names two audio files ({source[j.utt_id]} "
                                     f"and {j.src}): seeds are drawn per utterance id, so ids must be unique")
    return jobs, copies, scps


_WORKER: Dict[str, object] = {}


def _init_worker(spec: dict) -> None:
    import torch

    from speechfl.anonymization.anonymizers import build_anonymizer

    torch.set_num_threads(1)
    _WORKER["anonymizer"] = build_anonymizer(dict(spec))


def anonymize_file(job: Job, anonymizer=None) -> None:
    """Read, anonymize and atomically write one utterance."""
    anonymizer = anonymizer or _WORKER["anonymizer"]
    try:
        wav, rate = soundfile.read(str(job.src), dtype="float64", always_2d=True)
        info = soundfile.info(str(job.src))
    except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
        raise AnonymizationError(f"{job.src}: unreadable audio ({error})") from None
    if wav.shape[1] != 1 or wav.shape[0] == 0:
        raise AnonymizationError(f"{job.src}: expected non-empty mono audio, got shape {wav.shape}")
    out = anonymizer(wav[:, 0], rate, utt_id=job.utt_id, spk_id=job.spk_id)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > _PEAK:
        out = out * (_PEAK / peak)
    buffer = io.BytesIO()
    soundfile.write(buffer, out, rate, format=info.format, subtype="PCM_16")
    atomic_write_bytes(job.dst, buffer.getvalue())


def _check_marker(out_dir: Path, spec: dict) -> None:
    import json

    marker = out_dir / MARKER
    if marker.is_file():
        old = json.loads(marker.read_text(encoding="utf-8"))
        if old != spec:
            raise AnonymizationError(f"{out_dir} was written by anonymizer {old}, not {spec}: use a new folder")
    else:
        atomic_write_text(marker, json.dumps(spec, indent=2, sort_keys=True) + "\n")


def anonymize_corpus(in_dir, out_dir, spec: dict, workers: int = MAX_WORKERS, progress: bool = True,
                     ) -> AnonymizeSummary:
    """Anonymize ``in_dir`` into ``out_dir`` with the anonymizer ``spec`` (``{name: ..., **params}``)."""
    from speechfl.anonymization.anonymizers import build_anonymizer

    in_dir, out_dir = Path(in_dir).resolve(), Path(out_dir).resolve()
    if not in_dir.is_dir():
        raise AnonymizationError(f"input folder {in_dir} does not exist")
    if out_dir == in_dir or in_dir in out_dir.parents:
        raise AnonymizationError(f"output folder {out_dir} must be outside the input folder {in_dir}")
    anonymizer = build_anonymizer(dict(spec))  # validates the spec before any side effect
    jobs, copies, scps = plan(in_dir, out_dir)
    if not jobs:
        raise AnonymizationError(f"{in_dir} holds no audio (.flac/.wav) to anonymize")
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_marker(out_dir, dict(spec))
    for src, dst in copies:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    for path, text in scps.items():
        atomic_write_text(path, text)
    todo = [j for j in jobs if not j.dst.exists()]
    workers = max(1, min(MAX_WORKERS, int(workers)))
    bar = tqdm(total=len(todo), desc=f"anonymizing ({spec.get('name')})", unit="utt", disable=not progress)
    if workers == 1 or len(todo) < 8:
        for job in todo:
            anonymize_file(job, anonymizer)
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(dict(spec),)) as pool:
            for _ in pool.map(anonymize_file, todo, chunksize=8):
                bar.update(1)
    bar.close()
    return AnonymizeSummary(written=len(todo), skipped=len(jobs) - len(todo), copied=len(copies), out_dir=out_dir)


def parse_params(extra: List[str]) -> Dict[str, object]:
    """``["--alpha_min=0.6", "--per=speaker"]`` -> ``{"alpha_min": 0.6, "per": "speaker"}`` (YAML values)."""
    import yaml

    params: Dict[str, object] = {}
    for item in extra:
        if not item.startswith("--") or "=" not in item:
            raise AnonymizationError(f"anonymizer parameters are --name=value, got {item!r}")
        key, value = item[2:].split("=", 1)
        params[key.replace("-", "_")] = yaml.safe_load(value)
    return params


def spec_of(method: str, params: Optional[Dict[str, object]] = None, seed: int = 0) -> dict:
    spec = {"name": method, "seed": int(seed)}
    spec.update(params or {})
    return spec
