"""The ``conv_rnn`` encoder: conv subsampling + bidirectional RNN + CTC head, from SpeechBrain nnet blocks.

Architecture: per-utterance feature normalisation -> 2 x (Conv2d stride 2 +
LayerNorm + LeakyReLU) (4x time subsampling) -> linear projection -> bidirectional
GRU/LSTM stack -> linear CTC head. The encoder output (the last RNN layer,
[B, T/4, 2H]) is the utterance's *representation*, the thing privacy attackers
probe and adversaries defend. No BatchNorm anywhere (so Opacus per-sample DP
and federated averaging need no buffer handling). With ``rnn_type='dpgru'`` or
``'dplstm'`` the recurrent layers are Opacus' DP-compatible versions; the choice
is fixed at construction so parameter names never change mid-run.

We measured SpeechBrain's CRDNN with its default LiGRU at ~39 s per batch of
16 x 3 s on 2 cores; this plain conv + BiGRU encoder trains at ~150+ s of
audio per second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from speechbrain.nnet.CNN import Conv2d
from speechbrain.nnet.linear import Linear
from speechbrain.nnet.normalization import LayerNorm

RNN_TYPES = ("gru", "lstm", "dpgru", "dplstm")


@dataclass
class ASROutput:
    log_probs: torch.Tensor  # [B, T', V]
    lengths: torch.Tensor  # relative lengths [B] in (0, 1]
    reps: torch.Tensor  # encoder representation [B, T', 2H]


def normalize_utterances(feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-utterance mean/variance normalisation over the valid frames only."""
    B, T, _ = feats.shape
    n = (lengths * T).round().clamp(min=1).to(feats.dtype)
    mask = (torch.arange(T, device=feats.device)[None, :] < n[:, None]).to(feats.dtype).unsqueeze(-1)
    mean = (feats * mask).sum(1, keepdim=True) / n[:, None, None]
    var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / n[:, None, None]
    return (feats - mean) / torch.sqrt(var + 1e-5) * mask


def subsampled_bins(n_mels: int) -> int:
    """Frequency bins left after two valid 3x3 convolutions of stride 2."""
    return ((n_mels - 3) // 2 + 1 - 3) // 2 + 1


def subsample(model: nn.Module, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Normalise, then ``model.conv1/norm1/conv2/norm2`` (4x in time): [B, T, F] -> [B, T', F' * C]."""
    if feats.shape[1] < 7:
        raise ValueError(f"utterance too short for 4x subsampling: {feats.shape[1]} frames")
    x = normalize_utterances(feats, lengths).unsqueeze(-1)  # [B, T, F, 1] (SpeechBrain layout)
    x = model.act(model.norm1(model.conv1(x)))
    x = model.act(model.norm2(model.conv2(x)))
    B, T2, F2, C = x.shape
    return x.reshape(B, T2, F2 * C)


class _RNN(nn.Module):
    """Bidirectional recurrent stack, batch-first, [B, T, F] -> [B, T, 2H]."""

    def __init__(self, rnn_type: str, input_size: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        kwargs = dict(
            input_size=input_size,
            hidden_size=hidden,
            num_layers=layers,
            batch_first=True,
            bidirectional=True,
            dropout=dropout if layers > 1 else 0.0,
        )
        if rnn_type == "gru":
            self.rnn = nn.GRU(**kwargs)
        elif rnn_type == "lstm":
            self.rnn = nn.LSTM(**kwargs)
        elif rnn_type == "dpgru":
            from opacus.layers import DPGRU

            self.rnn = DPGRU(**kwargs)
        elif rnn_type == "dplstm":
            from opacus.layers import DPLSTM

            self.rnn = DPLSTM(**kwargs)
        else:
            raise ValueError(f"unknown rnn_type {rnn_type!r}; valid: {', '.join(RNN_TYPES)}")
        self.packed = rnn_type in ("gru", "lstm")

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if not self.packed:
            return self.rnn(x)[0]
        T = x.shape[1]
        abs_len = (lengths * T).round().clamp(min=1, max=T).long().cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, abs_len, batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        return out


class CTCModel(nn.Module):
    """What every encoder + CTC head shares: adversary and bottleneck attachment, the CTC forward.

    A subclass builds its layers (and ``head``, ``dropout``, ``rep_dim``, ``vocab_size``) and implements
    :meth:`encode_frames`; :meth:`encode` then applies the attached bottleneck, so the CTC head, the
    adversaries and every attacker see the same (protected) representation whatever the encoder.
    """

    def __init__(self):
        super().__init__()
        self.adversary: Optional[nn.Module] = None
        self.bottleneck: Optional[nn.Module] = None

    def attach_adversary(self, adversary: nn.Module) -> None:
        """Register adversary heads as a submodule (federated: averaged like the rest)."""
        self.adversary = adversary

    def attach_bottleneck(self, bottleneck: nn.Module) -> None:
        """Apply ``bottleneck(reps, lengths)`` at the end of :meth:`encode` (:mod:`speechfl.privacy.bottleneck`):
        the adversaries and every attacker see its output, the CTC head sees :meth:`decode_frames` of it. A
        bottleneck with ``after_layer = k`` is placed after encoder block ``k`` (:meth:`place_bottleneck`)."""
        after = getattr(bottleneck, "after_layer", None)
        if after is not None:
            self.place_bottleneck(int(after))
        self.bottleneck = bottleneck

    def place_bottleneck(self, after_layer: int) -> None:
        """Make :meth:`encode_frames` stop after block ``after_layer`` and :meth:`decode_frames` run the rest."""
        raise ValueError(f"bottleneck.after_layer: encoder {getattr(self, 'encoder_name', type(self).__name__)!r} "
                         "cannot place a bottleneck between its layers (only at its output: after_layer null); "
                         "the conformer encoder can")

    def decode_frames(self, reps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The encoder layers after the bottleneck (none unless :meth:`place_bottleneck` moved it inside)."""
        return reps

    def encode_frames(self, feats: torch.Tensor, lengths: torch.Tensor):
        """Features [B, T, n_mels] -> (frame representations [B, T', rep_dim], relative lengths [B])."""
        raise NotImplementedError

    def encode(self, feats: torch.Tensor, lengths: torch.Tensor):
        """:meth:`encode_frames`, then the attached bottleneck if any."""
        reps, lengths = self.encode_frames(feats, lengths)
        if self.bottleneck is not None:
            reps = self.bottleneck(reps, lengths)
        return reps, lengths

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> ASROutput:
        reps, lengths = self.encode(feats, lengths)
        logits = self.head(self.dropout(self.decode_frames(reps, lengths)))
        return ASROutput(log_probs=logits.log_softmax(-1), lengths=lengths, reps=reps)

    def asr_parameters(self):
        """Parameters of the ASR part (everything but the adversary)."""
        return [p for n, p in self.named_parameters() if not n.startswith("adversary.")]


class ASRModel(CTCModel):
    """Conv subsampling + bidirectional RNN encoder with a CTC head.

    Parameters
    ----------
    vocab_size : int
        CTC output size including the blank (index 0): ``len(tokenizer)``.
    n_mels : int
        Input feature size.
    channels : int
        Conv channels of both subsampling blocks.
    proj : int
        Size of the linear projection feeding the RNN.
    hidden : int
        RNN hidden size per direction; the representation has ``2 * hidden`` dims.
    layers : int
        Number of RNN layers.
    dropout : float
    rnn_type : {'gru', 'lstm', 'dpgru', 'dplstm'}
    """

    def __init__(
        self,
        vocab_size: int,
        n_mels: int = 80,
        channels: int = 32,
        proj: int = 256,
        hidden: int = 256,
        layers: int = 3,
        dropout: float = 0.15,
        rnn_type: str = "gru",
    ):
        super().__init__()
        self.conv1 = Conv2d(channels, (3, 3), in_channels=1, stride=(2, 2), padding="valid")
        self.norm1 = LayerNorm(input_size=channels)
        self.conv2 = Conv2d(channels, (3, 3), in_channels=channels, stride=(2, 2), padding="valid")
        self.norm2 = LayerNorm(input_size=channels)
        self.proj = Linear(proj, input_size=subsampled_bins(n_mels) * channels)
        self.proj_norm = LayerNorm(input_size=proj)
        self.rnn = _RNN(rnn_type, proj, hidden, layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.head = Linear(vocab_size, input_size=2 * hidden)
        self.act = nn.LeakyReLU()
        self.rep_dim = 2 * hidden
        self.vocab_size = int(vocab_size)

    def encode_frames(self, feats: torch.Tensor, lengths: torch.Tensor):
        """Features [B, T, n_mels] -> (representation [B, T', 2H], relative lengths [B])."""
        if feats.dim() != 3:
            raise ValueError(f"feats must be [B, T, n_mels], got {tuple(feats.shape)}")
        x = subsample(self, feats, lengths)
        x = self.dropout(self.act(self.proj_norm(self.proj(x))))
        return self.rnn(x, lengths), lengths


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
