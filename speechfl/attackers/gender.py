"""Gender inference from utterance representations or from client updates.

Features: mean+std pooled statistics of an utterance's frames, or a client
update count-sketched to ``<= 1024`` dims (:mod:`speechfl.attackers.sketch`;
Mdhaffar et al. 2022, "Retrieving speaker information from personalized
acoustic models for speech recognition", found updates leak gender).
Three families trained from scratch on standardised features: ``linear``
(L2-penalised logistic regression, L-BFGS), ``lda`` (two-class Fisher
discriminant with a shrunk within-class covariance, closed form; strong when
there are few speakers) and ``mlp`` (one 64-unit hidden layer, AdamW).

Evaluation is grouped k-fold cross-validation: speakers (or clients) are
dealt into ``k = min(5, fewest groups of one gender)`` folds, each fold is
predicted by a model trained on the others, so no prediction comes from a
model that saw the speaker. Accuracy and ROC AUC are computed over all
out-of-fold predictions; the family with the higher AUC is the strongest.
"""

from __future__ import annotations

import time
from typing import Dict, List, Sequence

import numpy as np
import torch

from speechfl.attackers.base import seeded, train_full_batch, train_lbfgs
from speechfl.attackers.intervals import auc_interval
from speechfl.attackers.pooling import Standardizer, mean_std_pool
from speechfl.attackers.reports import GenderAttackReport, GenderFamilyResult
from speechfl.attackers.sketch import count_sketch, stack_updates
from speechfl.attackers.splits import grouped_folds
from speechfl.attackers.types import AttackPrecondition, UtteranceSet
from speechfl.metrics.privacy import roc_auc

GENDER_FAMILIES = ("linear", "lda", "mlp")


def fisher_lda(x: torch.Tensor, y: torch.Tensor, shrink: float = 0.1):
    """Two-class Fisher discriminant ``w = S_w^-1 (m_0 - m_1)``, threshold at the midpoint.

    ``S_w`` is the pooled within-class covariance shrunk towards its diagonal
    (as in :class:`speechfl.attackers.verification.CosineBackend`). Returns
    ``(w, centre)``; the score ``(x - centre) . w`` is positive for class 0.
    """
    x = x.to(torch.float64)
    m0, m1 = x[y == 0].mean(dim=0), x[y == 1].mean(dim=0)
    r = torch.cat([x[y == 0] - m0, x[y == 1] - m1])
    sw = r.T @ r / r.shape[0]
    diag = torch.diagonal(sw)
    sw = (1 - shrink) * sw + torch.diag(shrink * diag + 1e-6 * diag.mean() + 1e-12)
    return torch.linalg.solve(sw, m0 - m1), (m0 + m1) / 2


def _fold_scores(family: str, x_tr, y_tr, x_te, seed: int, steps: int) -> np.ndarray:
    """Scores of ``x_te`` (positive favours class 0) from a model of ``family`` trained on the fold."""
    if family == "lda":
        w, centre = fisher_lda(x_tr, y_tr)
        return ((x_te.to(torch.float64) - centre) @ w).numpy()
    with seeded(seed):
        if family == "linear":
            model = torch.nn.Linear(x_tr.shape[1], 2)
            train_lbfgs(model, x_tr, y_tr, l2=1e-4)
        elif family == "mlp":
            model = torch.nn.Sequential(
                torch.nn.Linear(x_tr.shape[1], 64), torch.nn.ReLU(), torch.nn.Dropout(0.3), torch.nn.Linear(64, 2)
            )
            train_full_batch(model, x_tr, y_tr, steps=steps, lr=2e-3, weight_decay=1e-2)
        else:
            raise ValueError(f"unknown gender attacker family {family!r}; valid: {', '.join(GENDER_FAMILIES)}")
        with torch.no_grad():
            logit = model(x_te)
    return (logit[:, 0] - logit[:, 1]).numpy()


def binary_attribute_attack(
    x: torch.Tensor,
    labels: Sequence[str],
    groups: Sequence[str],
    *,
    unit: str,
    families: Sequence[str] = GENDER_FAMILIES,
    seed: int = 0,
    steps: int = 200,
) -> GenderAttackReport:
    """Grouped cross-validated binary attribute inference from features ``x [N, F]``.

    ``labels`` must take exactly two values, each carried by at least two
    groups (speakers/clients). ``auc`` scores the first label in sorted order.
    """
    if x.dim() != 2 or x.shape[0] != len(labels) or len(labels) != len(groups):
        raise ValueError(f"features {tuple(x.shape)}, {len(labels)} labels and {len(groups)} groups do not match")
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise AttackPrecondition(f"gender inference needs exactly 2 label values, got {classes}")
    per_class = {c: len({g for g, lab in zip(groups, labels) if lab == c}) for c in classes}
    few = {c: n for c, n in per_class.items() if n < 2}
    if few:
        raise AttackPrecondition(f"each gender needs at least 2 {unit} owners (speakers/clients) for held-out evaluation; got {per_class}")
    bad = [f for f in families if f not in GENDER_FAMILIES]
    if bad or not families:
        raise ValueError(f"unknown gender attacker family {bad}; valid: {', '.join(GENDER_FAMILIES)}")
    n_folds = min(5, min(per_class.values()))
    folds = grouped_folds(list(groups), list(labels), n_folds, seed=seed)
    y = torch.tensor([classes.index(lab) for lab in labels], dtype=torch.long)
    results: Dict[str, GenderFamilyResult] = {}
    oof: Dict[str, np.ndarray] = {}
    for f in families:
        t0 = time.perf_counter()
        score = np.zeros(len(labels))
        for k, test_idx in enumerate(folds):
            train_idx = [i for j, fold in enumerate(folds) if j != k for i in fold]
            norm = Standardizer.fit(x[train_idx])
            score[test_idx] = _fold_scores(f, norm(x[train_idx]), y[train_idx], norm(x[test_idx]), seed + k, steps)
        yn = y.numpy()
        oof[f] = score
        pred = (score <= 0).astype(int)
        auc = roc_auc(score[yn == 0], score[yn == 1])
        results[f] = GenderFamilyResult(
            accuracy=float((pred == yn).mean()),
            auc=auc,
            per_gender_accuracy={c: float((pred[yn == i] == i).mean()) for i, c in enumerate(classes)},
            seconds=time.perf_counter() - t0,
        )
    best = max(results, key=lambda f: (results[f].auc, -list(results).index(f)))
    counts = np.bincount(y.numpy(), minlength=2)
    yn, grp = y.numpy(), np.asarray(groups)
    ci = auc_interval(oof[best][yn == 0], oof[best][yn == 1], grp[yn == 0], grp[yn == 1], seed=seed)
    return GenderAttackReport(
        families=results,
        strongest=best,
        accuracy=results[best].accuracy,
        auc=results[best].auc,
        chance=float(counts.max() / counts.sum()),
        positive_class=classes[0],
        unit=unit,
        n_items=len(labels),
        n_groups=len(set(groups)),
        n_folds=n_folds,
        auc_ci=ci,
    )


def _drop_labels(labels: Sequence[str], exclude: Sequence[str], unit: str):
    keep = [i for i, lab in enumerate(labels) if lab not in set(exclude)]
    dropped = len(labels) - len(keep)
    note = {}
    if dropped:
        note["excluded"] = f"{dropped} {unit}s labelled {sorted(set(labels) & set(exclude))} were excluded"
    return keep, note


def gender_attack(
    data: UtteranceSet,
    *,
    seed: int = 0,
    families: Sequence[str] = GENDER_FAMILIES,
    exclude_labels: Sequence[str] = ("unknown",),
) -> GenderAttackReport:
    """Gender of an utterance from its pooled representation, on held-out speakers (grouped CV).

    Utterances whose gender is in ``exclude_labels`` (LibriSpeech prep writes
    ``unknown`` when SPEAKERS.TXT has no entry) are left out; their count is
    in ``notes['excluded']``.
    """
    data.validate()
    keep, note = _drop_labels(data.genders, exclude_labels, "utterance")
    if not keep:
        raise AttackPrecondition(f"every utterance has an excluded gender label {list(exclude_labels)}")
    data = data.subset(keep)
    rep = binary_attribute_attack(
        mean_std_pool(data.frames), data.genders, data.spk_ids, unit="utterance", families=families, seed=seed
    )
    rep.notes.update(note)
    return rep


def update_gender_attack(
    updates: Dict[str, torch.Tensor],
    genders: Dict[str, str],
    *,
    seed: int = 0,
    families: Sequence[str] = GENDER_FAMILIES,
    sketch_dim: int = 1024,
    exclude_labels: Sequence[str] = ("unknown",),
) -> GenderAttackReport:
    """Gender of a client from its update(s) ``{client: [d] or [k, d]}``, on held-out clients (grouped CV).

    Every client needs a gender; a client speaking for mixed genders should be
    labelled by the caller (e.g. majority) or given an excluded label.
    Clients whose label is in ``exclude_labels`` are left out (count in notes).
    """
    missing = sorted(c for c in updates if c not in genders)
    if missing:
        raise ValueError(f"no gender given for clients {missing[:10]}")
    x, owners = stack_updates(updates, "update_gender_attack")
    labels: List[str] = [genders[c] for c in owners]
    keep, note = _drop_labels(labels, exclude_labels, "update")
    if not keep:
        raise AttackPrecondition(f"every client has an excluded gender label {list(exclude_labels)}")
    z = count_sketch(x[keep], sketch_dim, seed=seed)
    rep = binary_attribute_attack(
        z, [labels[i] for i in keep], [owners[i] for i in keep], unit="update", families=families, seed=seed
    )
    rep.notes.update(note)
    return rep
