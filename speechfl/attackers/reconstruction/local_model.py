"""Local-model reconstruction and the footprint attack on the recovered local models.

What the server holds of client ``i``'s local model is ``w_hat_i = w + D(payload_i)``;
the true one is ``w_i = w + delta_i``. With error feedback the payload encodes
``delta_i + e_i`` (memory the server never sees), so ``D(payload_i) - delta_i``
mixes the compression error and the memory. We report
``||D(payload) - delta|| / ||delta||`` and ``cos(D(payload), delta)``.

Footprint attack (Tomashenko et al., ICASSP 2022, "Privacy attacks for automatic
speech recognition acoustic models in a federated learning framework"): run every
recovered local model and the global model on a fixed *indicator* set of
utterances the attacker owns, and describe a model by its **footprint**: the
time-averaged difference of the encoder outputs, concatenated over indicator
utterances::

    F(w_hat) = concat_u  mean_t ( enc_{w_hat}(u)_t - enc_w(u)_t )

Two models are scored by the cosine of their footprints; pairs of models trained
by the same speaker are targets, others non-targets; the EER measures how well
the recovered models identify their speaker (lower = worse privacy).
"""

from __future__ import annotations

from typing import List, Sequence, Tuple, Union

import torch

from speechfl.federated.update import ParamLayout, load_flat_params
from speechfl.metrics.privacy import eer


def recovery_error(decoded: torch.Tensor, delta: torch.Tensor) -> Tuple[float, float]:
    """``(||decoded - delta|| / ||delta||, cos(decoded, delta))`` (cosine 0 for a zero vector)."""
    if decoded.shape != delta.shape or delta.dim() != 1:
        raise ValueError(f"decoded {tuple(decoded.shape)} and delta {tuple(delta.shape)} must be equal 1-D shapes")
    nd = float(delta.norm())
    if nd == 0.0:
        raise ValueError("the true update is all zeros: relative error undefined")
    rel = float((decoded - delta).norm()) / nd
    cos = float(torch.nn.functional.cosine_similarity(decoded, delta, dim=0, eps=1e-30)) if float(decoded.norm()) else 0.0
    return rel, cos


@torch.no_grad()
def encoder_means(model: torch.nn.Module, layout: ParamLayout, flat: torch.Tensor,
                  indicator: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[U, D]``: the time-mean encoder output of each indicator utterance under parameters ``flat``.

    Loads ``flat`` into ``model`` (the caller's parameters are restored after).
    """
    if not indicator:
        raise ValueError("the indicator set is empty")
    saved = {n: p.detach().clone() for n, p in model.named_parameters()}
    was_training = model.training
    model.eval()
    try:
        dev = next(model.parameters()).device
        load_flat_params(model, layout, flat.to(dev))
        rows = []
        for f in indicator:
            reps, _ = model.encode(f.unsqueeze(0).to(dev), torch.ones(1, device=dev))
            rows.append(reps[0].mean(0).cpu())
        return torch.stack(rows)
    finally:
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(saved[n])
        model.train(was_training)


def footprints(model: torch.nn.Module, layout: ParamLayout, global_flat: Union[torch.Tensor, Sequence[torch.Tensor]],
               deltas: Sequence[torch.Tensor], indicator: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[N, U * D]`` footprints of the models ``global_flat + deltas[k]``.

    ``global_flat`` is one vector, or one per update (recorded rounds each start from their own
    global model; the footprint is taken against that one).
    """
    bases = [global_flat] * len(deltas) if isinstance(global_flat, torch.Tensor) else list(global_flat)
    if len(bases) != len(deltas):
        raise ValueError(f"{len(bases)} global models for {len(deltas)} updates")
    cache: dict = {}
    rows = []
    for b, d in zip(bases, deltas):
        if id(b) not in cache:
            cache[id(b)] = encoder_means(model, layout, b, indicator)
        rows.append((encoder_means(model, layout, b + d, indicator) - cache[id(b)]).reshape(-1))
    return torch.stack(rows)


def footprint_trials(prints: torch.Tensor, speakers: Sequence[str]) -> Tuple[List[float], List[float]]:
    """Cosine scores of every pair of footprints, split into same-speaker and different-speaker pairs."""
    if prints.shape[0] != len(speakers):
        raise ValueError(f"{prints.shape[0]} footprints but {len(speakers)} speaker labels")
    z = torch.nn.functional.normalize(prints, dim=1)
    sim = z @ z.T
    target, nontarget = [], []
    for i in range(len(speakers)):
        for j in range(i + 1, len(speakers)):
            (target if speakers[i] == speakers[j] else nontarget).append(float(sim[i, j]))
    return target, nontarget


def footprint_eer(prints: torch.Tensor, speakers: Sequence[str]) -> Tuple[float, int, int]:
    """Speaker EER of the footprints, with the target and non-target trial counts."""
    target, nontarget = footprint_trials(prints, speakers)
    if not target or not nontarget:
        raise ValueError(f"footprint EER needs same- and different-speaker pairs; got {len(target)} target and "
                         f"{len(nontarget)} non-target pairs (record at least two updates of some speaker)")
    return eer(target, nontarget), len(target), len(nontarget)
