"""Typed attacker input: a set of utterances as frame sequences with speaker labels.

Used for encoder representations (what a model exposes) and for raw Fbank
features (the no-protection reference). ``validate()`` raises a clear error
for every malformed input; attackers call it before doing anything.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Sequence

import torch


class AttackPrecondition(ValueError):
    """The data cannot support an attack (one gender, too few speakers or clients).

    Not a bug: the evaluation suite skips the attack and records this message
    as the reason. Any other exception raised by an attack is a bug and propagates.
    """


@dataclass
class UtteranceSet:
    """Representations or features of utterances.

    Attributes
    ----------
    frames : list of torch.Tensor
        One float tensor ``[T_i, D]`` per utterance (variable ``T_i``, same ``D``).
    spk_ids, genders, utt_ids : list of str
        Per-utterance speaker, gender label and unique utterance id.
    """

    frames: List[torch.Tensor]
    spk_ids: List[str]
    genders: List[str]
    utt_ids: List[str]

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def dim(self) -> int:
        return int(self.frames[0].shape[1])

    def validate(self) -> None:
        """Raise ``ValueError``/``TypeError`` naming the first problem found."""
        n = len(self.frames)
        if n == 0:
            raise ValueError("UtteranceSet is empty: no utterances to attack")
        for name in ("spk_ids", "genders", "utt_ids"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"UtteranceSet has {n} frame tensors but {len(getattr(self, name))} {name}")
        dup = [u for u, c in Counter(self.utt_ids).items() if c > 1]
        if dup:
            raise ValueError(f"duplicate utt_ids in UtteranceSet: {dup[:5]}")
        d0 = None
        for i, (f, u) in enumerate(zip(self.frames, self.utt_ids)):
            if not isinstance(f, torch.Tensor):
                raise TypeError(f"utterance {u!r}: frames must be a torch.Tensor, got {type(f).__name__}")
            if f.dim() != 2:
                raise ValueError(f"utterance {u!r}: frames must be [T, D], got shape {tuple(f.shape)}")
            if f.shape[0] == 0:
                raise ValueError(f"utterance {u!r} has zero frames")
            if not f.is_floating_point():
                raise TypeError(f"utterance {u!r}: frames dtype {f.dtype} is not floating point")
            if d0 is None:
                d0 = f.shape[1]
            elif f.shape[1] != d0:
                raise ValueError(f"utterance {u!r} has feature dim {f.shape[1]}, the first utterance has {d0}")
            if not bool(torch.isfinite(f).all()):
                raise ValueError(f"utterance {u!r} has NaN/Inf values in its frames")
        for name in ("spk_ids", "genders", "utt_ids"):
            bad = [v for v in getattr(self, name) if not isinstance(v, str) or not v]
            if bad:
                raise TypeError(f"{name} must be non-empty strings, got e.g. {bad[0]!r}")
        spk_gender: Dict[str, str] = {}
        for s, g in zip(self.spk_ids, self.genders):
            if spk_gender.setdefault(s, g) != g:
                raise ValueError(f"speaker {s!r} has two gender labels: {spk_gender[s]!r} and {g!r}")

    def subset(self, idx: Sequence[int]) -> "UtteranceSet":
        """The utterances at positions ``idx`` (shares the tensors)."""
        idx = list(idx)
        return UtteranceSet(
            frames=[self.frames[i] for i in idx],
            spk_ids=[self.spk_ids[i] for i in idx],
            genders=[self.genders[i] for i in idx],
            utt_ids=[self.utt_ids[i] for i in idx],
        )

    def speaker_gender(self) -> Dict[str, str]:
        return dict(zip(self.spk_ids, self.genders))

    def utts_per_speaker(self) -> Dict[str, int]:
        return dict(Counter(self.spk_ids))


def check_aligned(a: UtteranceSet, b: UtteranceSet, what: str) -> None:
    """Raise unless ``a`` and ``b`` hold the same utterances, in the same order, with the same labels."""
    if len(a) != len(b):
        raise ValueError(f"{what}: {len(a)} vs {len(b)} utterances; both sets must hold the same utterances")
    for name in ("utt_ids", "spk_ids", "genders"):
        va, vb = getattr(a, name), getattr(b, name)
        if va != vb:
            i = next(k for k in range(len(va)) if va[k] != vb[k])
            raise ValueError(f"{what}: {name} differ at position {i} ({va[i]!r} vs {vb[i]!r}); align the sets")
