"""Privacy attackers used for evaluation, trained from scratch after training.

Never the training adversary: a defense judged only by its own adversary is an
illusion (Srivastava et al. 2019). Several families per threat; the
strongest is reported.
"""

from speechfl.attackers.families import SPEAKER_ATTACKERS
from speechfl.attackers.gender import gender_attack, update_gender_attack
from speechfl.attackers.linkage import update_linkage_attack
from speechfl.attackers.membership import membership_inference
from speechfl.attackers.scenarios import SCENARIOS, scenario_attacks
from speechfl.attackers.source_inference import source_inference
from speechfl.attackers.speaker_id import DEFAULT_FAMILIES, speaker_attacks
from speechfl.attackers.suite import PrivacySuiteReport, fairness_section, run_privacy_suite
from speechfl.attackers.types import AttackPrecondition, UtteranceSet

__all__ = [
    "SPEAKER_ATTACKERS",
    "DEFAULT_FAMILIES",
    "SCENARIOS",
    "UtteranceSet",
    "AttackPrecondition",
    "speaker_attacks",
    "scenario_attacks",
    "gender_attack",
    "update_gender_attack",
    "update_linkage_attack",
    "source_inference",
    "membership_inference",
    "run_privacy_suite",
    "fairness_section",
    "PrivacySuiteReport",
]
