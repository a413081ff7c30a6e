"""Carve a speaker-disjoint development split out of a training manifest.

For corpora in LibriSpeech layout that ship no ``dev`` split. The carve is deterministic (it
depends only on the speaker ids, their genders and ``seed``, not on file order) and
gender-balanced where possible: speakers are taken round-robin over the genders present, each
gender's speakers in the order of ``sha1(f"{seed}|{spk_id}")``. The default number of dev
speakers is 10% of the training speakers, at least one per gender when the training split has
at least two speakers of each, and never so many that fewer than two training speakers remain.

Writes, next to the training manifest::

    <train>_without_dev.csv     training rows of the speakers kept for training
    dev_carved.csv              the carved speakers' rows
    dev_carved.txt              which speakers were carved, why, and how
"""

import csv
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from data_prep.manifest import DataPrepError, atomic_write_text, write_csv_atomic

logger = logging.getLogger(__name__)

MIN_TRAIN_SPEAKERS = 2


@dataclass(frozen=True)
class CarvedSplit:
    """Paths and speakers of a carved dev split."""

    train_csv: Path
    dev_csv: Path
    report: Path
    dev_speakers: tuple
    train_speakers: tuple


def default_dev_speakers(genders: Dict[str, str]) -> int:
    """10% of the speakers, one per gender at least when each gender has two, leaving two to train."""
    n = len(genders)
    by_gender: Dict[str, int] = {}
    for g in genders.values():
        by_gender[g] = by_gender.get(g, 0) + 1
    wanted = max(1, round(0.1 * n))
    if all(count >= 2 for count in by_gender.values()):
        wanted = max(wanted, len(by_gender))
    return max(1, min(wanted, n - MIN_TRAIN_SPEAKERS))


def choose_dev_speakers(genders: Dict[str, str], n_dev: int, seed: int = 0) -> List[str]:
    """``n_dev`` speakers, round-robin over genders, each gender in hashed order (see module doc)."""
    if not 1 <= n_dev <= len(genders) - 1:
        raise DataPrepError(f"cannot carve {n_dev} dev speaker(s) from {len(genders)} training speaker(s); "
                            "at least one must stay in training")
    order = {g: sorted((s for s, sg in genders.items() if sg == g),
                       key=lambda s: hashlib.sha1(f"{seed}|{s}".encode()).hexdigest())
             for g in sorted(set(genders.values()))}
    chosen: List[str] = []
    while len(chosen) < n_dev:
        for g in order:
            if order[g] and len(chosen) < n_dev:
                chosen.append(order[g].pop(0))
    return sorted(chosen)


def carve_dev_split(train_csv, n_dev: Optional[int] = None, seed: int = 0) -> CarvedSplit:
    """Split ``train_csv`` into a training manifest and a speaker-disjoint dev manifest.

    Parameters
    ----------
    train_csv : str or Path
        A manifest written by :func:`data_prep.librispeech.prepare_librispeech`.
    n_dev : int, optional
        Number of dev speakers (default: :func:`default_dev_speakers`).
    seed : int
        Changes which speakers are chosen.

    Raises
    ------
    DataPrepError
        Fewer than two training speakers, or ``n_dev`` out of range.
    """
    train_csv = Path(train_csv)
    with open(train_csv, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        rows = list(reader)
    genders = {}
    for r in rows:
        genders.setdefault(r["spk_id"], r["gender"])
    if len(genders) < MIN_TRAIN_SPEAKERS:
        raise DataPrepError(f"{train_csv} has {len(genders)} speaker(s): a speaker-disjoint dev split needs at least "
                            f"{MIN_TRAIN_SPEAKERS}; add a dev split folder to the corpus")
    if n_dev is None:
        n_dev = default_dev_speakers(genders)
    if isinstance(n_dev, bool) or not isinstance(n_dev, int):
        raise DataPrepError(f"carve_dev_speakers must be an integer, got {n_dev!r}")
    dev = choose_dev_speakers(genders, n_dev, seed)
    dev_set = set(dev)
    folder = train_csv.parent
    out_train = write_csv_atomic(folder / f"{train_csv.stem}_without_dev.csv", columns,
                                 [r for r in rows if r["spk_id"] not in dev_set])
    dev_rows = [r for r in rows if r["spk_id"] in dev_set]
    out_dev = write_csv_atomic(folder / "dev_carved.csv", columns, dev_rows)
    kept = sorted(set(genders) - dev_set)
    counts = {g: sum(genders[s] == g for s in dev) for g in sorted(set(genders.values()))}
    lines = [f"# dev split carved from {train_csv} (no dev split folder in the corpus)",
             f"# rule: {n_dev} speaker(s), round-robin over genders, each gender in sha1('{seed}|spk_id') order",
             f"# dev speakers by gender: {counts}; {len(dev_rows)} utterances; {len(kept)} training speakers remain",
             "spk_id\tgender\tutterances"]
    lines += [f"{s}\t{genders[s]}\t{sum(r['spk_id'] == s for r in dev_rows)}" for s in dev]
    report = atomic_write_text(folder / "dev_carved.txt", "\n".join(lines) + "\n")
    logger.warning("no dev split: carved a speaker-disjoint dev split of %d speaker(s) %s (%d utterances) from %s; "
                   "%d training speakers remain; see %s", len(dev), counts, len(dev_rows), train_csv.name, len(kept),
                   report)
    return CarvedSplit(Path(out_train), Path(out_dev), Path(report), tuple(dev), tuple(kept))
