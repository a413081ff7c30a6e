"""Compressed updates: every payload is real bytes, every compressor is chosen by name.

Usage (client and server build the same compressor from the same spec)::

    comp = build_compressor({"name": "topk", "fraction": 0.01})
    ctx = CompressionContext(round=r, seed=run_seed, layout=layout.as_list(), dim=layout.dim)
    payload = comp.encode(delta, client_state, ctx)   # len(payload) = bytes on the wire
    approx = comp.decode(payload, ctx)

Names: identity, fp16, bf16, topk, randk, qsgd, sign, powersgd, compose, topk_q8,
ef, ef21. Importing this package registers all of them in :data:`COMPRESSORS`.
"""

from speechfl.compression.base import (
    COMPRESSORS,
    CompressionContext,
    Compressor,
    Payload,
    build_compressor,
    derive_seed,
    get_compressor,
)
from speechfl.compression.cast import BF16, FP16
from speechfl.compression.compose import Compose, TopKQ8
from speechfl.compression.error_feedback import EF21, EF21ServerState, ErrorFeedback
from speechfl.compression.identity import Identity
from speechfl.compression.powersgd import PowerSGD
from speechfl.compression.qsgd import QSGD
from speechfl.compression.randk import RandK
from speechfl.compression.sign import ScaledSign
from speechfl.compression.topk import TopK
from speechfl.compression.wire import CompressionError

__all__ = [
    "BF16",
    "COMPRESSORS",
    "Compose",
    "CompressionContext",
    "CompressionError",
    "Compressor",
    "EF21",
    "EF21ServerState",
    "ErrorFeedback",
    "FP16",
    "Identity",
    "Payload",
    "PowerSGD",
    "QSGD",
    "RandK",
    "ScaledSign",
    "TopK",
    "TopKQ8",
    "build_compressor",
    "derive_seed",
    "get_compressor",
]
