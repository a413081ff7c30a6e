"""The training objective shared by the centralized Brain, federated clients and Flower.

``loss = CTC + (bottleneck VQ loss) + (adversary loss through gradient reversal or confusion)``.
Keeping it here (not inside a Brain subclass) means every engine optimises the
very same function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
from speechbrain.nnet.losses import ctc_loss

from speechfl.models.asr import ASRModel, ASROutput


@dataclass
class LossOutput:
    loss: torch.Tensor
    ctc: float
    adv_loss: Optional[float]
    adv_accuracy: Optional[float]
    reinitialised: tuple = ()  # adversary heads reset at this step (their optimizer state must be cleared)
    adv_ce: Optional[float] = None  # the heads' mean cross-entropy ...
    adv_uniform_ce: Optional[float] = None  # ... and the uniform guess's, log C (above it: fooling, not hiding)


def ctc_objective(out: ASROutput, tokens: torch.Tensor, token_lens: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """Mean CTC loss over the batch (SpeechBrain ``ctc_loss``, relative lengths)."""
    return ctc_loss(out.log_probs, tokens, out.lengths, token_lens, blank_index=blank)


def per_utterance_ctc(out: ASROutput, tokens: torch.Tensor, token_lens: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """``[B]`` CTC losses, each divided by its target length (SpeechBrain's ``reduction='batch'``): their
    mean is :func:`ctc_objective`."""
    return ctc_loss(out.log_probs, tokens, out.lengths, token_lens, blank_index=blank, reduction="batch")


def adversary_labels(batch, label_maps: Dict[str, Dict[str, int]], target: str) -> torch.Tensor:
    """Integer labels for the adversary's target attribute ('speaker' or 'gender')."""
    key = {"speaker": "spk_id", "gender": "gender"}[target]
    mapping = label_maps[target]
    values = getattr(batch, key)
    missing = sorted({v for v in values if v not in mapping})
    if missing:
        raise KeyError(f"{target} labels {missing[:5]} are not in the adversary's label set")
    return torch.tensor([mapping[v] for v in values], dtype=torch.long)


def concat_padded(a: torch.Tensor, a_lens: torch.Tensor, b: torch.Tensor, b_lens: torch.Tensor) -> tuple:
    """Two padded batches ``[B, T, H]`` with relative lengths as one ``[B_a + B_b, max T, H]`` batch."""
    t = max(a.shape[1], b.shape[1])
    pad = [torch.nn.functional.pad(x, (0, 0, 0, t - x.shape[1])) for x in (a, b)]
    lens = torch.cat([a_lens * (a.shape[1] / t), b_lens * (b.shape[1] / t)])
    return torch.cat(pad), lens


def training_loss(
    model: ASRModel,
    batch,
    *,
    step: int,
    label_maps: Optional[Dict[str, Dict[str, int]]] = None,
    augment=None,
    device: str | torch.device = "cpu",
    forward=None,
    group_dro=None,
    public=None,
) -> LossOutput:
    """Forward one PaddedBatch and return the loss to back-propagate.

    ``public`` is ``(feats, relative lengths, labels)`` of public-pool utterances
    (:meth:`speechfl.privacy.public_pool.PublicPool.draw`): they pass through the encoder and join the
    adversary's batch as negatives (no CTC term; the bottleneck's VQ loss is the client's own batch's).

    ``forward`` is what computes the ASR output (default: ``model`` itself); Opacus'
    ``GradSampleModule`` wrapping ``model`` is passed here, while the adversary is
    reached through ``model`` (its layers carry the per-sample hooks either way).
    """
    feats, lens = batch.feats.data.to(device), batch.feats.lengths.to(device)
    tokens, token_lens = batch.tokens.data.to(device), batch.tokens.lengths.to(device)
    if augment is not None and model.training:
        feats = augment(feats)
    bottleneck = getattr(model, "bottleneck", None)
    if bottleneck is not None:
        bottleneck.set_step(step)  # the VQ warm-up is a function of the global step
    out = (forward or model)(feats, lens)
    if group_dro is None:
        ctc = loss = ctc_objective(out, tokens, token_lens)
    else:  # centralized group DRO: the batch's per-utterance losses weighted by group (speechfl.fairness.pooled);
        per_utt = per_utterance_ctc(out, tokens, token_lens)  # the reported ctc stays their plain mean
        ctc, loss = per_utt.mean(), group_dro.loss(per_utt, list(batch.gender))
    adv_loss, adv_acc, reset = None, None, ()
    if bottleneck is not None and model.training:
        loss = loss + bottleneck.aux_loss  # VQ codebook + commitment terms of this forward
    if model.adversary is not None:
        if label_maps is None:
            raise ValueError("an adversary is attached but no label maps were given")
        labels = adversary_labels(batch, label_maps, model.adversary.target).to(device)
        reps, lengths = out.reps, out.lengths
        if public is not None:
            p_feats, p_lens, p_labels = public
            p_out = (forward or model)(p_feats.to(device), p_lens.to(device))
            reps, lengths = concat_padded(reps, lengths, p_out.reps, p_out.lengths)
            labels = torch.cat([labels, p_labels.to(device)])
        adv = model.adversary(reps, lengths, labels, step)
        loss = loss + adv.loss
        adv_loss, adv_acc, reset = float(adv.loss.detach()), float(adv.accuracy), adv.reinitialised
        return LossOutput(loss=loss, ctc=float(ctc.detach()), adv_loss=adv_loss, adv_accuracy=adv_acc,
                          reinitialised=reset, adv_ce=adv.ce, adv_uniform_ce=adv.uniform_ce)
    return LossOutput(loss=loss, ctc=float(ctc.detach()), adv_loss=adv_loss, adv_accuracy=adv_acc,
                      reinitialised=reset)
