"""CTC negative log-likelihood in plain torch ops, differentiable to any order.

``torch.nn.functional.ctc_loss`` has no double backward (``aten::_ctc_loss_backward``
is not differentiable), and gradient matching differentiates the gradient of
the training loss. This is the textbook forward (alpha) recursion of Graves et
al. (ICML 2006) in log space over the blank-extended label sequence
``l' = (b, y_1, b, y_2, ..., y_L, b)`` of length ``S = 2L + 1``::

    alpha_1(1) = p_1(b),  alpha_1(2) = p_1(y_1)
    alpha_t(s) = p_t(l'_s) * (alpha_{t-1}(s) + alpha_{t-1}(s-1)
                              + [l'_s != b and l'_s != l'_{s-2}] alpha_{t-1}(s-2))
    -log p(y | x) = -log(alpha_T(S) + alpha_T(S-1))

It matches ``torch.nn.functional.ctc_loss`` to float precision (tested); it is
O(T S) Python-level steps, meant for the few utterances of one attacked update.
Unreachable states hold a large finite negative number instead of ``-inf``:
``logsumexp`` over all ``-inf`` has a NaN gradient, which would poison the
second-order gradient the attack needs.
"""

from __future__ import annotations

from typing import Sequence

import torch

_NEG = -1e30  # "log 0" that keeps every gradient finite

def ctc_nll(log_probs: torch.Tensor, targets: Sequence[int], blank: int = 0) -> torch.Tensor:
    """``-log p(targets | x)`` for one utterance.

    Parameters
    ----------
    log_probs : torch.Tensor
        ``[T, V]`` per-frame log-probabilities (valid frames only).
    targets : sequence of int
        Label ids (no blanks), length ``L >= 1`` with ``L`` plus repeats ``<= T``.
    blank : int
        Blank index.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be [T, V], got {tuple(log_probs.shape)}")
    y = [int(v) for v in targets]
    T, V = log_probs.shape
    if not y:
        raise ValueError("ctc_nll needs a non-empty target sequence")
    if any(v == blank or not 0 <= v < V for v in y):
        raise ValueError(f"targets must lie in [0, {V}) and exclude the blank {blank}, got {y}")
    repeats = sum(1 for a, b in zip(y, y[1:]) if a == b)
    if len(y) + repeats > T:
        raise ValueError(f"{len(y)} labels ({repeats} repeats) cannot align to {T} frames")
    ext = [blank]
    for v in y:
        ext += [v, blank]
    S = len(ext)
    ext_t = torch.tensor(ext, device=log_probs.device)
    skip = torch.zeros(S, dtype=torch.bool, device=log_probs.device)
    for s in range(2, S):
        skip[s] = ext[s] != blank and ext[s] != ext[s - 2]
    neg_inf = torch.tensor(_NEG, dtype=log_probs.dtype, device=log_probs.device)
    emit = log_probs[:, ext_t]  # [T, S]
    alpha = torch.full((S,), _NEG, dtype=log_probs.dtype, device=log_probs.device)
    alpha = torch.cat([emit[0, :2], alpha[2:]])
    for t in range(1, T):
        prev1 = torch.cat([neg_inf.view(1), alpha[:-1]])
        prev2 = torch.cat([neg_inf.expand(2), alpha[:-2]])
        prev2 = torch.where(skip, prev2, neg_inf)
        alpha = torch.logsumexp(torch.stack([alpha, prev1, prev2]), dim=0) + emit[t]
    return -torch.logsumexp(alpha[-2:], dim=0)


def ctc_batch_mean(log_probs: torch.Tensor, frames: Sequence[int], targets: Sequence[Sequence[int]],
                   blank: int = 0) -> torch.Tensor:
    """SpeechBrain's ``ctc_loss(reduction='mean')``: mean over the batch of ``nll_i / L_i``.

    ``log_probs`` is ``[B, T, V]``; ``frames[i]`` is utterance ``i``'s number of valid frames.
    """
    if log_probs.dim() != 3 or log_probs.shape[0] != len(frames) or len(frames) != len(targets):
        raise ValueError(f"log_probs {tuple(log_probs.shape)}, {len(frames)} frame counts and "
                         f"{len(targets)} targets must agree on the batch size")
    losses = [ctc_nll(log_probs[i, : int(n)], y, blank) / len(y) for i, (n, y) in enumerate(zip(frames, targets))]
    return torch.stack(losses).mean()
