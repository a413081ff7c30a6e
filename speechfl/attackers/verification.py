"""Open-set speaker verification back-end: LDA + length norm + cosine, trials, EER.

Back-end (fitted on the attacker's *training* embeddings only):
``e -> W^T (e - m)`` with ``W`` the top LDA directions, then length
normalisation ``x / ||x||`` (Garcia-Romero & Espy-Wilson 2011), and cosine
scoring ``s(a, b) = x_a . x_b``. LDA solves ``S_b w = lambda S_w w`` with the
within-class scatter shrunk towards its diagonal,
``(1 - a) S_w + a diag(S_w) + eps I`` (scale-invariant regularisation), so it
is defined when ``d`` exceeds the number of utterances.

Trials: every pair of distinct held-out utterances; target iff same speaker.
Per-gender trials keep pairs whose two utterances share that gender (the
VoicePrivacy convention); the overall EER uses every pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch


@dataclass
class CosineBackend:
    """Centring + optional LDA projection, followed by length normalisation."""

    mean: torch.Tensor
    proj: Optional[torch.Tensor]

    @classmethod
    def fit(cls, emb: torch.Tensor, labels: torch.Tensor, lda_dim: Optional[int] = 150, shrink: float = 0.1):
        """Fit on training embeddings ``[N, E]`` with integer speaker labels; ``lda_dim=None`` skips LDA."""
        if emb.dim() != 2 or emb.shape[0] != labels.numel():
            raise ValueError(f"embeddings {tuple(emb.shape)} and labels {tuple(labels.shape)} do not match")
        emb = emb.to(torch.float64)
        mean = emb.mean(dim=0)
        classes = torch.unique(labels)
        if lda_dim is None or classes.numel() < 3:
            return cls(mean=mean.float(), proj=None)
        x = emb - mean
        d = x.shape[1]
        sw = torch.zeros(d, d, dtype=torch.float64)
        sb = torch.zeros(d, d, dtype=torch.float64)
        for c in classes:
            xc = x[labels == c]
            mc = xc.mean(dim=0)
            r = xc - mc
            sw += r.T @ r
            sb += xc.shape[0] * torch.outer(mc, mc)
        sw /= x.shape[0]
        sb /= x.shape[0]
        diag = torch.diagonal(sw)
        sw = (1 - shrink) * sw + torch.diag(shrink * diag + 1e-6 * diag.mean() + 1e-12)
        chol = torch.linalg.cholesky(sw)
        inv = torch.linalg.solve_triangular(chol, torch.eye(d, dtype=torch.float64), upper=False)
        m = inv @ sb @ inv.T
        evals, evecs = torch.linalg.eigh((m + m.T) / 2)
        k = min(lda_dim, classes.numel() - 1, d)
        w = inv.T @ evecs[:, -k:].flip(1)
        return cls(mean=mean.float(), proj=w.float())

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        x = emb.to(torch.float32) - self.mean
        if self.proj is not None:
            x = x @ self.proj
        return torch.nn.functional.normalize(x, dim=1)


@dataclass
class TrialScores:
    """Scores of target and non-target trials.

    ``target_spk`` / ``nontarget_spk`` ``[k, 2]``: the speaker index (into the
    sorted unique speaker ids) of each trial's two sides, for a bootstrap over
    speakers; ``None`` when not tracked.
    """

    target: np.ndarray
    nontarget: np.ndarray
    target_spk: Optional[np.ndarray] = None
    nontarget_spk: Optional[np.ndarray] = None


def trial_scores(
    enroll: torch.Tensor,
    test: torch.Tensor,
    spk_ids: List[str],
    genders: List[str],
    *,
    same_set: bool,
    max_pairs: int = 2_000_000,
    seed: int = 0,
) -> Tuple[TrialScores, Dict[str, TrialScores]]:
    """Cosine scores of utterance pairs, overall and per gender.

    ``enroll`` and ``test`` are normalised embeddings ``[N, E]`` of the same N
    utterances (identical when ``same_set``; e.g. baseline vs protected
    representations otherwise). Pairs are ``i < j`` when ``same_set`` and all
    ``i != j`` otherwise. Above ``max_pairs`` a seeded uniform subset is kept.
    """
    n = len(spk_ids)
    if enroll.shape[0] != n or test.shape[0] != n:
        raise ValueError(f"{n} labels but embeddings {tuple(enroll.shape)} / {tuple(test.shape)}")
    spk = np.unique(np.asarray(spk_ids), return_inverse=True)[1]
    gen_arr = np.asarray(genders)
    if same_set:
        ii, jj = np.triu_indices(n, k=1)
    else:
        ii, jj = np.nonzero(~np.eye(n, dtype=bool))
    if ii.size > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(ii.size, size=max_pairs, replace=False))
        ii, jj = ii[keep], jj[keep]
    scores = (enroll.double() @ test.double().T).numpy()[ii, jj]
    same = spk[ii] == spk[jj]
    pairs = np.stack([spk[ii], spk[jj]], axis=1)
    overall = TrialScores(scores[same], scores[~same], pairs[same], pairs[~same])
    per_gender = {}
    for g in sorted(set(genders)):
        m = (gen_arr[ii] == g) & (gen_arr[jj] == g)
        per_gender[g] = TrialScores(scores[m & same], scores[m & ~same], pairs[m & same], pairs[m & ~same])
    return overall, per_gender
