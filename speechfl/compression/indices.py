"""Compact coding of a sorted set of coordinates: delta varint or bitmap, the smaller.

Block layout (little-endian)::

    method  uint8    1 = delta varint, 2 = bitmap
    count   uint64   number of indices k
    nbytes  uint64   length of the data that follows
    data    nbytes   varint gaps, or a d-bit bitmap (ceil(d / 8) bytes)

Delta varint: the gaps ``g_0 = i_0`` and ``g_j = i_j - i_{j-1} - 1`` (all >= 0 for
strictly increasing indices) are written as LEB128 varints (7 bits per byte,
high bit = "more bytes follow"). Bitmap: bit ``i`` (most significant bit first,
as :func:`numpy.packbits`) is set iff ``i`` is kept. The encoder computes the
varint size exactly and picks whichever representation is smaller, per payload.
Both directions are vectorised (no Python loop over indices).
"""

from __future__ import annotations

import struct
from typing import List

import numpy as np

from speechfl.compression.wire import CompressionError, Reader, buffer

VARINT, BITMAP = 1, 2
BLOCK = struct.Struct("<BQQ")


def varint_groups(d: int) -> int:
    """Most LEB128 bytes a gap below ``d`` can take."""
    return max(1, -(-max(d - 1, 1).bit_length() // 7))


def varint_encode(values: np.ndarray, max_groups: int) -> np.ndarray:
    """LEB128-encode non-negative ``values`` (each < 2**(7*max_groups)) into uint8."""
    v = np.ascontiguousarray(values, dtype=np.uint64)
    nb = np.ones(v.size, np.int64)
    for g in range(1, max_groups):
        nb += v >= np.uint64(1 << (7 * g))
    shifts = (7 * np.arange(max_groups)).astype(np.uint64)
    groups = ((v[:, None] >> shifts[None, :]) & np.uint64(0x7F)).astype(np.uint8)
    col = np.arange(max_groups)[None, :]
    groups |= ((col < (nb - 1)[:, None]).astype(np.uint8) << np.uint8(7))
    return groups[col < nb[:, None]]


def varint_decode(buf: np.ndarray, count: int, max_groups: int) -> np.ndarray:
    """Inverse of :func:`varint_encode`; exactly ``count`` values must fill ``buf``."""
    if count == 0:
        if buf.size:
            raise CompressionError(f"0 varints but {buf.size} bytes")
        return np.zeros(0, np.uint64)
    if buf.size == 0 or buf[-1] & 0x80:
        raise CompressionError("varint stream is truncated (last byte has the continuation bit)")
    ends = np.flatnonzero((buf & 0x80) == 0)
    if ends.size != count:
        raise CompressionError(f"varint stream holds {ends.size} values, header says {count}")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > max_groups:
        raise CompressionError(f"varint longer than {max_groups} bytes: value out of range")
    pos = np.arange(buf.size) - np.repeat(starts, lengths)
    parts = (buf & 0x7F).astype(np.uint64) << (7 * pos).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts)


def encode_indices(idx: np.ndarray, d: int) -> List:
    """Byte parts of the block for strictly increasing int64 ``idx`` in ``[0, d)``."""
    k = idx.size
    gaps = np.diff(idx, prepend=np.int64(-1)) - 1
    groups = varint_groups(d)
    varint_bytes = k
    for g in range(1, groups):
        varint_bytes += int(np.count_nonzero(gaps >= (1 << (7 * g))))
    bitmap_bytes = (d + 7) // 8
    if varint_bytes <= bitmap_bytes:
        data = varint_encode(gaps, groups)
        return [BLOCK.pack(VARINT, k, data.size), buffer(data)]
    mask = np.zeros(d, np.bool_)
    mask[idx] = True
    data = np.packbits(mask)
    return [BLOCK.pack(BITMAP, k, data.size), buffer(data)]


def decode_indices(reader: Reader, d: int) -> np.ndarray:
    """Read one block; return strictly increasing int64 indices in ``[0, d)``."""
    method, count, nbytes = reader.unpack(BLOCK, "index block header")
    if count > d:
        raise CompressionError(f"index block claims {count} indices for d = {d}")
    if method == VARINT:
        buf = reader.array("u1", nbytes, "varint indices")
        gaps = varint_decode(buf, count, varint_groups(d))
        if count and int(gaps.max()) >= d:
            raise CompressionError(f"index gap {int(gaps.max())} is out of range for d = {d}")
        idx = np.cumsum(gaps.astype(np.int64) + 1) - 1
        if count and int(idx[-1]) >= d:
            raise CompressionError(f"index {int(idx[-1])} is out of range for d = {d}")
        return idx
    if method == BITMAP:
        if nbytes != (d + 7) // 8:
            raise CompressionError(f"bitmap for d = {d} needs {(d + 7) // 8} bytes, header says {nbytes}")
        buf = reader.array("u1", nbytes, "index bitmap")
        pad_bits = nbytes * 8 - d
        if pad_bits and int(buf[-1]) & ((1 << pad_bits) - 1):
            raise CompressionError("index bitmap has bits set beyond d")
        idx = np.flatnonzero(np.unpackbits(buf, count=d)).astype(np.int64)
        if idx.size != count:
            raise CompressionError(f"index bitmap has {idx.size} bits set, header says {count}")
        return idx
    raise CompressionError(f"unknown index coding method {method} (valid: {VARINT} varint, {BITMAP} bitmap)")
