"""q-FedAvg (Li, Sanjabi, Beirami, Smith, ICLR 2020, "Fair Resource Allocation in Federated Learning").

q-FFL minimises ``f_q(w) = sum_k p_k F_k(w)^(q+1) / (q+1)``: clients with a larger loss get
more weight as ``q`` grows (``q = 0`` is FedAvg's objective). The server step follows the
authors' code (``qffedavg.py``), with ``delta_k = w_k - w`` the client's update, ``F_k`` its
loss at the global model ``w`` before local training and ``L`` the Lipschitz estimate
(the authors use ``L = 1 / local learning rate``)::

    Delta_k = L (w - w_k) = -L delta_k
    h_k     = q (F_k + eps)^(q-1) ||Delta_k||^2 + L (F_k + eps)^q
    w      <- w - sum_k p_k (F_k + eps)^q Delta_k / sum_k p_k h_k

that is ``w <- w + sum_k c_k delta_k`` with
``c_k = p_k (F_k+eps)^q / sum_j p_j (q (F_j+eps)^(q-1) L ||delta_j||^2 + (F_j+eps)^q)``
(``eps = 1e-10`` as in the authors' code). The authors sample clients with probability
``p_k`` and average uniformly; our clients are sampled uniformly, so ``p_k`` is the
sample-count weight inside the sums. At ``q = 0`` every factor is exactly 1 and
``c_k = n_k / sum_j n_j``: the same float32 operations as ``weighted_mean``, so q-FedAvg
with ``q = 0`` is FedAvg bitwise.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor

from speechfl.fairness.base import ClientAwareStep, reported_losses
from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.robustness.tensor_ops import weighted_row_sum

EPS = 1e-10


def qfedavg_coefficients(losses: Tensor, weights: Tensor, sq_norms: Tensor, q: float, lipschitz: float) -> Tensor:
    """``c_k`` of the q-FedAvg step (module docstring), in ``weights``' dtype.

    Parameters
    ----------
    losses : Tensor [n]
        ``F_k``, each client's loss at the global model (>= 0).
    weights : Tensor [n]
        ``p_k`` up to a constant (sample counts).
    sq_norms : Tensor [n]
        ``||delta_k||^2`` of the client updates.
    q : float
        Fairness parameter, >= 0.
    lipschitz : float
        ``L`` > 0.
    """
    if q < 0 or lipschitz <= 0:
        raise ValueError(f"qfedavg needs q >= 0 and lipschitz > 0, got q={q}, lipschitz={lipschitz}")
    f = losses.to(weights.dtype) + EPS
    scaled = f.pow(q)
    h_over_l = q * f.pow(q - 1) * lipschitz * sq_norms.to(weights.dtype) + scaled
    return weights * scaled / (weights * h_over_l).sum()


class QFedAvg(ClientAwareStep):
    """q-FedAvg's server step (see the module docstring); ``lr`` multiplies the step (1 in the paper).

    ``lipschitz=None`` takes ``1 / client lr`` at setup (:meth:`configure_fairness`), as the
    authors do.
    """

    name = "qfedavg"

    def __init__(self, q: float = 1.0, lipschitz: Optional[float] = None, lr: float = 1.0):
        super().__init__(lr)
        self.q = float(q)
        if self.q < 0:
            raise ValueError(f"qfedavg: q must be >= 0, got {q}")
        self.lipschitz = None if lipschitz is None else float(lipschitz)
        if self.lipschitz is not None and not self.lipschitz > 0:
            raise ValueError(f"qfedavg: lipschitz must be > 0, got {lipschitz}")
        self.last_scale = None

    def configure_fairness(self, *, groups, local_lr: float) -> None:
        if self.lipschitz is None:
            self.lipschitz = 1.0 / float(local_lr)

    def combine(self, updates, weights, client_ids, metadata):
        if self.lipschitz is None:
            raise RuntimeError("qfedavg: lipschitz is unset and configure_fairness() was not called by the setup")
        losses = reported_losses(client_ids, metadata)
        coef = qfedavg_coefficients(losses, weights, updates.pow(2).sum(dim=1), self.q, self.lipschitz)
        self.last_scale = float(coef.sum())  # the step length relative to a weighted mean
        return weighted_row_sum(updates, coef), coef


@SERVER_OPTIMIZERS.register("qfedavg")
def _qfedavg(q: float = 1.0, lipschitz: Optional[float] = None, lr: float = 1.0) -> QFedAvg:
    return QFedAvg(q=q, lipschitz=lipschitz, lr=lr)

