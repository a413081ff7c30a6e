"""Registered, seeded audio anonymizers: ``ANONYMIZERS.build("mcadams", seed=3)``.

Each anonymizer maps ``(wav, sample_rate, utt_id, spk_id) -> wav``. Its random parameter
(McAdams ``alpha``, pitch shift in semitones, warp or speed factor) is drawn from
``U[low, high]`` with a generator seeded by ``derive_seed(seed, name, key)``, where ``key`` is
the utterance id (``per="utterance"``, a new voice per utterance as VPC's B2 does) or the
speaker id (``per="speaker"``, one pseudo-voice per speaker). Methods whose identity value is
1 or 0 can draw a random direction (``random_sign``): a shift of ``+d`` or ``-d``, a factor of
``1 + d`` or ``1 / (1 + d)``. The same seed and ids always give the same audio.

``cache_tag`` names the anonymizer and its settings; it is part of the feature-cache key when
an anonymizer is used as a client-side defense (:func:`as_waveform_transform`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from speechfl.compression.base import derive_seed
from speechfl.registry import Registry

ANONYMIZERS = Registry("anonymizer")
PER = ("utterance", "speaker")
MODES = ("plain", "shift", "plain_factor", "factor")


@dataclass(frozen=True)
class Anonymizer:
    """A named transform ``fn(wav, sample_rate, value)`` with a seeded per-key parameter draw."""

    name: str
    fn: Callable[[np.ndarray, int, float], np.ndarray]
    low: float
    high: float
    seed: int = 0
    per: str = "utterance"
    mode: str = "plain"  # plain: u; shift: +-u; plain_factor: 1+u; factor: (1+u) or 1/(1+u)
    preserves_duration: bool = True

    def __post_init__(self):
        if self.per not in PER:
            raise ValueError(f"{self.name}: per must be one of {PER}, got {self.per!r}")
        if self.mode not in MODES:
            raise ValueError(f"{self.name}: mode must be one of {MODES}, got {self.mode!r}")
        if not self.low <= self.high:
            raise ValueError(f"{self.name}: empty range [{self.low}, {self.high}]")

    def value(self, utt_id: str, spk_id: str) -> float:
        """The parameter used for this utterance (a pure function of seed, name and key)."""
        key = utt_id if self.per == "utterance" else spk_id
        rng = np.random.default_rng(derive_seed(self.seed, self.name, self.per, key))
        u = float(rng.uniform(self.low, self.high))
        if self.mode == "plain":
            return u
        if self.mode == "plain_factor":
            return 1 + u
        up = bool(rng.integers(0, 2))
        if self.mode == "shift":
            return u if up else -u
        return (1 + u) if up else 1 / (1 + u)

    def __call__(self, wav: np.ndarray, sample_rate: int, *, utt_id: str, spk_id: str) -> np.ndarray:
        x = np.asarray(wav, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"{self.name}: expected a non-empty mono waveform, got shape {x.shape}")
        return self.fn(x, sample_rate, self.value(utt_id, spk_id))

    @property
    def cache_tag(self) -> str:
        return f"anon:{self.name}:{self.low}:{self.high}:{self.seed}:{self.per}:{self.mode}"

    def config(self) -> dict:
        return {"method": self.name, "low": self.low, "high": self.high, "seed": self.seed, "per": self.per,
                "mode": self.mode}


@ANONYMIZERS.register("mcadams")
def _mcadams(*, alpha_min: float = 0.5, alpha_max: float = 0.9, seed: int = 0, per: str = "utterance",
             order: int = 20) -> Anonymizer:
    """McAdams coefficient (Patino et al. 2021); ``alpha_min == alpha_max`` fixes alpha."""
    from speechfl.anonymization.mcadams import mcadams

    if not 0 < alpha_min <= alpha_max <= 1.5:
        raise ValueError(f"mcadams: need 0 < alpha_min <= alpha_max <= 1.5, got {alpha_min}, {alpha_max}")
    return Anonymizer("mcadams", lambda x, sr, a: mcadams(x, sr, a, order=order), alpha_min, alpha_max, seed, per)


@ANONYMIZERS.register("pitch_shift")
def _pitch(*, semitones_min: float = 2.0, semitones_max: float = 4.0, random_sign: bool = True, seed: int = 0,
           per: str = "speaker") -> Anonymizer:
    """Pitch shift by ``+-U[min, max]`` semitones (phase vocoder + resampling)."""
    from speechfl.anonymization.transforms import pitch_shift

    if not 0 <= semitones_min <= semitones_max <= 12:
        raise ValueError(f"pitch_shift: need 0 <= semitones_min <= semitones_max <= 12, got "
                         f"{semitones_min}, {semitones_max}")
    return Anonymizer("pitch_shift", pitch_shift, semitones_min, semitones_max, seed, per,
                      "shift" if random_sign else "plain")


@ANONYMIZERS.register("vtln")
def _vtln(*, warp_min: float = 0.1, warp_max: float = 0.2, random_sign: bool = True, seed: int = 0,
          per: str = "speaker") -> Anonymizer:
    """VTLN-like warping by ``alpha = 1 + U[min, max]`` (or its inverse with ``random_sign``)."""
    from speechfl.anonymization.transforms import vtln_warp

    if not 0 <= warp_min <= warp_max <= 0.5:
        raise ValueError(f"vtln: need 0 <= warp_min <= warp_max <= 0.5, got {warp_min}, {warp_max}")
    return Anonymizer("vtln", vtln_warp, warp_min, warp_max, seed, per, "factor" if random_sign else "plain_factor")


@ANONYMIZERS.register("speed")
def _speed(*, change_min: float = 0.05, change_max: float = 0.15, random_sign: bool = True, seed: int = 0,
           per: str = "speaker") -> Anonymizer:
    """Speed perturbation by ``1 + U[min, max]`` (or its inverse); changes duration by design."""
    from speechfl.anonymization.transforms import speed_perturb

    if not 0 <= change_min <= change_max <= 0.5:
        raise ValueError(f"speed: need 0 <= change_min <= change_max <= 0.5, got {change_min}, {change_max}")
    return Anonymizer("speed", speed_perturb, change_min, change_max, seed, per,
                      "factor" if random_sign else "plain_factor", preserves_duration=False)


def build_anonymizer(spec) -> Optional[Anonymizer]:
    """From an hparams/CLI spec: ``None``, a name, or ``{name: ..., **params}``."""
    from speechfl.registry import build_from_spec

    return build_from_spec(ANONYMIZERS, spec)


class WaveformTransform:
    """An anonymizer bound to one utterance, as a torch ``wav -> wav`` feature-pipeline hook."""

    def __init__(self, anonymizer: Anonymizer, utt_id: str, spk_id: str, sample_rate: int):
        self.anonymizer, self.utt_id, self.spk_id, self.sample_rate = anonymizer, utt_id, spk_id, sample_rate
        self.cache_tag = anonymizer.cache_tag

    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        out = self.anonymizer(wav.double().numpy(), self.sample_rate, utt_id=self.utt_id, spk_id=self.spk_id)
        return torch.from_numpy(np.ascontiguousarray(out)).to(wav.dtype)


def as_waveform_transform(anonymizer: Anonymizer, spk_of: dict, sample_rate: int):
    """``utt_id -> WaveformTransform`` for :class:`speechfl.data.dataset.DataTransforms` ``audio``."""
    return lambda uid: WaveformTransform(anonymizer, uid, spk_of[uid], sample_rate)
