"""The centralized equivalents of the group rules: online group DRO inside one pooled client's loop.

Federated, ``afl`` / ``ctc_dro`` / ``group_reweight`` weight *clients* at the server
(:mod:`speechfl.fairness.group_dro`). Centralized there is one client holding every group, so
the same rules act on the *utterances of each batch* (Sagawa et al., ICLR 2020, Algorithm 1;
CTC-DRO, Bartelds et al. 2025), with the very same ``lambda`` update
(:func:`~speechfl.fairness.group_dro.update_lambda`)::

    l_i      = CTC(u_i) / |y_i|                          (per utterance, per target token: torch's 'mean')
    L_g      = mean of l_i over the batch's utterances of group g   (NaN if g is absent)
    lambda   <- update_lambda(lambda, L_g, eta, alpha)              (afl: alpha None; group_reweight: fixed)
    loss     = sum_g lambda~_g L_g                                  (lambda~: renormalised over present groups)

``lambda`` is updated with the detached losses before the loss is formed, and kept in the
client's persistent state (so a resumed run continues the same ``lambda``).

**Length-matched batches** (CTC-DRO's second ingredient; ``length_matched: true``): CTC losses
grow with utterance length, so a group whose batches happen to hold longer utterances looks
worse. Each batch then holds, for every group, utterances totalling about the same audio
duration ``D = batch_size * mean duration / G`` (each group's utterances drawn without
replacement from a seeded shuffle, reshuffled when exhausted; a group contributes utterances
until its total reaches ``D``, at least one).

Only a client that holds several groups can do this: the setup allows it with
``engine: centralized`` and refuses it federated (one speaker, so one group, per client: use the
server rules there).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor

from speechfl.fairness.group_dro import RULES, group_losses, mixture_coefficients, update_lambda
from speechfl.registry import require_keys

KEYS = {"rule", "eta", "alpha", "attribute", "length_matched"}


@dataclass(frozen=True)
class PooledGroupSpec:
    """``client.group_dro``: the rule, its step sizes, the attribute and the batch sampler."""

    rule: str
    eta: float = 0.01
    alpha: float = 0.1
    attribute: str = "gender"
    length_matched: bool = False

    @classmethod
    def parse(cls, spec) -> "PooledGroupSpec":
        spec = {"rule": spec} if isinstance(spec, str) else dict(spec)
        require_keys(spec, KEYS, "client.group_dro")
        if "rule" not in spec:
            raise ValueError(f"client.group_dro needs a rule, one of {', '.join(RULES)}")
        out = cls(**spec)
        if out.rule not in RULES:
            raise ValueError(f"client.group_dro: unknown rule {out.rule!r}; valid: {', '.join(RULES)}")
        if out.eta < 0 or out.alpha <= 0:
            raise ValueError(f"client.group_dro: needs eta >= 0 and alpha > 0, got eta={out.eta}, alpha={out.alpha}")
        if out.attribute != "gender":
            raise ValueError(f"client.group_dro: attribute must be 'gender' (the manifest's column; accent groups "
                             f"come from SPEAKERS.TXT and are supported by the server rules), got {out.attribute!r}")
        return out


class OnlineGroupDRO:
    """``lambda`` over the groups of one pooled client, updated every step (module docstring)."""

    def __init__(self, spec: PooledGroupSpec, names: Sequence[str]):
        if len(set(names)) < 2:
            raise ValueError(f"client.group_dro: the client holds {len(set(names))} {spec.attribute} group(s) "
                             f"{sorted(set(names))}; group DRO needs at least two")
        self.spec = spec
        self.names = sorted(set(names))
        self.lam = torch.full((len(self.names),), 1.0 / len(self.names), dtype=torch.float64)

    def loss(self, per_utt: Tensor, groups: Sequence[str]) -> Tensor:
        """Update ``lambda`` from this batch's group losses, then return ``sum_g lambda~_g L_g``."""
        unknown = sorted(set(groups) - set(self.names))
        if unknown:
            raise ValueError(f"client.group_dro: {self.spec.attribute} value(s) {unknown} were not among the "
                             f"client's groups {self.names}")
        index = torch.tensor([self.names.index(g) for g in groups], dtype=torch.long)
        ones = torch.ones(len(groups), dtype=torch.float64)
        if self.spec.rule != "group_reweight":
            losses = group_losses(per_utt.detach().double(), ones, index, len(self.names))
            self.lam = update_lambda(self.lam, losses, self.spec.eta,
                                     self.spec.alpha if self.spec.rule == "ctc_dro" else None)
        coef = mixture_coefficients(ones, index, self.lam).to(per_utt.dtype).to(per_utt.device)
        return (coef * per_utt).sum()

    def state_dict(self) -> Dict:
        return {"lambda": self.lam.clone(), "groups": list(self.names)}

    def load_state_dict(self, state: Dict) -> None:
        if list(state["groups"]) != self.names:
            raise ValueError(f"client.group_dro: saved groups {state['groups']} differ from {self.names}")
        self.lam = state["lambda"].clone().to(torch.float64)


def length_matched_batches(durations: Sequence[float], groups: Sequence[str], batch_size: int, seed: int,
                           n_batches: int) -> Iterator[List[int]]:
    """``n_batches`` lists of dataset indices, each holding about ``D`` seconds of every group.

    ``D = batch_size * mean(durations) / G``; within a group, indices come from a seeded shuffle
    without replacement, reshuffled when exhausted.
    """
    if len(durations) != len(groups) or not durations:
        raise ValueError("length_matched_batches: one duration and one group per utterance, at least one")
    names = sorted(set(groups))
    budget = batch_size * (sum(durations) / len(durations)) / len(names)
    rng = random.Random(seed)
    pools = {g: [i for i, x in enumerate(groups) if x == g] for g in names}
    queues: Dict[str, List[int]] = {g: [] for g in names}
    for _ in range(n_batches):
        batch: List[int] = []
        for g in names:
            total = 0.0
            while True:
                if not queues[g]:
                    queues[g] = pools[g][:]
                    rng.shuffle(queues[g])
                i = queues[g].pop()
                batch.append(i)
                total += float(durations[i])
                if total >= budget:
                    break
        yield batch


def dataset_groups(ds, attribute: str) -> List[str]:
    """The attribute of every utterance of a SpeechBrain dataset, in its order (error names the utterance)."""
    out = []
    for uid in ds.data_ids:
        value = ds.data[uid].get(attribute)
        if value in (None, ""):
            raise ValueError(f"client.group_dro: utterance {uid} has no {attribute!r} in its manifest row")
        out.append(str(value))
    return out


def dataset_durations(ds) -> List[float]:
    out = []
    for uid in ds.data_ids:
        try:
            out.append(float(ds.data[uid]["duration"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"client.group_dro: utterance {uid} has no numeric duration in its manifest row") from None
    return out


def make_group_loader(ds, spec: PooledGroupSpec, batch_size: int, seed: int, steps: int,
                      collate_fn) -> Optional[torch.utils.data.DataLoader]:
    """A loader of length-matched batches (``spec.length_matched``), else None (the plain shuffled loader)."""
    if not spec.length_matched:
        return None
    batches = list(length_matched_batches(dataset_durations(ds), dataset_groups(ds, spec.attribute), batch_size,
                                          seed, steps))
    return torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate_fn, num_workers=0)
