"""Privacy defenses: user-level DP-FedAvg, sample-level DP (Opacus), secure aggregation.

Adversarial speaker/gender removal lives with the model (``speechfl.models.grl``,
``speechfl.models.adversary``) because its heads are part of the model's parameters.
"""

from speechfl.privacy.accounting import epsilon_from_history, make_accountant, rdp_epsilon
from speechfl.privacy.dp_sample import SampleDP, check_dp_compatible, dp_compatibility_problems
from speechfl.privacy.dp_user import DPFedAvg, clip_updates
from speechfl.privacy.secagg import SecAggAborted, SecureAggregation, check_secagg_compatible

__all__ = [
    "DPFedAvg",
    "SampleDP",
    "SecAggAborted",
    "SecureAggregation",
    "check_dp_compatible",
    "check_secagg_compatible",
    "clip_updates",
    "dp_compatibility_problems",
    "epsilon_from_history",
    "make_accountant",
    "rdp_epsilon",
]
