"""Gradient reversal layer and its coefficient schedule.

Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015
(DANN). The layer ``R_lambda`` is the identity in the forward pass and multiplies
the incoming gradient by ``-lambda`` in the backward pass::

    R_lambda(x) = x,        dR_lambda/dx = -lambda * I

Placed between the encoder and an adversary, the adversary minimises its loss
while the encoder receives the negated (scaled) gradient, i.e. it maximises
the adversary's loss: a min-max game in a single backward pass.
"""

from __future__ import annotations

import math

import torch

SCHEDULE_KINDS = ("constant", "dann", "linear")


class GradReverse(torch.autograd.Function):
    """Identity forward, ``-lambd * grad`` backward (no gradient for ``lambd``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, lambd: float) -> torch.Tensor:
        ctx.lambd = lambd
        # view_as: a new tensor node so the backward below is attached to it.
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return -ctx.lambd * grad_output, None


def grad_reverse(x: torch.Tensor, lambd: float) -> torch.Tensor:
    """Apply the gradient reversal layer ``R_lambd`` to ``x``.

    Parameters
    ----------
    x : torch.Tensor
        Any floating point tensor.
    lambd : float
        Non-negative reversal coefficient; 0 blocks the gradient entirely.
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"grad_reverse needs a floating point tensor, got {type(x).__name__}")
    lambd = float(lambd)
    if not math.isfinite(lambd) or lambd < 0:
        raise ValueError(f"grad_reverse lambda must be finite and >= 0, got {lambd}")
    return GradReverse.apply(x, lambd)


def dann_lambda(progress: float, lambda_max: float, gamma: float) -> float:
    """DANN schedule ``lambda(p) = lambda_max * (2 / (1 + exp(-gamma * p)) - 1)``.

    ``p`` in [0, 1] is training progress (Ganin et al. 2016, JMLR, Sec. 5.2.2,
    with ``gamma = 10``); lambda rises from 0 to ~lambda_max.
    """
    return lambda_max * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class LambdaSchedule:
    """Reversal coefficient as a function of the global training step.

    Parameters
    ----------
    kind : {"constant", "dann", "linear"}
        ``constant``: ``lambda_max`` at every step.
        ``dann``: :func:`dann_lambda` with ``p = min(step / total_steps, 1)``.
        ``linear``: warm-up ``lambda_max * min(step / warmup_steps, 1)``.
    total_steps : int
        Steps in the whole training run (progress denominator for ``dann``).
    lambda_max : float
        Final (or constant) coefficient, >= 0.
    gamma : float
        Steepness of the ``dann`` schedule (only valid for ``dann``).
    warmup_steps : int, optional
        Length of the ``linear`` ramp (only valid for ``linear``); default ``total_steps``.
    """

    def __init__(
        self,
        kind: str = "dann",
        *,
        total_steps: int,
        lambda_max: float = 1.0,
        gamma: float | None = None,
        warmup_steps: int | None = None,
    ):
        if kind not in SCHEDULE_KINDS:
            raise ValueError(f"unknown lambda schedule kind {kind!r}; valid kinds: {', '.join(SCHEDULE_KINDS)}")
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        lambda_max = float(lambda_max)
        if not math.isfinite(lambda_max) or lambda_max < 0:
            raise ValueError(f"lambda_max must be finite and >= 0, got {lambda_max}")
        if gamma is not None and kind != "dann":
            raise ValueError(f"gamma is a parameter of the 'dann' schedule, not of {kind!r}")
        if warmup_steps is not None and kind != "linear":
            raise ValueError(f"warmup_steps is a parameter of the 'linear' schedule, not of {kind!r}")
        if kind == "dann":
            gamma = 10.0 if gamma is None else float(gamma)
            if not math.isfinite(gamma) or gamma <= 0:
                raise ValueError(f"gamma must be finite and > 0, got {gamma}")
        if kind == "linear":
            warmup_steps = total_steps if warmup_steps is None else warmup_steps
            if not isinstance(warmup_steps, int) or warmup_steps < 1:
                raise ValueError(f"warmup_steps must be a positive int, got {warmup_steps!r}")
        self.kind = kind
        self.total_steps = total_steps
        self.lambda_max = lambda_max
        self.gamma = gamma
        self.warmup_steps = warmup_steps

    @classmethod
    def from_spec(cls, spec: dict, *, total_steps: int) -> "LambdaSchedule":
        """Build from an hparams mapping ``{"kind": ..., **params}`` (unknown keys raise)."""
        if not isinstance(spec, dict):
            raise TypeError(f"lambda schedule spec must be a mapping, got {type(spec).__name__}")
        allowed = {"kind", "lambda_max", "gamma", "warmup_steps"}
        unknown = sorted(set(spec) - allowed)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown} in lambda schedule; valid keys: {sorted(allowed)}")
        return cls(total_steps=total_steps, **spec)

    def __call__(self, step: int) -> float:
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"step must be a non-negative int, got {step!r}")
        if self.kind == "constant":
            return self.lambda_max
        if self.kind == "dann":
            return dann_lambda(min(step / self.total_steps, 1.0), self.lambda_max, self.gamma)
        return self.lambda_max * min(step / self.warmup_steps, 1.0)

    def __repr__(self) -> str:
        extra = f", gamma={self.gamma}" if self.kind == "dann" else ""
        extra += f", warmup_steps={self.warmup_steps}" if self.kind == "linear" else ""
        return f"LambdaSchedule({self.kind!r}, total_steps={self.total_steps}, lambda_max={self.lambda_max}{extra})"
