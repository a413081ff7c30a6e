"""Attackers on frame sequences: SpeechBrain x-vector (TDNN) and ECAPA-TDNN.

The encoder (``speechbrain.lobes.models.Xvector.Xvector``, Snyder et al. 2018,
"X-vectors: robust DNN embeddings for speaker recognition"; or
``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``, Desplanques et al. 2020)
maps ``[B, T, D]`` frames to one embedding per utterance; a linear layer over
the embedding is trained with cross-entropy over the attacker's speakers on
random ``crop``-frame windows (minibatch AdamW). Frames are standardised per
dimension with statistics of the attacker's training frames. Sizes are
deliberately small so the attacker trains in seconds on CPU; they are
parameters, and ``epochs`` controls strength vs time.
"""

from __future__ import annotations

from typing import List

import torch

from speechfl.attackers.base import SpeakerAttacker, check_labels, seeded
from speechfl.attackers.pooling import Standardizer, length_buckets, pad_batch, random_crops


class _Encoder(torch.nn.Module):
    """Uniform ``(x [B,T,D], lens [B]) -> [B, E]`` over the two SpeechBrain lobes."""

    def __init__(self, kind: str, d_in: int, channels: int, emb_dim: int):
        super().__init__()
        self.kind = kind
        if kind == "xvector":
            from speechbrain.lobes.models.Xvector import Xvector

            self.net = Xvector(
                in_channels=d_in,
                tdnn_blocks=5,
                tdnn_channels=[channels] * 4 + [3 * channels],
                tdnn_kernel_sizes=[5, 3, 3, 1, 1],
                tdnn_dilations=[1, 2, 3, 1, 1],
                lin_neurons=emb_dim,
            )
        elif kind == "ecapa":
            from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

            self.net = ECAPA_TDNN(
                input_size=d_in,
                lin_neurons=emb_dim,
                channels=[channels] * 4 + [3 * channels],
                attention_channels=max(8, channels // 4),
                se_channels=max(8, channels // 4),
                res2net_scale=4,
            )
        else:
            raise ValueError(f"unknown sequence encoder {kind!r}; valid: xvector, ecapa")

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        if self.kind == "xvector":
            out = self.net(x, lens=lens)
        else:
            out = self.net(x, lengths=lens)
        return out.squeeze(1)


class SequenceAttacker(SpeakerAttacker):
    """TDNN speaker embedding trained from scratch; embedding = the x-vector / ECAPA output."""

    def __init__(
        self,
        *,
        kind: str = "xvector",
        channels: int = 64,
        emb_dim: int = 128,
        epochs: int = 10,
        batch_size: int = 32,
        crop: int = 120,
        lr: float = 3e-3,
        weight_decay: float = 1e-3,
    ):
        if min(channels, emb_dim, epochs, batch_size, crop) < 1 or lr <= 0 or weight_decay < 0:
            raise ValueError(
                f"bad {kind} settings: channels={channels}, emb_dim={emb_dim}, epochs={epochs}, "
                f"batch_size={batch_size}, crop={crop}, lr={lr}, weight_decay={weight_decay}"
            )
        self.kind, self.channels, self.emb_dim = kind, channels, emb_dim
        self.epochs, self.batch_size, self.crop, self.lr, self.weight_decay = epochs, batch_size, crop, lr, weight_decay
        self.name = kind
        self.encoder: _Encoder | None = None

    def fit(self, frames: List[torch.Tensor], labels: torch.Tensor, n_classes: int, seed: int = 0):
        check_labels(len(frames), labels, n_classes)
        self.norm = Standardizer.fit_frames(frames)
        normed = [self.norm(f) for f in frames]
        gen = torch.Generator().manual_seed(seed)
        with seeded(seed):
            self.encoder = _Encoder(self.kind, normed[0].shape[1], self.channels, self.emb_dim)
            self.head = torch.nn.Linear(self.emb_dim, n_classes)
            params = list(self.encoder.parameters()) + list(self.head.parameters())
            opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
            steps_per_epoch = max(1, -(-len(normed) // self.batch_size))
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=self.epochs * steps_per_epoch)
            self.encoder.train()
            self.head.train()
            for _ in range(self.epochs):
                perm = torch.randperm(len(normed), generator=gen).tolist()
                for b in range(steps_per_epoch):
                    idx = perm[b * self.batch_size : (b + 1) * self.batch_size]
                    if len(idx) < 2:  # BatchNorm needs two examples
                        continue
                    x, lens = random_crops([normed[i] for i in idx], self.crop, gen)
                    loss = torch.nn.functional.cross_entropy(self.head(self.encoder(x, lens)), labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
        self.encoder.eval()
        self.head.eval()
        return self

    @torch.no_grad()
    def embed(self, frames: List[torch.Tensor]) -> torch.Tensor:
        if self.encoder is None:
            raise RuntimeError(f"{self.kind} attacker used before fit()")
        out = torch.empty(len(frames), self.emb_dim)
        normed = [self.norm(f) for f in frames]
        for idx in length_buckets(normed):
            x, lens = pad_batch([normed[i] for i in idx])
            out[idx] = self.encoder(x, lens)
        return out

    @torch.no_grad()
    def logits(self, frames: List[torch.Tensor]) -> torch.Tensor:
        return self.head(self.embed(frames))
