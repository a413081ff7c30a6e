"""Which characters a client's transcripts contain, read off the CTC head's bias in its update.

Derivation (the iDLG idea of Zhao et al. 2020, for CTC). With ``z_t = W h_t + b``
the head's logits, ``p_t = softmax(z_t)`` and the CTC loss ``L = -log p(y | x)``,
the gradient with respect to the logits is ``dL/dz_t(c) = p_t(c) - gamma_t(c)``
(Graves et al. 2006), where ``gamma_t(c)`` is the posterior probability that an
alignment emits ``c`` at frame ``t``. Hence for the head bias::

    g_b(c) = sum_t p_t(c) - sum_t gamma_t(c) = P_c - G_c.

* A character absent from the transcript has ``G_c = 0`` and ``P_c > 0`` (softmax):
  ``g_b(c) > 0`` always.
* A character occurring ``n_c`` times has ``G_c >= n_c`` (every alignment emits
  each occurrence on at least one frame): ``g_b(c) < 0`` whenever the model's
  total mass ``P_c`` on it is below ``n_c`` (always true e.g. for near-uniform
  outputs with fewer frames than ``V n_c``).

A batch (any positive per-utterance weights, e.g. SpeechBrain's ``1/L_i``), gradient
clipping (a positive scale) and several local steps keep the first property
for the *sum*: every step adds a positive term for an absent character. The
client's update is ``delta = -lr * (positive combination of the g_b)`` for SGD, and
for Adam ``-lr * m / (sqrt(v) + eps)`` with ``m`` a positive combination of the
``g_b``. So the estimator::

    S_hat = {c != blank : delta_b(c) > 0}

has **no false positives** on an uncompressed update of an SGD/Adam client
without weight decay on the bias (precision 1, whatever the batch), and its
recall is 1 for every character with ``P_c < G_c``.

A trained model puts mass ``P_c ~ G_c`` on the characters it hears, so many
present characters have ``delta_b(c) <= 0`` too. The head *weight* row separates
them (second rule, for SGD clients): ``g_W(c) = sum_t (p_t(c) - gamma_t(c)) h_t``.
For an absent character the weights ``p_t(c)`` are all positive, so
``r_c = ||delta_W(c)|| / |delta_b(c)|`` is the norm of a convex combination of the
head inputs ``h_t``, about the same for every absent character; for a present
one the bias terms cancel where the weight terms do not (``p_t`` and ``gamma_t``
peak on different frames), so ``r_c`` is large. Among the candidates
``C = {c != blank : delta_b(c) <= 0}``::

    S_hat = {c : delta_b(c) > 0}  U  {c in C : r_c > kappa * median_{c' in C} r_c'}

The median is an absent character's ratio while fewer than half the candidates
are present. ``kappa = 1.4`` was picked on our synthetic corpus (precision 1.00,
recall 0.82 on single-utterance FedSGD updates of the trade-off model after 150
and 400 pre-training steps, against recall 0.57 for the sign rule alone): the
second rule is a calibrated heuristic, the first one a guarantee. The counts ``n_c`` are not
identifiable from the bias alone (``G_c`` mixes counts and durations), so this
recovers the character *set*. A compressor can break either property: dropping
a coordinate (top-k, random-k, QSGD rounding to 0) loses recall; error feedback
sends ``C(delta + e)``, whose memory ``e`` can flip a sign (false positives).
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence, Set

import torch

from speechfl.attackers.reconstruction.reports import SetScore


def recover_char_set(bias_delta: torch.Tensor, weight_delta: Optional[torch.Tensor] = None, blank: int = 0,
                     kappa: float = 1.4, rel_tol: float = 0.0) -> Set[int]:
    """The estimated character set (see the module docstring).

    Parameters
    ----------
    bias_delta : torch.Tensor
        ``[V]`` update (new minus old) of the CTC head's bias, as the server decodes it.
    weight_delta : torch.Tensor or None
        ``[V, H]`` update of the head's weight; None: the sign rule alone (no false positives).
    blank : int
        Blank id, never reported.
    kappa : float
        Ratio rule threshold, relative to the candidates' median ratio.
    rel_tol : float
        Sign rule: a coordinate counts only if ``delta_b(c) > rel_tol * max|delta_b|``.
    """
    if not isinstance(bias_delta, torch.Tensor) or bias_delta.dim() != 1:
        raise ValueError(f"bias_delta must be a 1-D tensor [V], got {getattr(bias_delta, 'shape', type(bias_delta))}")
    if not bool(torch.isfinite(bias_delta).all()):
        raise ValueError("bias_delta has NaN/Inf values")
    if not 0.0 <= rel_tol < 1.0:
        raise ValueError(f"rel_tol must be in [0, 1), got {rel_tol}")
    thr = rel_tol * float(bias_delta.abs().max()) if bias_delta.numel() else 0.0
    found = {c for c, v in enumerate(bias_delta.tolist()) if v > thr and c != blank}
    if weight_delta is None:
        return found
    if weight_delta.dim() != 2 or weight_delta.shape[0] != bias_delta.numel():
        raise ValueError(f"weight_delta must be [V={bias_delta.numel()}, H], got {tuple(weight_delta.shape)}")
    if kappa <= 1.0:
        raise ValueError(f"kappa must be > 1 (absent characters sit at the median), got {kappa}")
    cand = [c for c, v in enumerate(bias_delta.tolist()) if v <= thr and c != blank and v != 0.0]
    if not cand:
        return found
    ratio = weight_delta.norm(dim=1) / bias_delta.abs().clamp_min(torch.finfo(bias_delta.dtype).tiny)
    med = float(ratio[cand].median())
    return found | {c for c in cand if float(ratio[c]) > kappa * med}


def score_sets(pred: Iterable[int], truth: Iterable[int]) -> SetScore:
    """Precision, recall and F1 of a predicted set against the true one.

    Conventions: precision is 1 for an empty prediction, recall is 1 for an empty truth
    (nothing to find), F1 is their harmonic mean (0 when both are 0).
    """
    p, t = set(pred), set(truth)
    tp = len(p & t)
    precision = tp / len(p) if p else 1.0
    recall = tp / len(t) if t else 1.0
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return SetScore(precision=precision, recall=recall, f1=f1, n_pred=len(p), n_true=len(t), n_correct=tp)


def true_char_set(token_seqs: Sequence[Sequence[int]], blank: int = 0) -> Set[int]:
    """The set of character ids in a batch's transcripts (the ground truth)."""
    return {int(c) for seq in token_seqs for c in seq if int(c) != blank}
