"""Secure aggregation, simulated with real masks (Bonawitz et al., CCS 2017).

Bonawitz, Ivanov, Kreuter, Marcedone, McMahan, Patel, Ramage, Segal & Seth,
"Practical Secure Aggregation for Privacy-Preserving Machine Learning". Client
``u`` encodes its update in fixed point, ``x_u = round(2^s * delta_u) mod 2^k``, and
sends the double-masked vector::

    y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)   (mod 2^k)

where ``s_uv = s_vu`` is a seed shared by each pair (agreed by Diffie-Hellman in the
protocol) and ``b_u`` is a private self-mask seed. Pairwise masks cancel in the
sum over all participants. If client ``v`` drops out after the masks were fixed,
the survivors reveal shares of ``v``'s key so the server can recompute and remove
every ``PRG(s_uv)`` left in the survivors' vectors; for each survivor the server
learns ``b_u`` (never ``s_uv`` of a survivor pair) and removes ``PRG(b_u)``. The
server thus learns only ``sum_{u in survivors} delta_u``.

Simulation: seeds are derived from ``(seed, round, ids)`` and "revealed" by
re-deriving them; Shamir sharing and key agreement are not run. Below
``min_survivors`` the protocol aborts and the round must be re-run. The PRG is
PyTorch's CPU generator (a stand-in for AES-CTR: fine for experiments, not for
deployment). ``k <= 62`` so that every modular addition fits in int64 without
relying on signed overflow.
"""

from __future__ import annotations

import hashlib
import json
from typing import Sequence

import torch


class SecAggAborted(ValueError):
    """Too few survivors to reconstruct the masks: the round must be re-run."""


class SecAggUnencodable(ValueError):
    """A client's vector cannot enter the masked ring (non-finite, or so large that the sum could wrap).

    Data-dependent, so the engines treat such a client as dropped out (its masks are
    recovered), never as a reason to abort the run.
    """


def encode_fixed(x: torch.Tensor, scale_bits: int, modulus_bits: int) -> torch.Tensor:
    """``round(x * 2^scale_bits) mod 2^modulus_bits`` as int64 in [0, 2^k)."""
    q = torch.round(x.to(torch.float64) * 2.0 ** scale_bits).to(torch.int64)
    return torch.remainder(q, 2 ** modulus_bits)


def decode_fixed(v: torch.Tensor, scale_bits: int, modulus_bits: int) -> torch.Tensor:
    """Inverse of :func:`encode_fixed` (two's complement in ``k`` bits) as float32."""
    half, mod = 2 ** (modulus_bits - 1), 2 ** modulus_bits
    signed = torch.where(v >= half, v - mod, v)
    return (signed.to(torch.float64) / 2.0 ** scale_bits).to(torch.float32)


def prg(seed: int, dim: int, modulus_bits: int) -> torch.Tensor:
    """``dim`` uniform int64 values in [0, 2^k) from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2 ** modulus_bits, (dim,), generator=gen, dtype=torch.int64)


def _derive(*parts) -> int:
    digest = hashlib.sha256(json.dumps(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class SecureAggregation:
    """Pairwise-masked summation with dropout recovery (see module docstring).

    Parameters
    ----------
    seed : int
        Root of every simulated key.
    scale_bits : int
        Fixed-point fraction bits ``s`` (resolution ``2^-s``).
    modulus_bits : int
        Ring size ``2^k``, ``k <= 62``; the sum must satisfy ``|sum| < 2^(k-1-s)``.
    min_survivors : int
        Protocol threshold ``t`` (>= 2): fewer surviving senders aborts the round.
    dropout : float
        Simulated dropout rate in [0, 1): each participant independently fails to send
        its masked vector (after masking) with this probability, drawn from
        ``(seed, round, client)`` (:meth:`drops_out`), so the recovery path of
        :meth:`unmask_sum` runs as in a deployment.
    """

    def __init__(self, *, seed: int, scale_bits: int = 24, modulus_bits: int = 32, min_survivors: int = 2,
                 dropout: float = 0.0):
        if not (8 <= modulus_bits <= 62):
            raise ValueError(f"modulus_bits must lie in [8, 62] (int64 arithmetic), got {modulus_bits}")
        if not (0 <= scale_bits <= modulus_bits - 2):
            raise ValueError(f"scale_bits must lie in [0, modulus_bits - 2], got {scale_bits}")
        if min_survivors < 2:
            raise ValueError(f"min_survivors must be >= 2 (one survivor's sum is its own update), got {min_survivors}")
        self.seed, self.scale_bits, self.modulus_bits = int(seed), scale_bits, modulus_bits
        self.min_survivors = min_survivors
        self.mod = 2 ** modulus_bits
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"secagg dropout must be a rate in [0, 1), got {dropout!r}")
        self.dropout = float(dropout)

    def drops_out(self, client_id: str, round: int) -> bool:
        """Whether ``client_id`` drops out of ``round`` after masking (seeded by (seed, round, client))."""
        if self.dropout == 0.0:
            return False
        return _derive("dropout", self.seed, round, client_id) / 2.0 ** 63 < self.dropout

    def max_abs(self, n_participants: int) -> float:
        """Largest ``|value|`` a client may send so that a sum over ``n`` clients cannot wrap."""
        return 2.0 ** (self.modulus_bits - 1 - self.scale_bits) / n_participants

    def _pair_seed(self, a: str, b: str, round: int) -> int:
        lo, hi = sorted((a, b))
        return _derive("pair", self.seed, round, lo, hi)

    def _self_seed(self, client_id: str, round: int) -> int:
        return _derive("self", self.seed, round, client_id)

    @staticmethod
    def _check_participants(participants: Sequence[str]) -> list[str]:
        ids = list(participants)
        if len(ids) < 2:
            raise ValueError(f"secure aggregation needs at least 2 participants, got {len(ids)}")
        if len(set(ids)) != len(ids) or not all(isinstance(i, str) for i in ids):
            raise ValueError("participants must be distinct string ids")
        return ids

    def mask(self, client_id: str, vector: torch.Tensor, participants: list[str], round: int) -> torch.Tensor:
        """Client side: the int64 masked fixed-point encoding of ``vector`` [d]."""
        ids = self._check_participants(participants)
        if client_id not in ids:
            raise ValueError(f"client {client_id!r} is not among the round's participants")
        if vector.dim() != 1 or not vector.is_floating_point():
            raise ValueError(f"vector must be a float tensor [d], got {vector.dtype} {tuple(vector.shape)}")
        if not bool(torch.isfinite(vector).all()):
            raise SecAggUnencodable(f"client {client_id!r} sent non-finite values")
        peak, bound = float(vector.abs().max()) if vector.numel() else 0.0, self.max_abs(len(ids))
        if peak >= bound:
            raise SecAggUnencodable(f"|value| {peak:.4g} >= {bound:.4g}: a sum over {len(ids)} clients could wrap "
                             f"around 2^{self.modulus_bits} at scale 2^{self.scale_bits}; raise modulus_bits or "
                             f"lower scale_bits")
        d = vector.numel()
        y = encode_fixed(vector.detach().cpu(), self.scale_bits, self.modulus_bits)
        y = torch.remainder(y + prg(self._self_seed(client_id, round), d, self.modulus_bits), self.mod)
        for other in ids:
            if other == client_id:
                continue
            m = prg(self._pair_seed(client_id, other, round), d, self.modulus_bits)
            y = torch.remainder(y + m if client_id < other else y - m, self.mod)
        return y

    def unmask_sum(self, masked: dict[str, torch.Tensor], participants: list[str], round: int) -> torch.Tensor:
        """Server side: float32 sum of the survivors' vectors (``masked`` holds the survivors)."""
        ids = self._check_participants(participants)
        unknown = sorted(set(masked) - set(ids))
        if unknown:
            raise ValueError(f"masked vectors from non-participants {unknown[:5]}")
        survivors = [i for i in ids if i in masked]
        if len(survivors) < self.min_survivors:
            raise SecAggAborted(f"only {len(survivors)} of {len(ids)} participants sent their vectors; "
                                f"at least {self.min_survivors} are needed to recover masks: re-run the round")
        dims = {tuple(masked[i].shape) for i in survivors}
        if len(dims) != 1 or len(next(iter(dims))) != 1 or any(masked[i].dtype != torch.int64 for i in survivors):
            raise ValueError(f"masked vectors must be int64 [d] of one length, got shapes {sorted(dims)}")
        d = masked[survivors[0]].numel()
        total = torch.zeros(d, dtype=torch.int64)
        for u in survivors:
            total = torch.remainder(total + masked[u] - prg(self._self_seed(u, round), d, self.modulus_bits),
                                    self.mod)
        for v in (i for i in ids if i not in masked):  # dropped: remove its pair masks from survivors
            for u in survivors:
                m = prg(self._pair_seed(u, v, round), d, self.modulus_bits)
                total = torch.remainder(total - m if u < v else total + m, self.mod)
        return decode_fixed(total, self.scale_bits, self.modulus_bits)


def check_secagg_compatible(*, aggregator_requires_individual: bool, compressor_linear: bool,
                            dp_sample: bool, dp_user_adaptive: bool = False) -> None:
    """Raise ValueError saying why secure aggregation cannot run with this configuration.

    Secure aggregation reveals only the sum of updates, so (1) aggregators that
    inspect individual updates (Krum, median, trimmed mean, norm filters) have
    nothing to inspect; (2) a compressor must be linear (payloads summable in the
    masked ring); (3) adaptive user-level clipping needs each client's norm bit.
    Sample-level DP (``dp_sample``) is compatible: its noise is added on the client.
    Fixed-clip user-level DP is compatible when clients clip
    (:meth:`DPFedAvg.aggregate_clipped_sum`).
    """
    flags = {"aggregator_requires_individual": aggregator_requires_individual,
             "compressor_linear": compressor_linear, "dp_sample": dp_sample,
             "dp_user_adaptive": dp_user_adaptive}
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    reasons = []
    if aggregator_requires_individual:
        reasons.append("the robust aggregator needs individual client updates, which secure aggregation hides "
                       "(the server sees only their sum); use mean aggregation or turn secure aggregation off")
    if not compressor_linear:
        reasons.append("the compressor is not linear, so its payloads cannot be summed in the masked domain; "
                       "use no compression or a linear one")
    if dp_user_adaptive:
        reasons.append("adaptive clipping needs each client's clipped-norm bit, which secure aggregation hides; "
                       "use a fixed clip")
    if reasons:
        raise ValueError("secure aggregation cannot be combined with this configuration: " + "; ".join(reasons))
