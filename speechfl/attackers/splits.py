"""Speaker splits for attackers: closed-set identification and open-set verification.

* Open set: a gender-stratified ``heldout_frac`` of the speakers is held out;
  the attacker never sees them in training, and verification trials are
  built among them only.
* Closed set: every remaining ("attack") speaker's utterances are split
  ``1 - id_test_frac`` / ``id_test_frac`` (at least one each), the attacker
  trains on the first part and identifies the second.

Both need every speaker to have at least 2 utterances. Speakers with fewer
raise ``ValueError`` naming them, or, with ``drop_singletons=True``, are
excluded and listed in ``excluded_speakers`` (with a logged warning).
"""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, List, Sequence

from speechfl.attackers.types import AttackPrecondition

logger = logging.getLogger(__name__)


@dataclass
class SpeakerSplit:
    attack_speakers: List[str]
    heldout_speakers: List[str]
    id_train: List[int]
    id_test: List[int]
    heldout: List[int]
    excluded_speakers: List[str]


def plan_speaker_split(
    spk_ids: Sequence[str],
    genders: Sequence[str],
    *,
    heldout_frac: float = 0.3,
    id_test_frac: float = 0.4,
    seed: int = 0,
    drop_singletons: bool = False,
) -> SpeakerSplit:
    """Deterministic (seeded) split; see the module docstring."""
    if not 0.0 < heldout_frac < 1.0 or not 0.0 < id_test_frac < 1.0:
        raise ValueError(f"heldout_frac and id_test_frac must be in (0, 1), got {heldout_frac}, {id_test_frac}")
    by_spk: Dict[str, List[int]] = defaultdict(list)
    for i, s in enumerate(spk_ids):
        by_spk[s].append(i)
    few = sorted(s for s, idx in by_spk.items() if len(idx) < 2)
    if few and not drop_singletons:
        raise AttackPrecondition(
            f"{len(few)} speakers have fewer than 2 utterances ({few[:10]}): closed-set identification and "
            "verification trials need at least 2 per speaker; pass drop_singletons=True to exclude them"
        )
    if few:
        logger.warning("excluding %d speakers with a single utterance from the speaker attack: %s", len(few), few[:10])
    spk_gender = {s: g for s, g in zip(spk_ids, genders)}
    speakers = sorted(s for s in by_spk if s not in few)
    rng = random.Random(seed)
    heldout: List[str] = []
    for g in sorted({spk_gender[s] for s in speakers}):
        group = [s for s in speakers if spk_gender[s] == g]
        rng.shuffle(group)
        k = int(round(heldout_frac * len(group)))
        k = min(max(k, 1 if len(group) >= 3 else 0), len(group) - 1)
        heldout += group[:k]
    attack = [s for s in speakers if s not in set(heldout)]
    if len(attack) < 2 or len(heldout) < 2:
        raise AttackPrecondition(
            f"speaker attack needs at least 2 attack speakers and 2 held-out speakers, got {len(attack)} and "
            f"{len(heldout)} from {len(speakers)} usable speakers (need about 6+ speakers, 3+ per gender)"
        )
    id_train: List[int] = []
    id_test: List[int] = []
    for s in attack:
        idx = list(by_spk[s])
        rng.shuffle(idx)
        n_test = min(max(1, int(round(id_test_frac * len(idx)))), len(idx) - 1)
        id_test += sorted(idx[:n_test])
        id_train += sorted(idx[n_test:])
    held_idx = sorted(i for s in heldout for i in by_spk[s])
    return SpeakerSplit(
        attack_speakers=attack,
        heldout_speakers=sorted(heldout),
        id_train=sorted(id_train),
        id_test=sorted(id_test),
        heldout=held_idx,
        excluded_speakers=few,
    )


def grouped_folds(groups: Sequence[str], labels: Sequence[str], n_folds: int, seed: int = 0) -> List[List[int]]:
    """Split item indices into ``n_folds`` folds, no group in two folds, labels stratified by group.

    Each label's groups are shuffled and dealt round-robin, so every fold
    holds groups of every label when each label has ``>= n_folds`` groups.
    """
    group_label: Dict[str, str] = {}
    for g, lab in zip(groups, labels):
        if group_label.setdefault(g, lab) != lab:
            raise ValueError(f"group {g!r} has two labels: {group_label[g]!r} and {lab!r}")
    rng = random.Random(seed)
    fold_of: Dict[str, int] = {}
    offset = 0
    for lab in sorted(set(group_label.values())):
        gs = sorted(g for g, l in group_label.items() if l == lab)
        rng.shuffle(gs)
        for k, g in enumerate(gs):
            fold_of[g] = (k + offset) % n_folds
        offset += len(gs)
    folds: List[List[int]] = [[] for _ in range(n_folds)]
    for i, g in enumerate(groups):
        folds[fold_of[g]].append(i)
    return folds
