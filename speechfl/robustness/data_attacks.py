"""Data-level attacks as pure transforms: transcript flipping and an audio backdoor trigger.

The poisoned data goes through the client's real local training; these functions
only change what it trains on. Thin, seeded wrappers for a data pipeline are in
:mod:`speechfl.robustness.data_poisoners`.
"""

from __future__ import annotations

import math
import random
from typing import Dict, List, Optional, Sequence, Union

import torch
from torch import Tensor

DEFAULT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
FLIP_MODES = ("char_permutation", "shuffle_words", "reverse_words")


def char_permutation(seed: int, alphabet: str = DEFAULT_ALPHABET) -> Dict[str, str]:
    """A random derangement of ``alphabet`` (no character maps to itself), fixed by ``seed``.

    Sattolo's algorithm: a uniform random cyclic permutation, hence a derangement.
    """
    if len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
        raise ValueError(f"char_permutation: alphabet needs >= 2 distinct characters, got {alphabet!r}")
    chars = list(alphabet)
    rng = random.Random(seed)
    for i in range(len(chars) - 1, 0, -1):
        j = rng.randrange(i)
        chars[i], chars[j] = chars[j], chars[i]
    return dict(zip(alphabet, chars))


def flip_transcript(text: str, rng: random.Random, mode: str, mapping: Optional[Dict[str, str]] = None) -> str:
    """Corrupt one transcript.

    Modes
    -----
    ``"char_permutation"``
        Map every character through ``mapping`` (e.g. :func:`char_permutation`);
        characters outside it (space) are kept. Deterministic: a consistent
        "label flip" that the model can learn.
    ``"shuffle_words"``
        A uniformly random order of the words, drawn from ``rng``, redrawn (up to
        10 times) while it equals the original.
    ``"reverse_words"``
        The words in reverse order.
    """
    if not isinstance(text, str):
        raise TypeError(f"flip_transcript: text must be a str, got {type(text).__name__}")
    if mode not in FLIP_MODES:
        raise ValueError(f"flip_transcript: mode must be one of {list(FLIP_MODES)}, got {mode!r}")
    if mode == "char_permutation":
        if not mapping:
            raise ValueError("flip_transcript: mode 'char_permutation' needs a mapping (see char_permutation)")
        return "".join(mapping.get(c, c) for c in text)
    words = text.split()
    if mode == "reverse_words":
        return " ".join(reversed(words))
    shuffled = list(words)
    for _ in range(10):
        rng.shuffle(shuffled)
        if shuffled != words:
            break
    return " ".join(shuffled)


def shuffle_transcripts(texts: Sequence[str], seed: int) -> List[str]:
    """Give every utterance another utterance's transcript (a random cyclic derangement).

    ``out[i] = texts[p(i)]`` with ``p`` drawn by Sattolo's algorithm (``p(i) != i``);
    needs at least 2 transcripts.
    """
    if len(texts) < 2:
        raise ValueError("shuffle_transcripts: needs at least 2 transcripts")
    order = list(range(len(texts)))
    rng = random.Random(seed)
    for i in range(len(order) - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return [texts[k] for k in order]


def make_trigger(sample_rate: int, seed: int, duration_s: float = 0.1, n_tones: int = 3) -> Tensor:
    """A short trigger sound: ``n_tones`` sinusoids under a Hann window, unit RMS (float32 ``[L]``).

    Frequencies are uniform in ``[1 kHz, min(4 kHz, 0.45 * sample_rate)]`` and phases
    uniform, both drawn from ``seed``; ``L = round(duration_s * sample_rate)``.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 2000:
        raise ValueError(f"make_trigger: sample_rate must be an int >= 2000, got {sample_rate!r}")
    length = round(duration_s * sample_rate)
    if length < 2:
        raise ValueError(f"make_trigger: duration_s = {duration_s} gives {length} samples (need >= 2)")
    if n_tones < 1:
        raise ValueError(f"make_trigger: n_tones must be >= 1, got {n_tones}")
    g = torch.Generator().manual_seed(seed)
    high = min(4000.0, 0.45 * sample_rate)
    freqs = 1000.0 + (high - 1000.0) * torch.rand(n_tones, generator=g, dtype=torch.float64)
    phases = 2 * math.pi * torch.rand(n_tones, generator=g, dtype=torch.float64)
    t = torch.arange(length, dtype=torch.float64) / sample_rate
    wave = torch.sin(2 * math.pi * freqs[:, None] * t[None, :] + phases[:, None]).sum(0)
    wave = wave * torch.hann_window(length, periodic=False, dtype=torch.float64)
    return (wave / wave.square().mean().sqrt()).to(torch.float32)


def trigger_offset(n_samples: int, length: int, position: Union[int, str]) -> int:
    """Start sample of the trigger: ``"start"``, ``"middle"``, ``"end"`` or an explicit offset."""
    if length > n_samples:
        raise ValueError(f"add_trigger: trigger ({length} samples) is longer than the audio ({n_samples})")
    named = {"start": 0, "middle": (n_samples - length) // 2, "end": n_samples - length}
    if isinstance(position, str):
        if position not in named:
            raise ValueError(f"add_trigger: position must be an int or one of {list(named)}, got {position!r}")
        return named[position]
    if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= n_samples - length:
        raise ValueError(f"add_trigger: offset must be an int in [0, {n_samples - length}], got {position!r}")
    return position


def add_trigger(
    wav: Tensor,
    trigger: Tensor,
    snr_db: Optional[float] = None,
    gain: Optional[float] = None,
    position: Union[int, str] = "start",
) -> Tensor:
    """Mix ``trigger`` into ``wav`` (``[T]`` or ``[channels, T]``); returns a new tensor (not clipped).

    Exactly one of ``snr_db`` and ``gain``. With ``snr_db`` the trigger is scaled by
    ``a`` such that ``10 log10(P_wav / (a^2 P_trigger)) = snr_db``, ``P`` the mean
    power over the whole utterance and over the trigger respectively; with ``gain``,
    ``a = gain``. ``y[o : o + L] = wav[o : o + L] + a * trigger``.
    """
    if (snr_db is None) == (gain is None):
        raise ValueError("add_trigger: give exactly one of snr_db and gain")
    if not isinstance(wav, Tensor) or wav.dim() not in (1, 2) or not wav.is_floating_point():
        raise ValueError("add_trigger: wav must be a float tensor [T] or [channels, T]")
    if not isinstance(trigger, Tensor) or trigger.dim() != 1:
        raise ValueError("add_trigger: trigger must be a 1-D tensor")
    offset = trigger_offset(wav.shape[-1], trigger.numel(), position)
    trig = trigger.to(dtype=wav.dtype, device=wav.device)
    if snr_db is not None:
        p_wav = float(wav.double().square().mean())
        p_trig = float(trig.double().square().mean())
        if p_wav <= 0 or p_trig <= 0:
            raise ValueError("add_trigger: snr_db needs non-silent audio and trigger")
        a = math.sqrt(p_wav / (p_trig * 10 ** (snr_db / 10)))
    else:
        a = float(gain)
    out = wav.clone()
    out[..., offset : offset + trig.numel()] += a * trig
    return out
