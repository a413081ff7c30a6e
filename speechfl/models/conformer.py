"""The ``conformer`` encoder: conv subsampling + SpeechBrain's ConformerEncoder + CTC head.

Architecture (Gulati et al. 2020, "Conformer: Convolution-augmented Transformer for Speech
Recognition"; the CTC-only variant of SpeechBrain's LibriSpeech recipe): per-utterance feature
normalisation -> 2 x (Conv2d stride 2 + LayerNorm + LeakyReLU) (4x time subsampling; character
CTC on our corpora needs at most 4x: 0.16 characters per 10 ms frame on average, 0.25 at most)
-> linear to ``d_model`` -> :class:`speechbrain.lobes.models.transformer.Conformer.ConformerEncoder`
(macaron feed-forwards, relative-position multi-head self-attention ``RelPosMHAXL``, depthwise
convolution module) -> linear CTC head. The representation is the Conformer output [B, T/4, d_model].

Presets (``preset=``; any field can be overridden by keyword):

========  =======  ======  =====  =====  ======  ===========================================
preset    d_model  layers  heads  d_ffn  kernel  use
========  =======  ======  =====  =====  ======  ===========================================
tiny      96       2       4      384    15      federated benchmarks at one CPU thread
cpu       144      4       4      576    15      the synthetic corpus, centralized, 2 CPU cores
small     256      8       4      1024   31      LibriSpeech on a GPU (about 13M parameters)
========  =======  ======  =====  =====  ======  ===========================================

The relative positional encoding registers ``inv_freq`` as a buffer; it is a constant of the
construction, declared non-persistent (:func:`speechfl.models.protocol.mark_constant_buffers`)
so federated averaging needs no buffer handling. Padded frames are zeroed before every depthwise
convolution, so an utterance's output does not depend on its batch's padding. No BatchNorm: SpeechBrain's convolution module
uses LayerNorm. Opacus per-sample DP cannot compute per-sample gradients of ``RelPosMHAXL``'s
own parameters, so ``dp_sample`` refuses this encoder (see :data:`ConformerASR.opacus_compatible`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional

import torch
import torch.nn as nn
from speechbrain.lobes.models.transformer.Conformer import ConformerEncoder
from speechbrain.nnet.attention import RelPosEncXL
from speechbrain.nnet.CNN import Conv2d
from speechbrain.nnet.linear import Linear
from speechbrain.nnet.normalization import LayerNorm

from speechfl.models.adversary import length_mask
from speechfl.models.asr import CTCModel, subsample, subsampled_bins
from speechfl.models.protocol import mark_constant_buffers


@dataclass(frozen=True)
class ConformerConfig:
    d_model: int
    layers: int
    heads: int
    d_ffn: int
    kernel_size: int
    channels: int = 32

    def __post_init__(self):
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by heads={self.heads}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size={self.kernel_size} must be odd")
        for k, v in asdict(self).items():
            if v < 1:
                raise ValueError(f"conformer {k} must be >= 1, got {v}")


PRESETS = {
    "tiny": ConformerConfig(d_model=96, layers=2, heads=4, d_ffn=384, kernel_size=15, channels=16),
    "cpu": ConformerConfig(d_model=144, layers=4, heads=4, d_ffn=576, kernel_size=15, channels=32),
    "small": ConformerConfig(d_model=256, layers=8, heads=4, d_ffn=1024, kernel_size=31, channels=64),
}


def conformer_config(preset: str = "cpu", **overrides) -> ConformerConfig:
    """A preset with some fields overridden; unknown presets or fields are errors listing the valid ones."""
    if preset not in PRESETS:
        raise ValueError(f"unknown conformer preset {preset!r}; valid: {', '.join(PRESETS)}")
    fields = set(ConformerConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown conformer parameter(s) {unknown}; valid: {', '.join(sorted(fields))}")
    return replace(PRESETS[preset], **{k: int(v) for k, v in overrides.items() if v is not None})


class ConformerASR(CTCModel):
    """Conv subsampling + SpeechBrain ConformerEncoder with a CTC head.

    Parameters
    ----------
    vocab_size : int
        CTC output size including the blank: ``len(tokenizer)``.
    n_mels : int
    preset : {'tiny', 'cpu', 'small'}
    dropout : float
    **overrides
        Fields of :class:`ConformerConfig` (d_model, layers, heads, d_ffn, kernel_size, channels).
    """

    opacus_compatible = False

    def __init__(self, vocab_size: int, n_mels: int = 80, preset: str = "cpu", dropout: float = 0.1, **overrides):
        super().__init__()
        cfg = conformer_config(preset, **overrides)
        self.config = cfg
        c = cfg.channels
        self.conv1 = Conv2d(c, (3, 3), in_channels=1, stride=(2, 2), padding="valid")
        self.norm1 = LayerNorm(input_size=c)
        self.conv2 = Conv2d(c, (3, 3), in_channels=c, stride=(2, 2), padding="valid")
        self.norm2 = LayerNorm(input_size=c)
        self.act = nn.LeakyReLU()
        self.proj = Linear(cfg.d_model, input_size=subsampled_bins(n_mels) * c)
        self.pos = RelPosEncXL(cfg.d_model)
        mark_constant_buffers(self.pos, ["inv_freq"])
        self.encoder = ConformerEncoder(num_layers=cfg.layers, d_model=cfg.d_model, d_ffn=cfg.d_ffn, nhead=cfg.heads,
                                        kernel_size=cfg.kernel_size, dropout=dropout, attention_type="RelPosMHAXL")
        self._pad: Optional[torch.Tensor] = None  # [B, 1, T] True where padded, set by encode()
        for layer in self.encoder.layers:
            layer.convolution_module.conv.register_forward_pre_hook(self._zero_padded_frames)
        self.dropout = nn.Dropout(dropout)
        self.head = Linear(vocab_size, input_size=cfg.d_model)
        self.rep_dim = cfg.d_model
        self.vocab_size = int(vocab_size)
        self.split: Optional[int] = None  # blocks before an inner bottleneck (place_bottleneck); None: all

    def place_bottleneck(self, after_layer: int) -> None:
        """Blocks ``1..after_layer`` form the protected representation; the rest and the final norm decode it."""
        if not 1 <= after_layer < self.config.layers:
            raise ValueError(f"bottleneck.after_layer must lie in [1, {self.config.layers - 1}] for a "
                             f"{self.config.layers}-block conformer, got {after_layer}")
        self.split = int(after_layer)

    def _blocks(self, x: torch.Tensor, pad: torch.Tensor, layers) -> torch.Tensor:
        """``layers`` of the encoder on ``x`` with the padding mask ``pad`` [B, T] (as ConformerEncoder.forward)."""
        self._pad = pad[:, None, :]
        try:
            pos = self.pos(x)
            for layer in layers:
                x, _ = layer(x, src_key_padding_mask=pad, pos_embs=pos)
        finally:
            self._pad = None
        return x

    def _zero_padded_frames(self, conv, args):
        """Zero the padded frames entering each depthwise time convolution.

        SpeechBrain's convolution module masks its *output* only, so the last valid frames would
        read the padded frames' values and an utterance's output would depend on how much padding
        its batch has. Zeros are what the convolution's own zero padding gives an unpadded utterance.
        """
        if self._pad is None:
            return None
        return (args[0].masked_fill(self._pad, 0.0),)

    def encode_frames(self, feats: torch.Tensor, lengths: torch.Tensor):
        """Features [B, T, n_mels] -> (representation [B, T', d_model], relative lengths [B])."""
        if feats.dim() != 3:
            raise ValueError(f"feats must be [B, T, n_mels], got {tuple(feats.shape)}")
        x = self.dropout(self.proj(subsample(self, feats, lengths)))
        T = x.shape[1]
        n = (lengths * T).round().clamp(min=1, max=T)
        pad = torch.arange(T, device=x.device)[None, :] >= n[:, None]  # True where padded
        if self.split is not None:  # an inner bottleneck follows block `split`: decode_frames runs the rest
            return self._blocks(x, pad, self.encoder.layers[:self.split]), lengths
        self._pad = pad[:, None, :]
        try:
            reps, _ = self.encoder(x, src_key_padding_mask=pad, pos_embs=self.pos(x))
        finally:
            self._pad = None
        return reps, lengths

    def decode_frames(self, reps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The blocks after an inner bottleneck, then the encoder's final norm (identity without one)."""
        if self.split is None:
            return reps
        pad = ~length_mask(lengths, reps.shape[1])  # the padding encode_frames masked, from the same lengths
        return self.encoder.norm(self._blocks(reps, pad, self.encoder.layers[self.split:]))
