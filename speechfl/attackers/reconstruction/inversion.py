"""Feature inversion of an ASR client's update: recover its Fbank by gradient matching.

The server knows the global parameters the client started from, observes its
update, and (this attacker) knows the transcripts and frame counts of the
client's utterances (Dang et al. ICASSP 2022 also attack with the transcript
known; :mod:`speechfl.attackers.reconstruction.labels` shows what the update
alone reveals of it). It runs :func:`~speechfl.attackers.reconstruction.matching.match_input`
with the model's CTC loss on dummy features initialised with N(0, 1) noise.

Two implementation choices, both forced by double backward:

* the CTC loss is :func:`~speechfl.attackers.reconstruction.ctc.ctc_nll` (torch's CTC
  has no double backward);
* the recurrent layers run **unpacked** during the attack (``model.rnn.packed``
  is switched off, then restored): packed and unpacked GRUs both support double
  backward on the CPU, but the unpacked one is ~3x faster, and each utterance is
  run alone at its full length, where packing is the identity, so the loss is the
  same function.

The model runs in eval mode (dropout off): the attacker cannot know the
client's dropout masks, one source of mismatch with the observed update.
Features are compared after the model's own per-utterance mean/variance
normalisation, the only part of the input the model (hence its update) sees.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from torch.func import functional_call

from speechfl.attackers.reconstruction.ctc import ctc_nll
from speechfl.attackers.reconstruction.matching import MatchConfig, match_input
from speechfl.federated.update import ParamLayout
from speechfl.models.asr import normalize_utterances


@contextlib.contextmanager
def attack_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Eval mode and unpacked recurrent layers (when the model has them), restored on exit."""
    was_training = model.training
    rnn = getattr(model, "rnn", None)
    packed = getattr(rnn, "packed", None)
    model.eval()
    if packed is not None:
        rnn.packed = False
    try:
        yield model
    finally:
        model.train(was_training)
        if packed is not None:
            rnn.packed = packed


def matched_names(layout: ParamLayout) -> List[str]:
    """Parameters the ASR loss touches: every layout name but the adversary's."""
    return [n for n in layout.names if not n.startswith("adversary.")]


def observed_subvector(layout: ParamLayout, delta: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """The coordinates of ``delta`` belonging to ``names``, in that order."""
    if delta.dim() != 1 or delta.numel() != layout.dim:
        raise ValueError(f"update has shape {tuple(delta.shape)}, the layout needs [{layout.dim}]")
    sl = layout.slices()
    return torch.cat([delta[sl[n]] for n in names])


def matched_params(layout: ParamLayout, global_flat: torch.Tensor, delta: torch.Tensor):
    """``(params, observed)``: the starting parameters the ASR loss touches (float32, by name) and the
    matching coordinates of the update, in the same order."""
    names = matched_names(layout)
    sl = layout.slices()
    params = {n: global_flat[sl[n]].view(s).to(torch.float32) for n, s in zip(layout.names, layout.shapes) if n in names}
    return params, observed_subvector(layout, delta.to(torch.float32), names)


def ctc_loss_fn(model: torch.nn.Module, frames: Sequence[int], targets: Sequence[Sequence[int]], blank: int = 0):
    """``loss(params, x)``: SpeechBrain's mean CTC (``nll_i / L_i``, mean over the batch) on ``x[i, :T_i]``."""
    frames, targets = [int(t) for t in frames], [list(map(int, y)) for y in targets]
    ones = torch.ones(1)

    def loss(params: Dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        terms = []
        for i, (t, y) in enumerate(zip(frames, targets)):
            out = functional_call(model, params, (x[i : i + 1, :t], ones))
            terms.append(ctc_nll(out.log_probs[0], y, blank) / len(y))
        return torch.stack(terms).mean()

    return loss


@dataclass
class Inversion:
    """Reconstructed features ``[T_i, F]`` per utterance and the matching history (``1 - cos``)."""

    features: List[torch.Tensor]
    start: List[torch.Tensor]
    history: List[float]


def invert_update(model: torch.nn.Module, layout: ParamLayout, global_flat: torch.Tensor, delta: torch.Tensor,
                  frames: Sequence[int], targets: Sequence[Sequence[int]], n_feats: int,
                  config: MatchConfig = MatchConfig(), seed: int = 0, blank: int = 0,
                  start: Optional[Sequence[torch.Tensor]] = None) -> Inversion:
    """Reconstruct the features of the utterances behind one update.

    Parameters
    ----------
    model : torch.nn.Module
        The model architecture (its current parameters are not used: ``global_flat`` is).
    layout : ParamLayout
        Names/shapes of the flat vectors.
    global_flat, delta : torch.Tensor
        Parameters the client started from and the update as the server decodes it.
    frames : sequence of int
        Frame count of each utterance of the client's batch.
    targets : sequence of sequences of int
        Their transcripts as token ids.
    n_feats : int
        Feature dimension (e.g. mel bands).
    start : sequence of torch.Tensor, optional
        The attacker's prior: start features ``[T_i, n_feats]`` per utterance (e.g. its own
        text-to-speech of the known transcript, stretched to the frame count); default N(0, 1) noise.
    """
    if len(frames) != len(targets) or not frames:
        raise ValueError(f"{len(frames)} frame counts and {len(targets)} transcripts: need one of each per utterance")
    if global_flat.dim() != 1 or global_flat.numel() != layout.dim:
        raise ValueError(f"global_flat has shape {tuple(global_flat.shape)}, the layout needs [{layout.dim}]")
    params, observed = matched_params(layout, global_flat, delta)
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(len(frames), max(frames), n_feats, generator=gen)
    if start is not None:
        if len(start) != len(frames):
            raise ValueError(f"{len(start)} start feature matrices for {len(frames)} utterances")
        for i, (s0, t) in enumerate(zip(start, frames)):
            if tuple(s0.shape) != (t, n_feats):
                raise ValueError(f"start[{i}] has shape {tuple(s0.shape)}, utterance {i} needs ({t}, {n_feats})")
            x0[i, :t] = s0.to(torch.float32)
    with attack_mode(model):
        x, history = match_input(ctc_loss_fn(model, frames, targets, blank), params, observed, x0, config)
    return Inversion(features=[x[i, :t].clone() for i, t in enumerate(frames)],
                     start=[x0[i, :t].clone() for i, t in enumerate(frames)], history=history)


def normalised(feats: torch.Tensor) -> torch.Tensor:
    """The model's per-utterance normalisation of ``[T, F]`` features."""
    return normalize_utterances(feats.unsqueeze(0), torch.ones(1))[0]


def feature_similarity(a: torch.Tensor, b: torch.Tensor) -> Dict[str, float]:
    """Cosine and MSE of two ``[T, F]`` feature matrices after the model's normalisation."""
    if a.shape != b.shape:
        raise ValueError(f"feature shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    na, nb = normalised(a).reshape(-1), normalised(b).reshape(-1)
    return {"cosine": float(torch.nn.functional.cosine_similarity(na, nb, dim=0)),
            "mse": float(((na - nb) ** 2).mean())}


def mismatch_along(model: torch.nn.Module, layout: ParamLayout, global_flat: torch.Tensor, delta: torch.Tensor,
                   frames: Sequence[int], targets: Sequence[Sequence[int]], start: Sequence[torch.Tensor],
                   end: Sequence[torch.Tensor], alphas: Sequence[float], layerwise: bool = False,
                   blank: int = 0) -> List[float]:
    """Identifiability check: the matching objective ``1 - cos`` at ``x = (1 - a) start + a end`` for each ``a``.

    With ``end`` the true features and ``start`` the attacker's starting point, a curve that falls
    steeply towards ``a = 1`` says the update singles out the truth (a failed inversion is then an
    optimisation problem); a flat one says the update hardly tells them apart (no optimiser will).
    """
    from speechfl.attackers.reconstruction.matching import mismatch, simulated_update

    params, observed = matched_params(layout, global_flat, delta)
    params = {n: p.clone().requires_grad_(True) for n, p in params.items()}
    sizes = [p.numel() for p in params.values()]
    loss = ctc_loss_fn(model, frames, targets, blank)
    T, F = max(frames), start[0].shape[1]
    out = []
    with attack_mode(model):
        for a in alphas:
            x = torch.zeros(len(frames), T, F)
            for i, (s0, e0, t) in enumerate(zip(start, end, frames)):
                x[i, :t] = (1.0 - a) * s0 + a * e0
            sim = simulated_update(loss, params, x, 1, 1.0).detach()
            out.append(float(mismatch(sim, observed, sizes, layerwise)))
    return out
