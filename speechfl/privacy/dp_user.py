"""User-level differential privacy at the server: DP-FedAvg.

McMahan, Ramage, Talwar & Zhang, "Learning Differentially Private Recurrent
Language Models", ICLR 2018. Each round, with clients sampled independently with
probability ``q`` (``m = qN`` expected), every client update is clipped to L2 norm
``C`` and the server releases the fixed-denominator estimator (their ``f~_f`` with
unit weights)::

    Delta = ( sum_i Delta_i * min(1, C / ||Delta_i||)  +  N(0, (z C)^2 I) ) / m

Adding or removing one user changes the sum by at most ``C``, so one round is the
sampled Gaussian mechanism with noise multiplier ``z`` and rate ``q``; rounds are
composed with Opacus' RDP accountant (:mod:`speechfl.privacy.accounting`).

Adaptive clipping (Andrew, Thakkar, McMahan & Ramaswamy, "Differentially Private
Learning with Adaptive Clipping", NeurIPS 2021): clients also report
``b_i = 1[||Delta_i|| <= C]``; the server updates ``C <- C * exp(-eta (b~ - gamma))``
with ``b~ = (sum_i (b_i - 1/2) + N(0, sigma_b^2)) / m + 1/2``, steering ``C`` to the
``gamma``-quantile of update norms. To keep the same privacy as noise multiplier
``z`` the update noise becomes ``z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)``
(their Theorem 1), so the accountant still records ``z``.
"""

from __future__ import annotations

import math

import torch

from speechfl.privacy.accounting import check_history, epsilon_from_history, make_accountant

ADAPTIVE_KEYS = ("target_quantile", "lr", "count_noise_multiplier")


def clip_updates(updates: torch.Tensor, clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale each row to L2 norm at most ``clip``: [n, d] -> (clipped [n, d], norms [n]).

    ``clipped_i = u_i * min(1, clip / ||u_i||)``; ``norms`` are the norms before clipping.
    """
    if not isinstance(updates, torch.Tensor) or updates.dim() != 2 or not updates.is_floating_point():
        raise ValueError("updates must be a float tensor [n_clients, d]")
    clip = float(clip)
    if not math.isfinite(clip) or clip <= 0:
        raise ValueError(f"clip must be finite and > 0, got {clip}")
    norms = torch.linalg.vector_norm(updates, dim=1)
    factor = torch.where(norms > clip, clip / norms.clamp(min=torch.finfo(norms.dtype).tiny), torch.ones_like(norms))
    return updates * factor[:, None], norms


def adaptive_noise_multiplier(noise_multiplier: float, count_noise_multiplier: float) -> float:
    """Update noise ``z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)`` keeping overall noise ``z`` (Andrew et al.)."""
    if noise_multiplier == 0:
        return 0.0
    if 2 * count_noise_multiplier <= noise_multiplier:
        raise ValueError(
            f"adaptive clipping needs count_noise_multiplier > noise_multiplier / 2 "
            f"({count_noise_multiplier} <= {noise_multiplier / 2}): the norm-count query would use up the budget")
    return (noise_multiplier ** -2 - (2 * count_noise_multiplier) ** -2) ** -0.5


class DPFedAvg:
    """Server-side user-level DP for federated averaging (see module docstring).

    Parameters
    ----------
    clip : float
        L2 bound ``C`` on each client update (initial value when adaptive).
    noise_multiplier : float
        ``z``: noise standard deviation is ``z * C`` on the sum.
    expected_clients : float
        ``m = qN``, the fixed denominator.
    sample_rate : float
        Client sampling probability ``q`` in (0, 1] used by the accountant.
    seed : int
        Seed of the noise generator.
    adaptive : dict, optional
        ``{"target_quantile": 0.5, "lr": 0.2, "count_noise_multiplier": m / 20}``
        (defaults from Andrew et al.); ``None`` keeps ``C`` fixed.
    """

    def __init__(self, *, clip: float, noise_multiplier: float, expected_clients: float,
                 sample_rate: float, seed: int, adaptive: dict | None = None):
        if not math.isfinite(float(clip)) or clip <= 0:
            raise ValueError(f"clip must be finite and > 0, got {clip}")
        if not math.isfinite(float(noise_multiplier)) or noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be finite and >= 0, got {noise_multiplier}")
        if not math.isfinite(float(expected_clients)) or expected_clients <= 0:
            raise ValueError(f"expected_clients must be > 0, got {expected_clients}")
        if not (0.0 < float(sample_rate) <= 1.0):
            raise ValueError(f"sample_rate must lie in (0, 1], got {sample_rate}")
        self.clip, self.noise_multiplier = float(clip), float(noise_multiplier)
        self.expected_clients, self.sample_rate = float(expected_clients), float(sample_rate)
        self.adaptive = None
        self.update_noise_multiplier = self.noise_multiplier
        if adaptive is not None:
            unknown = sorted(set(adaptive) - set(ADAPTIVE_KEYS))
            if unknown:
                raise ValueError(f"unknown adaptive clipping key(s) {unknown}; valid keys: {list(ADAPTIVE_KEYS)}")
            cfg = {"target_quantile": 0.5, "lr": 0.2, "count_noise_multiplier": self.expected_clients / 20}
            cfg.update({k: float(v) for k, v in adaptive.items()})
            if not (0.0 <= cfg["target_quantile"] <= 1.0) or cfg["lr"] <= 0 or cfg["count_noise_multiplier"] < 0:
                raise ValueError(f"bad adaptive clipping config {cfg}: need quantile in [0,1], lr > 0, noise >= 0")
            self.update_noise_multiplier = adaptive_noise_multiplier(self.noise_multiplier,
                                                                     cfg["count_noise_multiplier"])
            self.adaptive = cfg
        self._accountant = make_accountant("rdp")
        self._generator = torch.Generator().manual_seed(int(seed))
        self._last_round = -1
        self.last_norms = torch.empty(0)
        self.last_clip = self.clip

    def _gaussian(self, shape: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.randn(shape, generator=self._generator, dtype=torch.float32) * std

    def _check_round(self, round: int) -> None:
        if isinstance(round, bool) or not isinstance(round, int) or round < 0:
            raise ValueError(f"round must be a non-negative int, got {round!r}")
        if round < self._last_round:
            raise ValueError(f"round {round} comes after round {self._last_round}: rounds cannot go back")

    def aggregate(self, updates: torch.Tensor, round: int) -> torch.Tensor:
        """Clip, sum, add noise, divide by ``expected_clients``; one accountant step.

        ``updates`` is [n, d] (n may be 0 under Poisson sampling). Every call is a
        release and is accounted, including a re-run of the same round.
        """
        self._check_round(round)
        clipped, norms = clip_updates(updates, self.clip)
        out = self._release(clipped.sum(dim=0), round)
        self.last_norms = norms.detach().cpu()
        if self.adaptive is not None:
            # Centred bits b_i - 1/2 have sensitivity 1/2, which gives the (2 sigma_b) above.
            centred = float((norms <= self.last_clip).sum()) - 0.5 * norms.shape[0]
            noisy = centred + float(self._gaussian((1,), self.adaptive["count_noise_multiplier"]))
            frac = noisy / self.expected_clients + 0.5
            self.clip = self.clip * math.exp(-self.adaptive["lr"] * (frac - self.adaptive["target_quantile"]))
        return out

    def aggregate_clipped_sum(self, clipped_sum: torch.Tensor, round: int) -> torch.Tensor:
        """Noise and normalise a sum of updates the clients clipped to ``self.clip`` themselves.

        For secure aggregation, where the server only sees the sum. Not available with
        adaptive clipping (the per-client norm bits would need their own secure sum).
        """
        if self.adaptive is not None:
            raise ValueError("adaptive clipping needs each client's clipped-norm bit; use aggregate(), "
                             "or fixed clipping with secure aggregation")
        if clipped_sum.dim() != 1 or not clipped_sum.is_floating_point():
            raise ValueError(f"clipped_sum must be a float vector [d], got {tuple(clipped_sum.shape)}")
        self._check_round(round)
        self.last_norms = torch.empty(0)
        return self._release(clipped_sum, round)

    def _release(self, total: torch.Tensor, round: int) -> torch.Tensor:
        self.last_clip = self.clip
        std = self.update_noise_multiplier * self.clip
        noise = self._gaussian(tuple(total.shape), std).to(total.device, total.dtype)
        self._accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate)
        self._last_round = round
        return (total + noise) / self.expected_clients

    @property
    def history(self) -> list[tuple[float, float, int]]:
        """Opacus accountant history ``[(z, q, rounds), ...]``."""
        return list(self._accountant.history)

    def epsilon(self, delta: float) -> float:
        """User-level ``epsilon`` at ``delta`` over all rounds released so far."""
        return epsilon_from_history(self._accountant.history, delta, "rdp")

    def state_dict(self) -> dict:
        return {"history": [list(h) for h in self._accountant.history], "clip": self.clip,
                "last_clip": self.last_clip, "last_round": self._last_round,
                "generator": self._generator.get_state()}

    def load_state_dict(self, d: dict) -> None:
        missing = {"history", "clip", "last_clip", "last_round", "generator"} - set(d)
        if missing:
            raise ValueError(f"DPFedAvg state lacks keys {sorted(missing)}")
        self._accountant.history = check_history(d["history"])
        self.clip, self.last_clip, self._last_round = float(d["clip"]), float(d["last_clip"]), int(d["last_round"])
        self._generator.set_state(d["generator"])
