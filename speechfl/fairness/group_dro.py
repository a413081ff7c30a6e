"""Group-level fairness over a speaker attribute (gender by default): AFL / group DRO, CTC-DRO, reweighting.

Agnostic Federated Learning (Mohri, Sivek, Suresh, ICML 2019) minimises the worst mixture of
group losses, ``min_w max_{lambda in simplex} sum_g lambda_g L_g(w)``. Its server keeps
``lambda`` and alternates a step on ``w`` with a mirror-ascent (exponentiated-gradient) step on
``lambda``, the variant used by group DRO (Sagawa et al., ICLR 2020)::

    L_g      = sum_{k in g} n_k F_k / sum_{k in g} n_k        (this round's clients of group g)
    lambda_g <- lambda_g * exp(eta * L_g)                      then renormalised   ("afl")
    lambda_g <- lambda_g * exp(eta * L_g / (lambda_g + alpha))  then renormalised   ("ctc_dro")
    delta    = sum_g lambda~_g * (sum_{k in g} n_k delta_k / sum_{k in g} n_k)

``F_k`` is client ``k``'s loss at the global model (reported, before local training) and
``lambda~`` is ``lambda`` renormalised over the groups present in the round; groups absent
from a round keep their mass (only the present groups' share is redistributed). ``lambda`` is
updated first, then used (Sagawa et al., Algorithm 1).

CTC-DRO (Bartelds et al. 2025, "CTC-DRO: Robust Optimization for Reducing Language Disparities
in Speech Recognition") observed that CTC losses scale with utterance length, so one group's
weight can run away; its smoothed update divides the loss by ``lambda_g + alpha``, bounding
how fast a heavy group grows. Our ``F_k`` is the CTC loss normalised per target token and
averaged per utterance (``reduction='mean'``), which removes the first-order length
dependence. CTC-DRO's length-matched batches need one batch holding several groups, which
a one-speaker client never has: they are part of the centralized equivalent,
``client.group_dro: {rule: ctc_dro, length_matched: true}`` (:mod:`speechfl.fairness.pooled`).

``group_reweight`` keeps ``lambda`` fixed (uniform over groups unless given): every group gets
the same total weight whatever its number of clients or samples (inverse-frequency
reweighting).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import torch
from torch import Tensor

from speechfl.fairness.base import ClientAwareStep, reported_losses
from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.robustness.tensor_ops import weighted_row_sum

RULES = ("afl", "ctc_dro", "group_reweight")


def group_losses(losses: Tensor, weights: Tensor, group_index: Tensor, n_groups: int) -> Tensor:
    """Sample-weighted mean loss per group, float64 ``[G]``; NaN for a group absent from the round."""
    w = weights.to(torch.float64)
    num = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, w * losses.to(torch.float64))
    den = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, w)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, float("nan")))


def update_lambda(lam: Tensor, losses_g: Tensor, eta: float, alpha: Optional[float] = None) -> Tensor:
    """One exponentiated-gradient step on the simplex over the groups with a loss (finite entries).

    ``alpha=None``: ``lambda_g exp(eta L_g)`` (AFL / group DRO); else CTC-DRO's smoothed
    ``lambda_g exp(eta L_g / (lambda_g + alpha))``. Absent groups (NaN loss) keep their
    ``lambda_g``; present ones share the rest. Computed as a softmax of logs (no overflow).
    """
    lam = lam.to(torch.float64)
    present = torch.isfinite(losses_g)
    if not bool(present.any()):
        return lam.clone()
    gain = eta * losses_g[present]
    if alpha is not None:
        gain = gain / (lam[present] + alpha)
    logits = torch.log(lam[present].clamp_min(1e-300)) + gain
    out = lam.clone()
    out[present] = lam[present].sum() * torch.softmax(logits, dim=0)
    return out


def mixture_coefficients(weights: Tensor, group_index: Tensor, lam: Tensor) -> Tensor:
    """``c_k = lambda~_{g(k)} n_k / N_{g(k)}`` with ``lambda~`` renormalised over the present groups."""
    w = weights.to(torch.float64)
    n_groups = lam.numel()
    totals = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, group_index, w)
    present = totals > 0
    share = torch.where(present, lam.to(torch.float64), torch.zeros_like(totals))
    share = share / share.sum()
    return (share[group_index] * w / totals[group_index]).to(weights.dtype)


class GroupDRO(ClientAwareStep):
    """AFL / group DRO, CTC-DRO or group reweighting over client groups (module docstring).

    Parameters
    ----------
    rule : {"afl", "ctc_dro", "group_reweight"}
    eta : float
        Step size of the ``lambda`` update (ignored by ``group_reweight``).
    alpha : float
        CTC-DRO's smoothing (``ctc_dro`` only).
    attribute : {"gender", "accent"}
        The speaker attribute that defines the groups (each client must hold one group).
    initial : mapping or None
        Initial ``lambda`` by group name (normalised); None: uniform.
    """

    def __init__(self, rule: str, eta: float = 0.1, alpha: float = 0.1, attribute: str = "gender",
                 initial: Optional[Mapping[str, float]] = None, lr: float = 1.0):
        super().__init__(lr)
        if rule not in RULES:
            raise ValueError(f"unknown group rule {rule!r}; valid: {', '.join(RULES)}")
        if eta < 0 or alpha <= 0:
            raise ValueError(f"{rule}: needs eta >= 0 and alpha > 0, got eta={eta}, alpha={alpha}")
        if attribute not in ("gender", "accent"):
            raise ValueError(f"{rule}: attribute must be 'gender' or 'accent', got {attribute!r}")
        self.name = rule
        self.eta, self.alpha, self.attribute = float(eta), float(alpha), attribute
        self.initial = None if initial is None else {str(k): float(v) for k, v in dict(initial).items()}
        self.groups: Optional[Dict[str, str]] = None  # client id -> group
        self.names: list = []
        self.lam: Optional[Tensor] = None

    def configure_fairness(self, *, groups: Mapping[str, str], local_lr: float) -> None:
        """Client id -> group name, from the setup; ``lambda`` starts uniform (or at ``initial``)."""
        self.groups = dict(groups)
        self.names = sorted(set(self.groups.values()))
        if self.initial is not None:
            unknown = sorted(set(self.initial) - set(self.names))
            if unknown or any(v <= 0 for v in self.initial.values()):
                raise ValueError(f"{self.name}: initial weights {self.initial} must be > 0 for groups {self.names}")
            raw = torch.tensor([self.initial.get(g, 0.0) for g in self.names], dtype=torch.float64)
            if not bool((raw > 0).all()):
                raise ValueError(f"{self.name}: initial weights must name every group {self.names}")
            self.lam = raw / raw.sum()
        elif self.lam is None:
            self.lam = torch.full((len(self.names),), 1.0 / len(self.names), dtype=torch.float64)

    @property
    def weights_by_group(self) -> Dict[str, float]:
        return {g: float(v) for g, v in zip(self.names, self.lam.tolist())}

    def combine(self, updates, weights, client_ids, metadata):
        if self.groups is None:
            raise RuntimeError(f"{self.name}: configure_fairness() was not called by the setup")
        missing = [c for c in client_ids if c not in self.groups]
        if missing:
            raise ValueError(f"{self.name}: clients {missing[:5]} have no {self.attribute} group")
        index = torch.tensor([self.names.index(self.groups[c]) for c in client_ids], dtype=torch.long)
        if self.name != "group_reweight":
            losses = group_losses(reported_losses(client_ids, metadata), weights, index, len(self.names))
            self.lam = update_lambda(self.lam, losses, self.eta, self.alpha if self.name == "ctc_dro" else None)
        coef = mixture_coefficients(weights, index, self.lam)
        return weighted_row_sum(updates, coef), coef

    def state_dict(self):
        return {"lambda": None if self.lam is None else self.lam.clone(), "groups": list(self.names)}

    def load_state_dict(self, state):
        if state.get("lambda") is not None:
            if self.names and list(state.get("groups", [])) != self.names:
                raise ValueError(f"{self.name}: checkpoint groups {state.get('groups')} differ from {self.names}")
            self.names = list(state.get("groups", []))
            self.lam = state["lambda"].clone().to(torch.float64)


@SERVER_OPTIMIZERS.register("afl")
def _afl(eta: float = 0.1, attribute: str = "gender", initial: Optional[Mapping[str, float]] = None,
         lr: float = 1.0) -> GroupDRO:
    return GroupDRO("afl", eta=eta, attribute=attribute, initial=initial, lr=lr)


@SERVER_OPTIMIZERS.register("ctc_dro")
def _ctc_dro(eta: float = 0.1, alpha: float = 0.1, attribute: str = "gender",
             initial: Optional[Mapping[str, float]] = None, lr: float = 1.0) -> GroupDRO:
    return GroupDRO("ctc_dro", eta=eta, alpha=alpha, attribute=attribute, initial=initial, lr=lr)


@SERVER_OPTIMIZERS.register("group_reweight")
def _group_reweight(attribute: str = "gender", initial: Optional[Mapping[str, float]] = None,
                    lr: float = 1.0) -> GroupDRO:
    return GroupDRO("group_reweight", eta=0.0, attribute=attribute, initial=initial, lr=lr)
