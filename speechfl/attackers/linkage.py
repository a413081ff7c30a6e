"""Speaker linkage from updates: which enrolled client produced a later update?

An honest-but-curious server keeps client updates from earlier rounds
(enrolment) and tries to re-identify the author of each update of a later
round (probe). Updates are count-sketched to ``<= sketch_dim`` dims with one
shared hash. Methods, each giving a score matrix ``[n_probe, n_clients]``:

* ``cosine``: cosine between the probe and the client's mean enrolment update;
* ``centered_cosine``: the same after subtracting, from each side, the mean
  over all its updates (the direction every client shares in a round,
  mostly the global model's drift, carries no identity);
* ``linear``: L2-penalised logistic regression over clients (L-BFGS) trained
  on the centred, standardised enrolment updates; scores are log-posteriors.

Accuracy of ``argmax`` vs chance ``1 / n_clients``; EER over trials
(probe, client): target iff the probe's author is that client. The method
with the highest accuracy (ties: lowest EER) is the strongest.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from speechfl.attackers.base import seeded, train_lbfgs
from speechfl.attackers.intervals import top1_interval
from speechfl.attackers.pooling import Standardizer
from speechfl.attackers.reports import LinkageMethodResult, LinkageReport
from speechfl.attackers.sketch import count_sketch, stack_updates
from speechfl.attackers.types import AttackPrecondition
from speechfl.metrics.privacy import eer


def _templates(x: torch.Tensor, owner_idx: torch.Tensor, n: int) -> torch.Tensor:
    t = torch.zeros(n, x.shape[1]).index_add_(0, owner_idx, x)
    return t / torch.bincount(owner_idx, minlength=n).unsqueeze(1).to(x.dtype)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(a, dim=1) @ torch.nn.functional.normalize(b, dim=1).T


def linkage_scores(enroll_x, enroll_owner, probe_x, n_clients: int, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Score matrices ``[n_probe, n_clients]`` of every method (pure function on sketched updates)."""
    scores = {"cosine": _cos(probe_x, _templates(enroll_x, enroll_owner, n_clients))}
    e_c = enroll_x - enroll_x.mean(dim=0)
    p_c = probe_x - probe_x.mean(dim=0) if probe_x.shape[0] > 1 else probe_x - enroll_x.mean(dim=0)
    scores["centered_cosine"] = _cos(p_c, _templates(e_c, enroll_owner, n_clients))
    norm = Standardizer.fit(e_c)
    with seeded(seed):
        model = torch.nn.Linear(e_c.shape[1], n_clients)
        train_lbfgs(model, norm(e_c), enroll_owner, l2=1e-3)
        with torch.no_grad():
            scores["linear"] = torch.log_softmax(model(norm(p_c)), dim=1)
    return scores


def update_linkage_attack(
    enroll: Dict[str, torch.Tensor],
    probe: Dict[str, torch.Tensor],
    *,
    seed: int = 0,
    sketch_dim: int = 1024,
) -> LinkageReport:
    """Link later-round updates to enrolled clients; see the module docstring.

    ``enroll`` and ``probe`` map client id to ``[d]`` or ``[k, d]`` updates;
    every probe client must be enrolled, and at least 2 clients enrolled.
    """
    ex, e_owner = stack_updates(enroll, "enroll")
    px, p_owner = stack_updates(probe, "probe")
    if ex.shape[1] != px.shape[1]:
        raise ValueError(f"enroll updates have dim {ex.shape[1]}, probe updates {px.shape[1]}")
    clients = sorted(enroll)
    if len(clients) < 2:
        raise AttackPrecondition(f"linkage needs at least 2 enrolled clients, got {clients}")
    unknown = sorted(set(probe) - set(enroll))
    if unknown:
        raise ValueError(f"probe clients {unknown[:10]} were never enrolled; the attack can only link enrolled clients")
    idx = {c: i for i, c in enumerate(clients)}
    e_lab = torch.tensor([idx[c] for c in e_owner], dtype=torch.long)
    p_lab = np.array([idx[c] for c in p_owner])
    # one shared hash for both sides
    z = count_sketch(torch.cat([ex, px]), sketch_dim, seed=seed)
    ez, pz = z[: ex.shape[0]], z[ex.shape[0] :]
    methods: Dict[str, LinkageMethodResult] = {}
    linkage_scores_hits: Dict[str, np.ndarray] = {}
    for name, s in linkage_scores(ez, e_lab, pz, len(clients), seed=seed).items():
        s = s.double().numpy()
        target = np.zeros_like(s, dtype=bool)
        target[np.arange(len(p_lab)), p_lab] = True
        linkage_scores_hits[name] = s.argmax(axis=1) == p_lab
        methods[name] = LinkageMethodResult(
            accuracy=float(linkage_scores_hits[name].mean()),
            eer=eer(s[target], s[~target]),
        )
    order = list(methods)
    best = max(order, key=lambda m: (methods[m].accuracy, -methods[m].eer, -order.index(m)))
    best_hit = linkage_scores_hits[best]
    ci = top1_interval(best_hit, list(p_owner), seed=seed, unit="client")
    return LinkageReport(
        methods=methods,
        strongest=best,
        accuracy=methods[best].accuracy,
        eer=methods[best].eer,
        chance=1.0 / len(clients),
        n_enroll_clients=len(clients),
        n_enroll_updates=int(ex.shape[0]),
        n_probes=int(px.shape[0]),
        projected_dim=int(z.shape[1]),
        accuracy_ci=ci,
    )
