"""Index coding (delta varint vs bitmap) and bit packing against slow reference coders."""

import struct

import numpy as np
import pytest

from speechfl.compression.bitpack import pack, unpack, width_for
from speechfl.compression.indices import BLOCK, decode_indices, encode_indices, varint_decode, varint_encode
from speechfl.compression.wire import CompressionError, Reader


def _leb128(values):
    """Slow reference LEB128 encoder."""
    out = bytearray()
    for v in values:
        v = int(v)
        while True:
            byte, v = v & 0x7F, v >> 7
            out.append(byte | (0x80 if v else 0))
            if not v:
                break
    return bytes(out)


def _block(idx, d):
    return b"".join(bytes(p) for p in encode_indices(np.asarray(idx, np.int64), d))


def _read(data, d):
    reader = Reader(data, 0, "test")
    idx = decode_indices(reader, d)
    reader.finish()
    return idx


def test_varint_matches_reference_encoder():
    rng = np.random.default_rng(0)
    values = np.concatenate([[0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**35 + 5], rng.integers(0, 2**40, 200)])
    enc = varint_encode(values, 6)
    assert enc.tobytes() == _leb128(values)
    assert np.array_equal(varint_decode(enc, values.size, 6), values.astype(np.uint64))


def test_sparse_set_uses_delta_varint_hand_example():
    # gaps: 3, 10-3-1 = 6, 200-10-1 = 189 -> 03 06 bd 01 (4 bytes) < bitmap of 125 bytes
    assert _block([3, 10, 200], 1000) == struct.pack("<BQQ", 1, 3, 4) + bytes([0x03, 0x06, 0xBD, 0x01])
    assert _read(_block([3, 10, 200], 1000), 1000).tolist() == [3, 10, 200]


def test_dense_set_uses_bitmap_hand_example():
    # 10 of 16 coordinates: 10 varint bytes > 2 bitmap bytes; bits 1111111111000000
    assert _block(list(range(10)), 16) == struct.pack("<BQQ", 2, 10, 2) + bytes([0xFF, 0xC0])


@pytest.mark.parametrize("d,k", [(1, 1), (7, 3), (1000, 5), (1000, 400), (5000, 4999), (70000, 300), (70000, 20000)])
def test_round_trip_and_smaller_coding_chosen(d, k):
    rng = np.random.default_rng(d + k)
    idx = np.sort(rng.choice(d, size=k, replace=False))
    data = _block(idx, d)
    assert np.array_equal(_read(data, d), idx)
    gaps = np.diff(idx, prepend=-1) - 1
    assert len(data) == BLOCK.size + min(len(_leb128(gaps)), (d + 7) // 8)


def test_malformed_index_blocks():
    good = _block([3, 10, 200], 1000)
    with pytest.raises(CompressionError, match="unknown index coding method 9"):
        _read(bytes([9]) + good[1:], 1000)
    with pytest.raises(CompressionError, match="claims 5000 indices"):
        _read(struct.pack("<BQQ", 1, 5000, 4) + good[17:], 1000)
    with pytest.raises(CompressionError, match="truncated"):
        _read(good[:-1], 1000)
    with pytest.raises(CompressionError, match="continuation bit"):
        _read(struct.pack("<BQQ", 1, 3, 3) + bytes([0x03, 0x06, 0xBD]), 1000)
    with pytest.raises(CompressionError, match="holds 4 values, header says 3"):
        _read(struct.pack("<BQQ", 1, 3, 4) + bytes([0x03, 0x06, 0x05, 0x01]), 1000)
    with pytest.raises(CompressionError, match="out of range"):  # 3, 10, 10 + 1 + 1000
        _read(struct.pack("<BQQ", 1, 3, 4) + bytes([0x03, 0x06]) + _leb128([1000]), 1000)
    with pytest.raises(CompressionError, match="index 1000 is out of range"):  # gaps in range, sum is not
        _read(struct.pack("<BQQ", 1, 2, 4) + _leb128([500, 499]), 1000)
    with pytest.raises(CompressionError, match="2 bits set, header says 3"):
        _read(struct.pack("<BQQ", 2, 3, 2) + bytes([0x81, 0x00]), 16)
    with pytest.raises(CompressionError, match="beyond d"):
        _read(struct.pack("<BQQ", 2, 2, 2) + bytes([0x80, 0x01]), 12)
    with pytest.raises(CompressionError, match="needs 2 bytes"):
        _read(struct.pack("<BQQ", 2, 1, 3) + bytes([0x80, 0, 0]), 12)


def _slow_pack(codes, width):
    bits = "".join(format(int(c), f"0{width}b") for c in codes)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))


def test_pack_hand_examples():
    assert pack(np.array([0, 1, 2, 3, 3]), 2).tobytes() == bytes([0x1B, 0xC0])
    assert pack(np.array([1, 15, 7]), 4).tobytes() == bytes([0x1F, 0x70])
    assert pack(np.array([1, 0, 1, 1, 0, 0, 0, 0, 1]), 1).tobytes() == bytes([0xB0, 0x80])
    assert pack(np.array([0x1234]), 16).tobytes() == bytes([0x34, 0x12])


@pytest.mark.parametrize("width", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("count", [1, 3, 8, 17, 1001])
def test_pack_round_trip_against_slow_packer(width, count):
    codes = np.random.default_rng(count * width).integers(0, 2**width, count)
    packed = pack(codes, width)
    if width < 16:
        assert packed.tobytes() == _slow_pack(codes, width)
    assert np.array_equal(unpack(packed, width, count), codes)


def test_unpack_rejects_wrong_length_and_padding():
    with pytest.raises(CompressionError, match="need 2 bytes, got 3"):
        unpack(np.zeros(3, np.uint8), 2, 5)
    with pytest.raises(CompressionError, match="padding"):
        unpack(np.array([0x1B, 0xC1], np.uint8), 2, 5)


def test_width_for():
    assert [width_for(n) for n in (2, 3, 4, 5, 16, 17, 255, 256, 257, 65535)] == [1, 2, 2, 4, 4, 8, 8, 8, 16, 16]
    with pytest.raises(ValueError, match="16 bits"):
        width_for(70000)
