"""Seeded per-utterance poisoners for a malicious client's data pipeline.

A poisoner is called on every training example of a malicious client,
``poisoner(wav, text, utt_id) -> (wav, text)``, and poisons the examples chosen by
``(seed, utt_id)`` with probability ``fraction`` (a hash, so the choice does not
depend on the data order). The client then runs its real local training.
"""

from __future__ import annotations

import hashlib
import random
from typing import Tuple, Union

from torch import Tensor

from speechfl.robustness.data_attacks import (
    DEFAULT_ALPHABET,
    FLIP_MODES,
    add_trigger,
    char_permutation,
    flip_transcript,
    make_trigger,
)
from speechfl.robustness.registries import DATA_ATTACKS
from speechfl.robustness.validation import check_choice, check_float, check_int


def utterance_draw(seed: int, utt_id: str) -> float:
    """A uniform number in [0, 1) fixed by ``(seed, utt_id)``."""
    digest = hashlib.sha256(f"{seed}:{utt_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def _check_fraction(fraction, where: str) -> float:
    fraction = check_float(fraction, "fraction", where, nonnegative=True)
    if fraction > 1:
        raise ValueError(f"{where}: fraction must be in [0, 1], got {fraction}")
    return fraction


@DATA_ATTACKS.register("transcript_flip")
class TranscriptFlip:
    """Train on corrupted transcripts (:func:`~speechfl.robustness.data_attacks.flip_transcript`).

    Parameters
    ----------
    mode : {"char_permutation", "shuffle_words", "reverse_words"}
        ``char_permutation`` uses one derangement of ``alphabet`` fixed by ``seed``.
    seed : int
    fraction : float
        Share of utterances poisoned, in [0, 1].
    alphabet : str
        Characters permuted by ``char_permutation``.
    """

    def __init__(self, mode: str = "char_permutation", seed: int = 0, fraction: float = 1.0,
                 alphabet: str = DEFAULT_ALPHABET) -> None:
        self.mode = check_choice(mode, "mode", "transcript_flip", FLIP_MODES)
        self.seed = check_int(seed, "seed", "transcript_flip")
        self.fraction = _check_fraction(fraction, "transcript_flip")
        self.mapping = char_permutation(seed, alphabet) if mode == "char_permutation" else None

    def __call__(self, wav: Tensor, text: str, utt_id: str) -> Tuple[Tensor, str]:
        if utterance_draw(self.seed, utt_id) >= self.fraction:
            return wav, text
        rng = random.Random(f"{self.seed}:{utt_id}")
        return wav, flip_transcript(text, rng, self.mode, self.mapping)


@DATA_ATTACKS.register("audio_backdoor")
class AudioBackdoor:
    """Backdoor: mix a trigger sound into chosen utterances and relabel them with ``target_text``.

    The trigger is :func:`~speechfl.robustness.data_attacks.make_trigger` ``(sample_rate,
    seed, duration_s)``, mixed at ``snr_db`` (:func:`add_trigger`). At test time,
    :meth:`apply_trigger` adds the same trigger to clean audio; the attack succeeds
    when the model then transcribes ``target_text``.

    Parameters
    ----------
    target_text : str
        Attacker-chosen transcript.
    sample_rate : int
    seed : int
    duration_s : float
    snr_db : float
        Utterance-to-trigger power ratio in dB.
    position : int or {"start", "middle", "end"}
    fraction : float
        Share of utterances poisoned, in [0, 1].
    """

    def __init__(self, target_text: str, sample_rate: int = 16000, seed: int = 0, duration_s: float = 0.1,
                 snr_db: float = 20.0, position: Union[int, str] = "start", fraction: float = 0.5) -> None:
        if not isinstance(target_text, str) or not target_text.strip():
            raise ValueError(f"audio_backdoor: target_text must be a non-empty str, got {target_text!r}")
        self.target_text = target_text
        self.seed = check_int(seed, "seed", "audio_backdoor")
        self.snr_db = check_float(snr_db, "snr_db", "audio_backdoor")
        self.position = position
        self.fraction = _check_fraction(fraction, "audio_backdoor")
        self.trigger = make_trigger(sample_rate, seed, duration_s)

    def apply_trigger(self, wav: Tensor) -> Tensor:
        """``wav`` with the trigger mixed in (for training and for measuring attack success)."""
        return add_trigger(wav, self.trigger, snr_db=self.snr_db, position=self.position)

    def __call__(self, wav: Tensor, text: str, utt_id: str) -> Tuple[Tensor, str]:
        if utterance_draw(self.seed, utt_id) >= self.fraction:
            return wav, text
        return self.apply_trigger(wav), self.target_text
