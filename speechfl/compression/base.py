"""Compressor interface, wire header, context, seeds and the compressor registry.

A compressor turns a float32 update ``[d]`` into a :class:`Payload` — the exact
bytes that would go over the wire — and back. Every payload starts with a
12-byte header (little-endian)::

    magic    2 bytes  b"SF"
    version  uint8    WIRE_VERSION
    kind     uint8    compressor kind id (one per wire format)
    d        uint64   length of the encoded vector

followed by the compressor's body. ``decode`` checks magic, version, kind and
``d`` against its own configuration and the context, and that the body length
matches exactly; any mismatch raises :class:`CompressionError`.

Stochastic compressors draw from a numpy PCG64 generator seeded with
:func:`derive_seed` from ``(ctx.seed, ctx.round, state["client_seed"], tag)``:
runs are reproducible and no global RNG is touched.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from speechfl.compression.wire import CompressionError, Reader
from speechfl.registry import Registry, build_from_spec

MAGIC = b"SF"
WIRE_VERSION = 1
HEADER = struct.Struct("<2sBBQ")

COMPRESSORS = Registry("compressor")
_KIND_IDS: Dict[int, str] = {}


@dataclass(frozen=True)
class CompressionContext:
    """What every party knows about the current round.

    Attributes
    ----------
    round : int
        1-based round number.
    seed : int
        Run seed; shared masks derive from ``(seed, round)`` only.
    layout : list of (str, tuple of int)
        Parameter names and shapes in flat order (PowerSGD uses it); may be empty.
    dim : int
        Length ``d`` of the flat vector.
    """

    round: int
    seed: int
    layout: List[Tuple[str, Tuple[int, ...]]]
    dim: int

    def __post_init__(self) -> None:
        if not isinstance(self.round, int) or self.round < 1:
            raise ValueError(f"round must be an int >= 1, got {self.round!r}")
        if not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {type(self.seed).__name__}")
        if not isinstance(self.dim, int) or self.dim < 1:
            raise ValueError(f"dim must be an int >= 1, got {self.dim!r}")
        if self.layout:
            total = sum(int(np.prod(shape, dtype=np.int64)) for _, shape in self.layout)
            if total != self.dim:
                raise ValueError(f"layout holds {total} values but dim is {self.dim}")

    @classmethod
    def flat(cls, dim: int, round: int = 1, seed: int = 0) -> "CompressionContext":
        """Context for a plain vector: one parameter ``"flat"`` of shape ``(dim,)``."""
        return cls(round=round, seed=seed, layout=[("flat", (dim,))], dim=dim)

    def child(self, name: str, dim: int) -> "CompressionContext":
        """Context for a sub-vector (kept values of a sparsifier, PowerSGD leftovers)."""
        return CompressionContext(round=self.round, seed=self.seed, layout=[(name, (dim,))], dim=dim)


class Payload:
    """The serialized bytes of one encoded vector; ``len(payload) == len(payload.data)``."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        if not isinstance(data, bytes):
            raise TypeError(f"payload data must be bytes, got {type(data).__name__}")
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.data == self.data

    def __repr__(self) -> str:
        return f"Payload({len(self.data)} bytes)"


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from ints/strings, stable across processes and platforms."""
    text = "|".join(str(int(p)) if not isinstance(p, str) else p for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def client_seed(state: dict) -> int:
    """The engine-assigned per-client seed in ``state["client_seed"]`` (required)."""
    if "client_seed" not in state:
        raise ValueError(
            "state['client_seed'] is not set: stochastic compressors need the engine to give "
            "each client a seed so that runs are reproducible"
        )
    return int(state["client_seed"])


def client_rng(state: dict, ctx: CompressionContext, tag: str) -> np.random.Generator:
    """Generator for one client's draws in one round, seeded from (seed, round, client_seed, tag)."""
    return np.random.Generator(np.random.PCG64(derive_seed(ctx.seed, ctx.round, client_seed(state), tag, ctx.dim)))


class Compressor:
    """Base class. Subclasses set ``name`` and ``kind_id`` and implement ``_encode``/``_decode``.

    ``_encode(x, state, ctx)`` gets a float32 numpy view of the vector and returns
    a list of bytes-like parts (the body); ``_decode(reader, ctx)`` reads the body
    and returns a float32 numpy array ``[d]``.
    """

    name: str = ""
    kind_id: Optional[int] = None
    shared_support: bool = False
    accepts_nonfinite: bool = False  # identity and casts carry NaN/Inf; the others refuse them
    nestable: bool = True  # False for wrappers keeping per-client memory (EF): they must be outermost
    # encode is one linear map, the same for every client (so sums commute with it): identity, random-k
    linear: bool = False
    requires_server_state: bool = False  # True for EF21: the server must keep per-client memory

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kid = cls.__dict__.get("kind_id")
        if kid is not None:
            if not 0 < kid < 256 or kid in _KIND_IDS:
                raise ValueError(f"kind id {kid} of {cls.__name__} is invalid or taken by {_KIND_IDS.get(kid)}")
            _KIND_IDS[kid] = cls.__name__

    # ---- public API -------------------------------------------------------------------------
    def encode(self, vector: torch.Tensor, state: dict, ctx: CompressionContext) -> Payload:
        x = check_vector(vector, ctx, self.name, self.accepts_nonfinite)
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        parts = self._encode(x, state, ctx)
        return Payload(b"".join([HEADER.pack(MAGIC, WIRE_VERSION, self.kind_id, ctx.dim), *parts]))

    def decode(self, payload: Payload, ctx: CompressionContext) -> torch.Tensor:
        reader = self.open(payload, ctx)
        out = self._decode(reader, ctx)
        reader.finish()
        return torch.from_numpy(out)

    def is_contractive(self, dim: int) -> bool:
        """True if E||C(x) - x||^2 <= (1 - delta) ||x||^2 for some delta > 0 (needed by EF)."""
        return False

    # ---- shared-support API (random-k only) -----------------------------------------------------
    def support(self, ctx: CompressionContext) -> torch.Tensor:
        raise TypeError(f"compressor {self.name!r} has no shared support (shared_support is False)")

    def decode_values(self, payload: Payload, ctx: CompressionContext) -> torch.Tensor:
        raise TypeError(f"compressor {self.name!r} has no shared support (shared_support is False)")

    def expand(self, values_k: torch.Tensor, ctx: CompressionContext) -> torch.Tensor:
        raise TypeError(f"compressor {self.name!r} has no shared support (shared_support is False)")

    # ---- helpers for subclasses ---------------------------------------------------------------
    def open(self, payload: Payload, ctx: CompressionContext) -> Reader:
        """Check the header against this compressor and ``ctx``; return a reader on the body."""
        if not isinstance(payload, Payload):
            raise TypeError(f"expected a Payload, got {type(payload).__name__}")
        data = payload.data
        if len(data) < HEADER.size:
            raise CompressionError(f"payload of {len(data)} bytes is shorter than the {HEADER.size}-byte header")
        magic, version, kind, d = HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            raise CompressionError(f"bad magic {magic!r}, expected {MAGIC!r}: not a speechfl payload")
        if version != WIRE_VERSION:
            raise CompressionError(f"wire version {version} is not supported (this build reads {WIRE_VERSION})")
        if kind != self.kind_id:
            raise CompressionError(
                f"payload was made by compressor kind {kind} ({_KIND_IDS.get(kind, 'unknown')}), "
                f"this decoder is {self.name!r} (kind {self.kind_id})"
            )
        if d != ctx.dim:
            raise CompressionError(f"payload encodes d = {d}, context expects d = {ctx.dim}")
        return Reader(data, HEADER.size, self.name)

    def _encode(self, x: np.ndarray, state: dict, ctx: CompressionContext) -> list:
        raise NotImplementedError(f"{type(self).__name__} does not implement _encode")

    def _decode(self, reader: Reader, ctx: CompressionContext) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} does not implement _decode")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_vector(vector: torch.Tensor, ctx: CompressionContext, name: str, allow_nonfinite: bool) -> np.ndarray:
    """Validate a float32 ``[ctx.dim]`` tensor; return a float32 numpy view of it on the CPU."""
    if not isinstance(vector, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(vector).__name__}")
    if vector.dtype != torch.float32:
        raise TypeError(f"{name}: expected a float32 vector, got {vector.dtype}")
    if vector.dim() != 1 or vector.numel() != ctx.dim:
        raise ValueError(f"{name}: expected a vector of shape [{ctx.dim}], got {tuple(vector.shape)}")
    x = vector.detach().cpu().contiguous().numpy()
    if not allow_nonfinite and not np.isfinite(x).all():
        n_nan = int(np.isnan(x).sum())
        raise ValueError(
            f"{name}: vector has {n_nan} NaN and {int((~np.isfinite(x)).sum()) - n_nan} Inf values; "
            "this compressor cannot represent them (validate updates before compressing)"
        )
    return x


def get_compressor(name: str, **params: Any) -> Compressor:
    """Build a registered compressor; unknown names or parameters raise, listing the valid ones."""
    return COMPRESSORS.build(name, **params)


def build_compressor(spec: Any) -> Compressor:
    """Build from ``None`` (identity), a name, a ``{name: ..., **params}`` mapping or an instance."""
    if spec is None:
        return COMPRESSORS.build("identity")
    if isinstance(spec, Compressor):
        return spec
    return build_from_spec(COMPRESSORS, spec)


def build_nested(spec: Any, where: str) -> Compressor:
    """Build a compressor used inside another one; memory-keeping wrappers are refused."""
    comp = build_compressor(spec)
    if not comp.nestable:
        raise ValueError(f"{where}: {comp.name!r} cannot be nested; wrap the whole compressor in it instead")
    return comp
