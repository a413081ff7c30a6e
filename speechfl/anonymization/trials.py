"""VoicePrivacy enrollment / trial lists: read when given, generated deterministically when not.

Formats (VPC 2024, Kaldi style):

* ``enrolls``: one enrollment utterance id per line (a first column; further columns ignored);
* ``trials``, ``trials_f``, ``trials_m``: ``<enrolled speaker> <test utterance> target|nontarget``.

A speaker's enrollment model is built from its enrollment utterances; a trial scores one test
utterance against one enrolled speaker. Reading validates every line: unknown speakers (not
enrolled), utterances absent from the split, enrollment utterances used as test utterances,
and labels that contradict ``utt2spk`` are errors naming the file and line.

Generation (:func:`generate_trials`): per speaker, its utterances are shuffled by
``derive_seed(seed, speaker)`` and the first ``n_enroll`` (at most a third, at least one) enroll
the speaker; the others are test utterances. Each test utterance gets one target trial and one
non-target trial against every other enrolled speaker *of the same gender* (VPC's same-gender
``trials_f`` / ``trials_m``). Speakers with fewer than 2 utterances are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from data_prep.manifest import DataPrepError
from speechfl.compression.base import derive_seed

LABELS = {"target": True, "nontarget": False}


@dataclass(frozen=True)
class Trial:
    speaker: str  # enrolled speaker
    utt: str  # test utterance
    target: bool


@dataclass(frozen=True)
class TrialList:
    """Enrollment utterances and trials of one split; ``source`` is ``"read"`` or ``"generated"``."""

    enrolls: Tuple[str, ...]
    trials: Tuple[Trial, ...]
    source: str

    def enrolled_speakers(self, utt2spk: Mapping[str, str]) -> List[str]:
        return sorted({utt2spk[u] for u in self.enrolls})

    def counts(self) -> Dict[str, int]:
        n_t = sum(t.target for t in self.trials)
        return {"enroll_utterances": len(self.enrolls), "target": n_t, "nontarget": len(self.trials) - n_t}


def _lines(path: Path) -> Iterable[Tuple[int, List[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataPrepError(f"{path}: unreadable ({error})") from error
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield number, line.split()


def read_trials(enrolls_files: Sequence[Path], trial_files: Sequence[Path], utt2spk: Mapping[str, str]) -> TrialList:
    """Read and validate VPC lists against the split's ``utt2spk`` (see the module docstring)."""
    if not enrolls_files or not trial_files:
        raise DataPrepError("trial lists need an 'enrolls' file and at least one 'trials' file")
    enrolls: List[str] = []
    seen = set()
    for path in enrolls_files:
        for number, fields in _lines(path):
            utt = fields[0]
            if utt not in utt2spk:
                raise DataPrepError(f"{path}:{number}: enrollment utterance {utt} is listed but absent from the split")
            if utt not in seen:
                seen.add(utt)
                enrolls.append(utt)
    enrolled = {utt2spk[u] for u in enrolls}
    trials: List[Trial] = []
    for path in trial_files:
        for number, fields in _lines(path):
            if len(fields) != 3 or fields[2] not in LABELS:
                raise DataPrepError(f"{path}:{number}: expected '<spk> <utt> target|nontarget', got {' '.join(fields)!r}")
            spk, utt, label = fields
            if spk not in enrolled:
                raise DataPrepError(f"{path}:{number}: unknown speaker {spk} (no enrollment utterance of it in "
                                    f"{', '.join(map(str, enrolls_files))})")
            if utt not in utt2spk:
                raise DataPrepError(f"{path}:{number}: test utterance {utt} is listed but absent from the split")
            if utt in seen:
                raise DataPrepError(f"{path}:{number}: utterance {utt} is both an enrollment and a test utterance")
            if LABELS[label] != (utt2spk[utt] == spk):
                raise DataPrepError(f"{path}:{number}: label {label} contradicts utt2spk ({utt} is spoken by "
                                    f"{utt2spk[utt]})")
            trials.append(Trial(spk, utt, LABELS[label]))
    if not trials:
        raise DataPrepError(f"no trials in {', '.join(map(str, trial_files))}")
    return TrialList(tuple(enrolls), tuple(trials), "read")


def generate_trials(rows: Sequence[Mapping[str, str]], seed: int = 0, n_enroll: int = 5) -> TrialList:
    """Deterministic enrollment/test split and same-gender trials (see the module docstring)."""
    if n_enroll < 1:
        raise ValueError(f"n_enroll must be >= 1, got {n_enroll}")
    by_spk: Dict[str, List[str]] = {}
    gender: Dict[str, str] = {}
    for r in rows:
        by_spk.setdefault(r["spk_id"], []).append(r["ID"])
        gender[r["spk_id"]] = r["gender"]
    enrolls, tests = [], {}
    for spk in sorted(by_spk):
        utts = sorted(by_spk[spk])
        if len(utts) < 2:
            continue
        order = np.random.default_rng(derive_seed(seed, "trials", spk)).permutation(len(utts))
        k = max(1, min(n_enroll, len(utts) // 3))
        enrolls += sorted(utts[i] for i in order[:k])
        tests[spk] = sorted(utts[i] for i in order[k:])
    speakers = sorted(tests)
    trials = []
    for spk in speakers:
        for utt in tests[spk]:
            for other in speakers:
                if gender[other] == gender[spk]:
                    trials.append(Trial(other, utt, other == spk))
    if not any(t.target for t in trials) or all(t.target for t in trials):
        raise ValueError(f"cannot generate trials: need at least 2 speakers of one gender with >= 2 utterances "
                         f"each, got {len(speakers)} usable speakers")
    return TrialList(tuple(enrolls), tuple(trials), "generated")


def trials_for_split(split, seed: int = 0, n_enroll: int = 5) -> TrialList:
    """The split's VPC lists when it has them (``enrolls`` + ``trials*``), else generated ones."""
    files = split.trial_files
    trial_paths = [p for k in ("trials", "trials_f", "trials_m") for p in files.get(k, ())]
    utt2spk = {r["ID"]: r["spk_id"] for r in split.rows}
    if files.get("enrolls") and trial_paths:
        return read_trials(files["enrolls"], trial_paths, utt2spk)
    if files.get("enrolls") or trial_paths:
        raise DataPrepError(f"split {split.name}: found {sorted(files)} but trial lists need both 'enrolls' and "
                            "'trials' (or 'trials_f'/'trials_m'); give both or neither (then they are generated)")
    return generate_trials(split.rows, seed=seed, n_enroll=n_enroll)


def write_trials(trials: TrialList, folder, gender_of: Mapping[str, str]) -> None:
    """Write ``enrolls``, ``trials_f`` and ``trials_m`` (per gender of the enrolled speaker) into ``folder``."""
    from speechfl.io import atomic_write_text

    folder = Path(folder)
    atomic_write_text(folder / "enrolls", "".join(f"{u}\n" for u in trials.enrolls))
    for g, suffix in (("F", "f"), ("M", "m")):
        lines = [f"{t.speaker} {t.utt} {'target' if t.target else 'nontarget'}\n" for t in trials.trials
                 if gender_of.get(t.speaker) == g]
        atomic_write_text(folder / f"trials_{suffix}", "".join(lines))
