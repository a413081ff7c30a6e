"""Result dataclasses of the privacy attackers (fixed shape, JSON-ready).

Every report has ``to_dict()`` giving plain floats/ints/strings. A metric that
cannot be computed for a given input is ``None`` and its reason is in the
report's ``notes`` under the metric's name; NaN never appears.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from speechfl.metrics.privacy import BootstrapCI


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"report holds a non-finite value {obj}; use None and a note")
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


FEW_SPEAKERS = 10  # below this many speakers a figure is flagged and its bootstrap interval matters


class _Report:
    def to_dict(self) -> dict:
        return _clean(asdict(self))


@dataclass
class GroupScore(_Report):
    """Speaker-attack metrics restricted to one group (e.g. gender)."""

    top1: Optional[float]
    eer: Optional[float]
    n_id_test: int
    n_target_trials: int
    n_nontarget_trials: int
    notes: Dict[str, str] = field(default_factory=dict)
    n_id_speakers: int = 0  # attack speakers of this group (identification is still among all attack speakers)
    n_eer_speakers: int = 0  # held-out speakers of this group behind ``eer``


@dataclass
class FamilyResult(_Report):
    """One attacker family's closed-set identification and open-set verification.

    ``eer`` scores every pair of held-out utterances; ``eer_same_gender``
    only same-gender pairs, pooled over genders (the VoicePrivacy
    convention: harder, since cross-gender non-targets are easy to reject).
    ``chance`` is ``1 / n_id_speakers``: identification is among the attack
    speakers only (the held-out ones serve verification), so with 6 speakers
    and 2 held out it is 0.25, not 1/6. ``top1_ci`` and ``eer_ci`` are 95%
    bootstrap intervals over speakers (attack speakers for top-1, held-out
    speakers for the EER); ``None`` with a note when undefined.
    """

    family: str
    top1: float
    chance: float
    eer: float
    eer_same_gender: Optional[float]
    per_gender: Dict[str, GroupScore]
    per_speaker_top1: Dict[str, float]
    seconds: float
    notes: Dict[str, str] = field(default_factory=dict)
    n_id_speakers: int = 0
    n_id_test: int = 0
    n_eer_speakers: int = 0
    n_target_trials: int = 0
    n_nontarget_trials: int = 0
    top1_ci: Optional[BootstrapCI] = None
    eer_ci: Optional[BootstrapCI] = None


@dataclass
class SpeakerAttackReport(_Report):
    """Speaker identification/verification by several families; the strongest is named.

    ``strongest_id`` maximises top-1; ``strongest_verification`` minimises EER.
    ``chance`` is ``1 / n_attack_speakers`` (see :class:`FamilyResult`);
    ``chance_note`` says so in words. ``few_speakers`` is true when either
    task rests on fewer than :data:`FEW_SPEAKERS` speakers (read the intervals).
    """

    families: Dict[str, FamilyResult]
    strongest_id: str
    best_top1: float
    strongest_verification: str
    best_eer: float
    chance: float
    n_utts: int
    n_speakers: int
    n_attack_speakers: int
    n_heldout_speakers: int
    n_id_train: int
    n_id_test: int
    n_target_trials: int
    n_nontarget_trials: int
    excluded_speakers: List[str]
    notes: Dict[str, str] = field(default_factory=dict)
    chance_note: str = ""
    few_speakers: bool = False


@dataclass
class GenderFamilyResult(_Report):
    accuracy: float
    auc: float
    per_gender_accuracy: Dict[str, float]
    seconds: float


@dataclass
class GenderAttackReport(_Report):
    """Binary gender inference, evaluated on speakers/clients unseen in training.

    ``auc`` scores ``positive_class``; ``chance`` is the majority-class rate.
    ``unit`` is "utterance" or "update".
    """

    families: Dict[str, GenderFamilyResult]
    strongest: str
    accuracy: float
    auc: float
    chance: float
    positive_class: str
    unit: str
    n_items: int
    n_groups: int
    n_folds: int
    notes: Dict[str, str] = field(default_factory=dict)
    auc_ci: Optional[BootstrapCI] = None  # strongest family, 95% bootstrap over speakers/clients (``n_groups``)


@dataclass
class LinkageMethodResult(_Report):
    accuracy: float
    eer: float


@dataclass
class LinkageReport(_Report):
    """Which enrolled client produced each probe update; the strongest method is named."""

    methods: Dict[str, LinkageMethodResult]
    strongest: str
    accuracy: float
    eer: float
    chance: float
    n_enroll_clients: int
    n_enroll_updates: int
    n_probes: int
    projected_dim: int
    notes: Dict[str, str] = field(default_factory=dict)
    accuracy_ci: Optional[BootstrapCI] = None  # strongest method, 95% bootstrap over probe clients


@dataclass
class SourceInferenceReport(_Report):
    """Source inference (Hu et al. 2021): the owner of a training utterance is the lowest-loss client."""

    accuracy: float
    chance: float
    advantage: float
    n_utts: int
    n_clients: int
    n_tied: int
    per_client_accuracy: Dict[str, Optional[float]]
    notes: Dict[str, str] = field(default_factory=dict)
    accuracy_ci: Optional[BootstrapCI] = None  # 95% bootstrap over the utterances' owner clients


@dataclass
class MIAScore(_Report):
    """``auc_ci``: 95% bootstrap interval over the speakers behind the scores (``n_speakers``)."""

    auc: float
    tpr_at_1pct_fpr: float
    advantage: float
    n_members: int
    n_nonmembers: int
    n_speakers: int = 0
    auc_ci: Optional[BootstrapCI] = None


@dataclass
class MembershipReport(_Report):
    """Membership inference, by attack variant ("threshold", "calibrated") and level.

    ``utterance`` and ``speaker`` map each variant to its score (``None`` with
    a note when the variant or level is not computable); ``per_group`` maps a
    group to the same utterance-level variants. ``strongest`` is
    "<level>/<variant>" with the highest AUC.
    """

    utterance: Dict[str, Optional[MIAScore]]
    speaker: Dict[str, Optional[MIAScore]]
    per_group: Dict[str, Dict[str, Optional[MIAScore]]]
    strongest: str
    best_auc: float
    notes: Dict[str, str] = field(default_factory=dict)
    n_member_speakers: int = 0
    n_nonmember_speakers: int = 0
    n_shared_speakers: int = 0  # > 0: speaker level is undefined and notes['caveat'] says so
