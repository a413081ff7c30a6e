"""Adversary heads behind gradient reversal: speaker- or gender-identity removal.

An adversary head pools the encoder representation over time and classifies the
utterance (speaker or gender). :class:`AdversarialObjective` puts K heads of
different architectures and initialisations behind one gradient reversal layer
(:mod:`speechfl.models.grl`)::

    L_adv = weight * sum_k CE(head_k(R_lambda(reps)), y)

The heads minimise ``L_adv``; the encoder receives ``-lambda * dL_adv/dreps`` and so
learns representations the heads cannot classify (DANN, Ganin & Lempitsky 2015,
used for speaker-invariant ASR by Meng et al., "Speaker-Invariant Training via
Adversarial Learning", ICASSP 2018). Several heads, each re-initialised
periodically at staggered steps, keep the encoder from overfitting one adversary
(an ensemble of adversaries as in Elazar & Goldberg, EMNLP 2018, who show a single
adversary's failure is no evidence the attribute is removed).

Federated use: the heads are ordinary parameters of the model. With one speaker
per client, ``n_classes`` spans all training speakers (global speaker index as
label) and the heads are averaged like the rest of the model; with several
speakers per client the engine may keep parameters under this module local.
Re-initialisation is a deterministic function of ``(seed, head, step)`` so every
client that reaches the same global step resets a head to the same weights.

Beyond reversal (issue 19): ``objective="confusion"`` trains the encoder toward the heads' uniform
output (Roy & Boddeti 2019, :mod:`speechfl.privacy.confusion`), ``warmup_steps`` keeps lambda at 0
while the ASR warms up, the ``xvector`` head adds frame-level TDNN layers before statistics pooling,
and every forward reports the heads' cross-entropy next to the uniform guess's ``log C``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from speechfl.models.grl import LambdaSchedule, grad_reverse
from speechfl.privacy.confusion import OBJECTIVES, confusion_loss, frozen_call, uniform_ce
from speechfl.registry import Registry, build_from_spec

POOLINGS = ("mean", "meanstd", "attentive")
TARGETS = ("speaker", "gender")
_STD_EPS = 1e-5


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Bool mask [B, T] of valid frames from relative lengths in (0, 1] (SpeechBrain convention)."""
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D [B], got shape {tuple(lengths.shape)}")
    if bool((lengths <= 0).any()) or bool((lengths > 1.0 + 1e-6).any()):
        raise ValueError("relative lengths must lie in (0, 1]")
    n_valid = torch.round(lengths * max_len).clamp(min=1, max=max_len)
    return torch.arange(max_len, device=lengths.device)[None, :] < n_valid[:, None]


def masked_mean_std(reps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over valid frames: [B, T, H] -> ([B, H], [B, H]).

    ``std = sqrt(max(E[x^2] - E[x]^2, eps))`` (the floor keeps the gradient finite).
    """
    weights = mask.to(reps.dtype).unsqueeze(-1)
    count = weights.sum(dim=1)
    mean = (reps * weights).sum(dim=1) / count
    var = ((reps - mean.unsqueeze(1)) ** 2 * weights).sum(dim=1) / count
    return mean, torch.sqrt(var.clamp(min=_STD_EPS))


def attentive_mean_std(reps: torch.Tensor, mask: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Attentive statistics pooling (Okabe et al., Interspeech 2018): [B, T, H] -> [B, 2H].

    ``a = softmax_t(scores)`` over valid frames, ``mu = sum_t a_t h_t``,
    ``sigma = sqrt(sum_t a_t h_t^2 - mu^2)``; returns ``[mu, sigma]``.
    """
    alpha = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=1).unsqueeze(-1)
    mean = (alpha * reps).sum(dim=1)
    var = (alpha * reps * reps).sum(dim=1) - mean * mean
    return torch.cat([mean, torch.sqrt(var.clamp(min=_STD_EPS))], dim=-1)


def _derived_seed(*parts: Any) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class AdversaryHead(nn.Module):
    """Utterance-level classifier: pooling over time, then an MLP.

    Parameters
    ----------
    input_dim, n_classes : int
    pooling : {"mean", "meanstd", "attentive"}
    hidden : sequence of int
        Hidden layer sizes (empty: a linear classifier on the pooled vector).
    layer_norm : bool
        LayerNorm after each hidden layer (no BatchNorm: Opacus-compatible).
    attention_dim : int
        Width of the attention scorer (``attentive`` only).
    frame_layers : sequence of (width, kernel, dilation)
        Frame-level TDNN layers (1-D convolutions over time + ReLU) before the pooling, as in the
        x-vector (Snyder et al., ICASSP 2018); empty: pool the representation directly.
    """

    def __init__(self, input_dim: int, n_classes: int, *, pooling: str = "meanstd",
                 hidden: Sequence[int] = (256,), layer_norm: bool = False, attention_dim: int = 128,
                 frame_layers: Sequence[Sequence[int]] = ()):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; valid poolings: {', '.join(POOLINGS)}")
        if input_dim < 1 or n_classes < 2:
            raise ValueError(f"need input_dim >= 1 and n_classes >= 2, got {input_dim}, {n_classes}")
        self.pooling = pooling
        frames: list[nn.Module] = []
        for spec in frame_layers:
            if len(spec) != 3 or min(int(v) for v in spec) < 1 or int(spec[1]) % 2 == 0:
                raise ValueError(f"frame layer must be (width, odd kernel, dilation) >= 1, got {spec!r}")
            w, k, d = (int(v) for v in spec)
            frames += [nn.Conv1d(input_dim, w, k, dilation=d, padding=d * (k - 1) // 2), nn.ReLU()]
            input_dim = w
        self.frame = nn.Sequential(*frames) if frames else None
        if pooling == "attentive":
            self.attention = nn.Sequential(nn.Linear(input_dim, attention_dim), nn.Tanh(),
                                           nn.Linear(attention_dim, 1))
        layers: list[nn.Module] = []
        width = input_dim if pooling == "mean" else 2 * input_dim
        for h in hidden:
            layers.append(nn.Linear(width, int(h)))
            if layer_norm:
                layers.append(nn.LayerNorm(int(h)))
            layers.append(nn.ReLU())
            width = int(h)
        layers.append(nn.Linear(width, n_classes))
        self.classifier = nn.Sequential(*layers)

    def pool(self, reps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[B, T, H] -> pooled [B, H] (mean) or [B, 2H] (after the frame layers, if any)."""
        if self.frame is not None:  # padded frames zeroed so they do not leak into valid ones' context
            reps = self.frame((reps * mask.unsqueeze(-1).to(reps.dtype)).transpose(1, 2)).transpose(1, 2)
        if self.pooling == "attentive":
            return attentive_mean_std(reps, mask, self.attention(reps).squeeze(-1))
        mean, std = masked_mean_std(reps, mask)
        return mean if self.pooling == "mean" else torch.cat([mean, std], dim=-1)

    def logits(self, pooled: torch.Tensor, labels: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Pooled [B, P] -> logits [B, n_classes] (``labels`` is used by heads that mask by class)."""
        return self.classifier(pooled)

    def forward(self, reps: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.logits(self.pool(reps, length_mask(lengths, reps.shape[1])))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Re-draw every parameter in place (same tensors, names, shapes) from a CPU ``generator``.

        Linear: PyTorch's default (Kaiming-uniform weight, a=sqrt(5); bias U(+-1/sqrt(fan_in)));
        LayerNorm: weight 1, bias 0. Values are drawn on the CPU, so they do not depend on the device.
        """
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):  # Conv1d: the same rule with fan_in = C_in * k
                weight = torch.empty(module.weight.shape)
                nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
                bound = 1.0 / math.sqrt(weight[0].numel())
                module.weight.copy_(weight)
                if module.bias is not None:
                    module.bias.copy_(torch.empty(module.bias.shape).uniform_(-bound, bound, generator=generator))
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()


HEADS = Registry("adversary head")


@HEADS.register("linear")
def linear_head(input_dim: int, n_classes: int, pooling: str = "mean") -> AdversaryHead:
    return AdversaryHead(input_dim, n_classes, pooling=pooling, hidden=())


@HEADS.register("mlp")
def mlp_head(input_dim: int, n_classes: int, hidden: int = 256, pooling: str = "meanstd") -> AdversaryHead:
    return AdversaryHead(input_dim, n_classes, pooling=pooling, hidden=(hidden,))


@HEADS.register("mlp_deep")
def mlp_deep_head(input_dim: int, n_classes: int, hidden: Sequence[int] = (512, 256),
                  pooling: str = "meanstd") -> AdversaryHead:
    return AdversaryHead(input_dim, n_classes, pooling=pooling, hidden=tuple(hidden), layer_norm=True)


@HEADS.register("attentive")
def attentive_head(input_dim: int, n_classes: int, hidden: int = 256, attention_dim: int = 128) -> AdversaryHead:
    return AdversaryHead(input_dim, n_classes, pooling="attentive", hidden=(hidden,), attention_dim=attention_dim)


@HEADS.register("xvector")
def xvector_head(input_dim: int, n_classes: int, width: int = 128, hidden: int = 128,
                 pooling: str = "meanstd") -> AdversaryHead:
    """Frame-level TDNN (contexts 5, 3 dilated 2, 3 dilated 3, 1) + statistics pooling + MLP."""
    w = int(width)
    return AdversaryHead(input_dim, n_classes, pooling=pooling, hidden=(hidden,),
                         frame_layers=((w, 5, 1), (w, 3, 2), (w, 3, 3), (w, 1, 1)))


def reinit_due(step: int, reinit_every: int | None, n_heads: int) -> tuple[int, ...]:
    """Heads re-initialised at ``step``: head i at every ``step > 0`` with
    ``step % reinit_every == (i * reinit_every) // n_heads`` (staggered evenly)."""
    if reinit_every is None or step <= 0:
        return ()
    return tuple(i for i in range(n_heads) if step % reinit_every == (i * reinit_every) // n_heads)


@dataclass
class AdversaryOutput:
    """Result of one adversarial forward pass (fixed shape).

    ``loss``: scalar to add to the ASR loss; ``accuracy``: mean over heads;
    ``per_head_accuracy``: one float per head; ``lambd``: reversal coefficient used;
    ``ce``: the heads' mean (unweighted) cross-entropy; ``uniform_ce``: ``log n_classes``, the
    uniform guess's (``ce > uniform_ce``: the encoder fools the heads rather than hiding);
    ``reinitialised``: indices of the heads reset at this step (usually empty).
    """

    loss: torch.Tensor
    accuracy: float
    per_head_accuracy: list[float]
    lambd: float
    ce: float
    uniform_ce: float
    reinitialised: tuple[int, ...] = field(default_factory=tuple)


class AdversarialObjective(nn.Module):
    """K adversary heads behind one gradient reversal layer (see module docstring).

    Parameters
    ----------
    input_dim : int
        Encoder output size H.
    n_classes : int
        Number of speakers (``target="speaker"``) or 2 (``target="gender"``).
    heads : sequence of head specs
        Names from :data:`HEADS` or mappings ``{"name": ..., **params}``.
    target : {"speaker", "gender"}
    weight : float
        Multiplies the summed cross-entropies.
    schedule : dict, optional
        :meth:`LambdaSchedule.from_spec` mapping; default ``{"kind": "dann"}``.
    total_steps : int
        Global training steps (for the schedule).
    reinit_every : int, optional
        Period of each head's re-initialisation (staggered, see :func:`reinit_due`);
        ``None`` disables it.
    seed : int
        Head k's initial weights come from ``(seed, k, 0)``, its reset at step s from ``(seed, k, s)``.
    objective : {"reversal", "confusion"}
        ``reversal``: the encoder gets ``-lambda * dL_adv/dreps`` (DANN). ``confusion``: the heads
        train on detached representations, the encoder minimises ``weight * lambda * sum_k
        L_conf(head_k)``, the cross-entropy to the uniform output (Roy & Boddeti 2019, see
        :mod:`speechfl.privacy.confusion`).
    warmup_steps : int
        ASR-only warm-up: lambda is 0 for ``step < warmup_steps`` (the heads still learn), then
        follows the schedule from ``step - warmup_steps``.
    """

    def __init__(self, input_dim: int, n_classes: int, *, heads: Sequence[Any] = ("mlp",),
                 target: str = "speaker", weight: float = 1.0, schedule: dict | None = None,
                 total_steps: int, reinit_every: int | None = None, seed: int = 0,
                 objective: str = "reversal", warmup_steps: int = 0):
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown adversary objective {objective!r}; valid objectives: {', '.join(OBJECTIVES)}")
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be an int >= 0, got {warmup_steps!r}")
        self.objective, self.warmup_steps = objective, warmup_steps
        if target not in TARGETS:
            raise ValueError(f"unknown adversary target {target!r}; valid targets: {', '.join(TARGETS)}")
        if target == "gender" and n_classes != 2:
            raise ValueError(f"a gender adversary has 2 classes, got n_classes={n_classes}")
        if isinstance(heads, (str, dict)) or len(heads) == 0:
            raise ValueError(f"heads must be a non-empty list of head specs, got {heads!r}")
        if not math.isfinite(float(weight)) or weight < 0:
            raise ValueError(f"weight must be finite and >= 0, got {weight}")
        if reinit_every is not None and (not isinstance(reinit_every, int) or reinit_every < 1):
            raise ValueError(f"reinit_every must be a positive int or None, got {reinit_every!r}")
        self.target, self.n_classes, self.loss_weight = target, n_classes, float(weight)
        self.reinit_every, self.seed = reinit_every, seed
        self.schedule = LambdaSchedule.from_spec(dict(schedule or {"kind": "dann"}), total_steps=total_steps)
        built = []
        for spec in heads:
            spec = {"name": spec} if isinstance(spec, str) else dict(spec)
            built.append(build_from_spec(HEADS, {**spec, "input_dim": input_dim, "n_classes": n_classes}))
        self.heads = nn.ModuleList(built)
        self._last_reset = [0] * len(self.heads)
        for i in range(len(self.heads)):
            self._reset_head(i, 0)

    def _reset_head(self, index: int, step: int) -> None:
        self.heads[index].reset_parameters(torch.Generator().manual_seed(_derived_seed(self.seed, index, step)))
        self._last_reset[index] = step

    def head_logits(self, reps: torch.Tensor, lengths: torch.Tensor,
                    labels: Optional[torch.Tensor] = None) -> list[torch.Tensor]:
        """Logits [B, n_classes] of every head on ``reps`` (no gradient reversal).

        Parameter-free poolings are computed once and shared across heads. ``labels`` reach
        heads that mask classes by label (:class:`speechfl.privacy.fedaws.ClassEmbeddingHead`).
        """
        if reps.dim() != 3:
            raise ValueError(f"reps must be [B, T, H], got shape {tuple(reps.shape)}")
        mask = length_mask(lengths, reps.shape[1])
        stats = None
        out = []
        for head in self.heads:
            if head.pooling == "attentive" or head.frame is not None:
                pooled = head.pool(reps, mask)
            else:
                stats = stats if stats is not None else masked_mean_std(reps, mask)
                pooled = stats[0] if head.pooling == "mean" else torch.cat(stats, dim=-1)
            out.append(head.logits(pooled, labels))
        return out

    def lambda_at(self, step: int) -> float:
        """Coefficient at ``step``: 0 during the warm-up, then the schedule from ``step - warmup_steps``."""
        return 0.0 if step < self.warmup_steps else self.schedule(step - self.warmup_steps)

    def forward(self, reps: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor,
                step: int) -> AdversaryOutput:
        if labels.dim() != 1 or labels.shape[0] != reps.shape[0] or labels.dtype != torch.long:
            raise ValueError(f"labels must be int64 [B={reps.shape[0]}], got {labels.dtype} {tuple(labels.shape)}")
        if bool((labels < 0).any()) or bool((labels >= self.n_classes).any()):
            raise ValueError(f"{self.target} labels must lie in [0, {self.n_classes})")
        lambd = self.lambda_at(step)
        reset: tuple[int, ...] = ()
        if self.training:
            reset = tuple(i for i in reinit_due(step, self.reinit_every, len(self.heads))
                          if self._last_reset[i] != step)
            for i in reset:
                self._reset_head(i, step)
        if self.objective == "reversal":
            logits = self.head_logits(grad_reverse(reps, lambd), lengths, labels)
            ces = [F.cross_entropy(lg, labels) for lg in logits]
            loss = self.loss_weight * sum(ces)
        else:  # heads learn on sg(reps); the encoder's term runs the heads with detached parameters
            logits = self.head_logits(reps.detach(), lengths, labels)
            ces = [F.cross_entropy(lg, labels) for lg in logits]
            loss = self.loss_weight * sum(ces)
            if lambd > 0 and reps.requires_grad:
                enc_logits = frozen_call(self, "head_logits", reps, lengths, labels)
                loss = loss + self.loss_weight * lambd * sum(confusion_loss(lg) for lg in enc_logits)
        with torch.no_grad():
            accs = [float((lg.argmax(dim=-1) == labels).float().mean()) for lg in logits]
        return AdversaryOutput(loss=loss, accuracy=sum(accs) / len(accs), per_head_accuracy=accs,
                               lambd=lambd, ce=float(sum(c.detach() for c in ces)) / len(ces),
                               uniform_ce=uniform_ce(self.n_classes), reinitialised=reset)

    def clear_optimizer_state(self, optimizer: torch.optim.Optimizer, head_indices: Sequence[int]) -> None:
        """Drop optimizer state (momentum, Adam moments) of re-initialised heads' parameters."""
        for i in head_indices:
            for p in self.heads[i].parameters():
                optimizer.state.pop(p, None)


# The class-embedding head (federated N-way head with real negatives) lives with its FedAwS server
# step; importing it here registers it whenever HEADS exists, whatever was imported first.
from speechfl.privacy import fedaws as _fedaws  # noqa: E402,F401
