"""Byte-level reading of payloads: a bounds-checked cursor and its error type.

Every compressor body is parsed through :class:`Reader`, so a truncated or
padded payload always fails with the same kind of message instead of numpy's
``frombuffer`` errors or, worse, a silently short vector. All multi-byte
numbers on the wire are little-endian.
"""

from __future__ import annotations

import struct
from typing import Tuple

import numpy as np


class CompressionError(ValueError):
    """A payload is malformed (truncated, padded, wrong header, sizes or codes), or an update cannot be encoded."""


class Reader:
    """A cursor over the bytes of one payload.

    Parameters
    ----------
    data : bytes
        The whole payload.
    offset : int
        Where reading starts (after the header).
    what : str
        Name used in error messages (the compressor name).
    """

    def __init__(self, data: bytes, offset: int, what: str):
        self.data = data
        self.pos = offset
        self.what = what

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def _need(self, n: int, field: str) -> None:
        if n < 0 or n > self.remaining:
            raise CompressionError(
                f"{self.what} payload truncated: {field} needs {n} bytes at offset {self.pos}, "
                f"only {self.remaining} left (payload is {len(self.data)} bytes)"
            )

    def unpack(self, fmt: struct.Struct, field: str) -> Tuple:
        """Read one fixed-size struct."""
        self._need(fmt.size, field)
        out = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return out

    def array(self, dtype: str, count: int, field: str) -> np.ndarray:
        """Read ``count`` items of little-endian ``dtype`` as a read-only numpy view."""
        dt = np.dtype(dtype)
        self._need(count * dt.itemsize, field)
        out = np.frombuffer(self.data, dtype=dt, count=count, offset=self.pos)
        self.pos += count * dt.itemsize
        return out

    def take(self, n: int, field: str) -> bytes:
        """Read ``n`` raw bytes (a copy; used for nested payloads)."""
        self._need(n, field)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def rest(self) -> bytes:
        """Everything not read yet (used for a nested payload that ends the body)."""
        return self.take(self.remaining, "rest")

    def finish(self) -> None:
        """Raise unless every byte was consumed (no trailing garbage)."""
        if self.remaining:
            raise CompressionError(
                f"{self.what} payload has {self.remaining} unexpected trailing bytes "
                f"(expected {self.pos}, got {len(self.data)})"
            )


def buffer(arr: np.ndarray) -> memoryview:
    """A zero-copy byte view of a C-contiguous array, for ``b"".join``."""
    return memoryview(np.ascontiguousarray(arr)).cast("B")
