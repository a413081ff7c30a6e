"""Privacy accounting: thin wrappers over Opacus' accountants (history in, epsilon out).

A *history* is Opacus' own format: a list of ``(noise_multiplier, sample_rate,
steps)`` triples, one per run of identical steps of the subsampled Gaussian
mechanism. The RDP accountant (Mironov, "Renyi Differential Privacy", CSF 2017;
Mironov, Talwar & Zhang 2019 for the subsampled Gaussian) composes the RDP of
every step at orders ``alpha`` and converts to ``(epsilon, delta)``::

    eps(delta) = min_alpha [ sum_steps RDP_alpha(q, sigma) + conversion(alpha, delta) ]

We never re-implement that analysis: every number comes from Opacus.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

from opacus.accountants import IAccountant, RDPAccountant, create_accountant
from opacus.accountants.registry import _ACCOUNTANTS

History = list[tuple[float, float, int]]


def accountant_names() -> list[str]:
    """Accounting mechanisms Opacus knows ("rdp", "gdp", "prv")."""
    return sorted(_ACCOUNTANTS)


def make_accountant(mechanism: str = "rdp") -> IAccountant:
    """A fresh Opacus accountant; an unknown name raises listing the valid ones."""
    if mechanism not in _ACCOUNTANTS:
        raise ValueError(f"unknown accountant {mechanism!r}; valid accountants: {', '.join(accountant_names())}")
    return create_accountant(mechanism)


def check_delta(delta: float) -> float:
    """Return ``delta`` as float, or raise unless 0 < delta < 1."""
    delta = float(delta)
    if not (0.0 < delta < 1.0):
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    return delta


def check_history(history: Iterable[Sequence]) -> History:
    """Validate and normalise a history (lists from JSON become tuples)."""
    out: History = []
    for entry in history:
        if len(entry) != 3:
            raise ValueError(f"history entries are (noise_multiplier, sample_rate, steps), got {entry!r}")
        sigma, q, steps = float(entry[0]), float(entry[1]), entry[2]
        if not math.isfinite(sigma) or sigma < 0:
            raise ValueError(f"noise multiplier must be finite and >= 0, got {sigma}")
        if not (0.0 < q <= 1.0):
            raise ValueError(f"sample rate must lie in (0, 1], got {q}")
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        out.append((sigma, q, int(steps)))
    return out


def accountant_from_history(history: Iterable[Sequence], mechanism: str = "rdp") -> IAccountant:
    """An Opacus accountant whose history is ``history``."""
    accountant = make_accountant(mechanism)
    accountant.history = check_history(history)
    return accountant


def epsilon_from_history(history: Iterable[Sequence], delta: float, mechanism: str = "rdp") -> float:
    """``epsilon`` at ``delta`` after the steps in ``history`` (0 for an empty history).

    A noise multiplier of 0 means no privacy: epsilon is ``inf``.
    """
    delta = check_delta(delta)
    history = check_history(history)
    if not history:
        return 0.0
    if any(sigma == 0 for sigma, _, _ in history):
        return math.inf
    return float(accountant_from_history(history, mechanism).get_epsilon(delta=delta))


def rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """``epsilon`` of ``steps`` identical subsampled Gaussian steps under Opacus' RDP accountant."""
    return epsilon_from_history([(noise_multiplier, sample_rate, steps)], delta, "rdp")


__all__ = [
    "History",
    "RDPAccountant",
    "accountant_from_history",
    "accountant_names",
    "check_delta",
    "check_history",
    "epsilon_from_history",
    "make_accountant",
    "rdp_epsilon",
]
