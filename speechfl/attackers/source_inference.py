"""Source inference (Hu et al. 2021, "Source Inference Attacks in Federated Learning").

The server knows a training utterance and every client's local model; it
predicts that the utterance's owner is the client whose local model gives it
the lowest loss: ``c_hat(x) = argmin_c loss(x; theta_c)``. Accuracy is
compared with random guessing, ``1 / n_clients``.

Ties (several clients at the minimum) are scored by their expected accuracy
under a uniform random tie-break: ``1 / |argmin set|`` if the owner is in
the set, else 0, so ties never favour the attacker.
"""

from __future__ import annotations

import numpy as np
import torch

from speechfl.attackers.intervals import top1_interval
from speechfl.attackers.reports import SourceInferenceReport
from speechfl.attackers.types import AttackPrecondition


def source_inference(losses: torch.Tensor, true_client: torch.Tensor, client_ids=None) -> SourceInferenceReport:
    """Accuracy of lowest-loss owner prediction.

    Parameters
    ----------
    losses : torch.Tensor
        ``[n_utts, n_clients]`` loss of each known training utterance under each client's local model.
    true_client : torch.Tensor
        ``[n_utts]`` integer column index of each utterance's owner.
    client_ids : sequence of str, optional
        Names of the columns for ``per_client_accuracy`` (default ``"0", "1", ...``).
    """
    if not isinstance(losses, torch.Tensor) or losses.dim() != 2:
        raise ValueError(f"losses must be a [n_utts, n_clients] tensor, got {getattr(losses, 'shape', type(losses))}")
    n, c = losses.shape
    if n == 0:
        raise ValueError("source inference needs at least one utterance")
    if c < 2:
        raise AttackPrecondition(f"source inference needs at least 2 clients, got {c}")
    if not bool(torch.isfinite(losses).all()):
        raise ValueError(f"losses has {int((~torch.isfinite(losses)).sum())} non-finite values")
    if not isinstance(true_client, torch.Tensor) or true_client.shape != (n,) or true_client.is_floating_point():
        raise ValueError(f"true_client must be an integer tensor of shape [{n}], got {getattr(true_client, 'shape', None)}")
    if int(true_client.min()) < 0 or int(true_client.max()) >= c:
        raise ValueError(f"true_client indices must lie in [0, {c}), got range [{int(true_client.min())}, {int(true_client.max())}]")
    names = [str(i) for i in range(c)] if client_ids is None else [str(x) for x in client_ids]
    if len(names) != c:
        raise ValueError(f"{len(names)} client_ids for {c} loss columns")
    L = losses.double().numpy()
    t = true_client.numpy()
    at_min = L == L.min(axis=1, keepdims=True)
    n_min = at_min.sum(axis=1)
    credit = at_min[np.arange(n), t] / n_min
    per_client = {}
    notes = {}
    for k, name in enumerate(names):
        m = t == k
        per_client[name] = float(credit[m].mean()) if m.any() else None
        if not m.any():
            notes[f"per_client_accuracy[{name}]"] = "no known utterance of this client"
    acc = float(credit.mean())
    ci = top1_interval(credit, [names[k] for k in t], unit="client")
    if ci is None:
        notes["accuracy_ci"] = "bootstrap over clients undefined: the known utterances belong to a single client"
    return SourceInferenceReport(
        accuracy=acc,
        chance=1.0 / c,
        advantage=acc - 1.0 / c,
        n_utts=int(n),
        n_clients=int(c),
        n_tied=int((n_min > 1).sum()),
        per_client_accuracy=per_client,
        notes=notes,
        accuracy_ci=ci,
    )
