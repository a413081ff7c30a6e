"""Fairness-aware federated training, chosen by name as a server optimizer.

``qfedavg`` (Li et al. ICLR 2020), ``afl`` (Mohri et al. ICML 2019, exponentiated-gradient
group weights), ``ctc_dro`` (Bartelds et al. 2025, smoothed group-weight update) and
``group_reweight`` (fixed equal group weights). Importing this package registers them in
:data:`speechfl.federated.server_opt.SERVER_OPTIMIZERS`.
"""

from speechfl.fairness.base import ClientAwareStep, reported_losses
from speechfl.fairness.compat import check_fairness_compatible, client_groups, configure_fairness
from speechfl.fairness.group_dro import GroupDRO, group_losses, mixture_coefficients, update_lambda
from speechfl.fairness.qfedavg import QFedAvg, qfedavg_coefficients

__all__ = ["ClientAwareStep", "GroupDRO", "QFedAvg", "check_fairness_compatible", "client_groups",
           "configure_fairness", "group_losses", "mixture_coefficients", "qfedavg_coefficients",
           "reported_losses", "update_lambda"]
