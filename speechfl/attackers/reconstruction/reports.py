"""Result dataclasses of the reconstruction attacks (fixed shape, JSON-ready, no NaN).

A metric that cannot be computed is ``None`` with its reason in ``notes``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

from speechfl.attackers.reports import _Report


@dataclass
class SetScore(_Report):
    """Predicted vs true character set of one update."""

    precision: float
    recall: float
    f1: float
    n_pred: int
    n_true: int
    n_correct: int


@dataclass
class LabelRecoveryScore(_Report):
    """Character-set recovery from the CTC head, mean over updates (macro).

    ``precision``/``recall``/``f1``/``exact``: the sign + ratio estimator; ``sign_*``: the
    sign rule alone (no false positives on uncompressed updates).
    """

    precision: float
    recall: float
    f1: float
    exact: float  # fraction of updates whose set is recovered exactly
    sign_precision: float
    sign_recall: float
    sign_f1: float
    n_updates: int


@dataclass
class InversionScore(_Report):
    """Feature inversion by gradient matching, mean over the attacked utterances.

    Features are compared after the model's own per-utterance normalisation
    (the model is blind to a per-band affine change, so nothing more is
    recoverable). ``cer`` decodes the reconstruction with the global model;
    ``cer_original`` decodes the true features with it (the ceiling).
    ``speaker_top1``/``top5`` are the strongest speaker attacker's (trained on
    real features) on the reconstructions; ``speaker_top1_original`` on the
    true features of the same utterances; ``speaker_top1_start`` on the starting point (noise,
    or the attacker's prior: a refinement must beat it to count).
    """

    feature_cosine: float
    feature_mse: float
    feature_cosine_random: float  # the same metric for the random starting point (chance)
    match_loss: float  # final 1 - cos(simulated update, observed update)
    cer: Optional[float]
    cer_original: Optional[float]
    speaker_top1: Optional[float]
    speaker_top5: Optional[float]
    speaker_top1_original: Optional[float]
    speaker_chance: Optional[float]
    strongest_family: Optional[str]
    n_utts: int
    seconds: float
    notes: Dict[str, str] = field(default_factory=dict)
    speaker_top1_start: Optional[float] = None


@dataclass
class LocalModelScore(_Report):
    """How well the server's view ``w_global + D(payload)`` recovers each local model.

    ``relative_error = ||D(payload) - delta|| / ||delta||`` and ``cosine(D(payload), delta)``,
    means over updates; ``footprint_eer`` is the footprint attack's speaker EER on
    the recovered local models (Tomashenko et al. 2022), lower = more linkable.
    """

    relative_error: Optional[float]
    cosine: Optional[float]
    footprint_eer: Optional[float]
    n_updates: int
    n_target_trials: int
    n_nontarget_trials: int
    notes: Dict[str, str] = field(default_factory=dict)


@dataclass
class ReconstructionReport(_Report):
    """All reconstruction threats, keyed by compressor name (the uncompressed view is ``identity``)."""

    labels: Dict[str, LabelRecoveryScore]
    inversion: Dict[str, InversionScore]
    local_model: Dict[str, LocalModelScore]
    seconds: float
    notes: Dict[str, str] = field(default_factory=dict)
