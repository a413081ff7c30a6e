"""Registry, context, payload bytes and header validation, for every compressor."""

import math
import struct

import numpy as np
import pytest
import torch

from speechfl.compression import (
    COMPRESSORS,
    CompressionContext,
    CompressionError,
    Identity,
    Payload,
    ScaledSign,
    TopK,
    build_compressor,
    derive_seed,
    get_compressor,
)
from speechfl.compression.base import HEADER, MAGIC, WIRE_VERSION
from speechfl.compression.indices import varint_encode
from speechfl.registry import RegistryError

D = 300
LAYOUT = [("w", (20, 10)), ("b", (60,)), ("c", (4, 10))]  # 200 + 60 + 40 = 300


def _ctx(dim=D, round=2, seed=11, layout=LAYOUT):
    return CompressionContext(round=round, seed=seed, layout=layout if dim == D else [("v", (dim,))], dim=dim)


def _x(dim=D, seed=0):
    return torch.randn(dim, generator=torch.Generator().manual_seed(seed))


def _varint_len(values):
    return sum(max(1, math.ceil(int(v).bit_length() / 7)) for v in values)


def _index_bytes(idx, d):
    gaps = [idx[0]] + [b - a - 1 for a, b in zip(idx, idx[1:])]
    return 17 + min(_varint_len(gaps), (d + 7) // 8)


def _topk_support(x, k):
    return sorted(np.argsort(-np.abs(x.numpy()), kind="stable")[:k].tolist())


# (spec, expected total payload bytes as a function of x) -- hand formulas, the oracle for len(payload)
SPECS = {
    "identity": ("identity", lambda x: 12 + 4 * D),
    "fp16": ("fp16", lambda x: 12 + 2 * D),
    "bf16": ("bf16", lambda x: 12 + 2 * D),
    "topk": ({"name": "topk", "k": 30}, lambda x: 12 + _index_bytes(_topk_support(x, 30), D) + 4 * 30),
    "randk": ({"name": "randk", "fraction": 0.1}, lambda x: 12 + 4 + 4 * 30),
    "qsgd": ({"name": "qsgd", "levels": 127, "bucket_size": 128}, lambda x: 12 + 6 + 4 * 3 + D),
    "qsgd2bit": ({"name": "qsgd", "levels": 1, "bucket_size": None}, lambda x: 12 + 6 + 4 + math.ceil(2 * D / 8)),
    "sign": ("sign", lambda x: 12 + 4 + math.ceil(D / 8)),
    # w (20x10) and c (4x10) compressed at rank 2 (2*30 < 200, 2*14 < 40); b through identity
    "powersgd": (
        {"name": "powersgd", "rank": 2},
        lambda x: 12 + 6 + 4 * 2 * (20 + 10) + 4 * 2 * (4 + 10) + 12 + 4 * 60,
    ),
    "compose": (
        {"name": "compose", "stages": [{"name": "topk", "k": 30}, {"name": "qsgd", "levels": 127, "bucket_size": 16}]},
        lambda x: 12 + _index_bytes(_topk_support(x, 30), D) + (12 + 6 + 4 * 2 + 30),
    ),
    "ef": ({"name": "ef", "inner": "sign"}, lambda x: 12 + 4 + math.ceil(D / 8)),
    "ef21": (
        {"name": "ef21", "inner": {"name": "topk", "k": 30}},
        lambda x: 12 + _index_bytes(_topk_support(x, 30), D) + 4 * 30,
    ),
}


def test_registry_lists_every_compressor():
    assert COMPRESSORS.names() == sorted(
        ["identity", "fp16", "bf16", "topk", "randk", "qsgd", "sign", "powersgd", "compose", "topk_q8", "ef", "ef21"]
    )


def test_unknown_name_lists_valid_names():
    with pytest.raises(RegistryError, match=r"unknown compressor 'top_k'.*identity.*topk"):
        get_compressor("top_k")


def test_unknown_parameter_lists_valid_parameters():
    with pytest.raises(RegistryError, match=r"'frac'.*valid parameters: fraction, k"):
        get_compressor("topk", frac=0.1)
    with pytest.raises(RegistryError, match=r"'rank'.*valid parameters: levels, bucket_size"):
        build_compressor({"name": "qsgd", "rank": 2})


def test_nested_specs_are_validated_too():
    with pytest.raises(RegistryError, match="unknown compressor 'nope'"):
        get_compressor("ef", inner={"name": "nope"})
    with pytest.raises(RegistryError, match="'levelz'"):
        get_compressor("compose", stages=[{"name": "topk", "k": 3}, {"name": "qsgd", "levelz": 3}])


def test_build_compressor_forms():
    assert isinstance(build_compressor(None), Identity)
    assert isinstance(build_compressor("sign"), ScaledSign)
    comp = build_compressor({"name": "topk", "k": 5})
    assert isinstance(comp, TopK) and comp.k == 5
    assert build_compressor(comp) is comp
    with pytest.raises(RegistryError, match="must be a name or a mapping"):
        build_compressor(3)
    with pytest.raises(RegistryError, match="no 'name' key"):
        build_compressor({"k": 3})


def test_context_validation():
    with pytest.raises(ValueError, match="round"):
        CompressionContext(round=0, seed=0, layout=[], dim=3)
    with pytest.raises(ValueError, match="dim"):
        CompressionContext(round=1, seed=0, layout=[], dim=0)
    with pytest.raises(ValueError, match="layout holds 6 values but dim is 7"):
        CompressionContext(round=1, seed=0, layout=[("a", (2, 3))], dim=7)
    ctx = CompressionContext.flat(5, round=3, seed=4)
    assert ctx.layout == [("flat", (5,))] and ctx.round == 3 and ctx.seed == 4


def test_vector_validation():
    comp, ctx = get_compressor("topk", k=2), _ctx()
    with pytest.raises(TypeError, match="float32"):
        comp.encode(_x().double(), {}, ctx)
    with pytest.raises(ValueError, match=r"shape \[300\]"):
        comp.encode(_x(D + 1), {}, ctx)
    with pytest.raises(ValueError, match=r"shape \[300\]"):
        comp.encode(_x().view(3, 100), {}, ctx)
    with pytest.raises(TypeError, match="state must be a dict"):
        comp.encode(_x(), None, ctx)
    bad = _x()
    bad[[3, 7]] = float("nan")
    bad[5] = float("inf")
    with pytest.raises(ValueError, match="2 NaN and 1 Inf"):
        comp.encode(bad, {}, ctx)


def test_identity_carries_nonfinite_values_unchanged():
    x = _x()
    x[0], x[1] = float("nan"), float("-inf")
    out = get_compressor("identity").decode(get_compressor("identity").encode(x, {}, _ctx()), _ctx())
    assert math.isnan(out[0]) and out[1] == float("-inf") and torch.equal(out[2:], x[2:])


def test_payload_wraps_bytes_only():
    assert len(Payload(b"abc")) == 3
    with pytest.raises(TypeError, match="bytes"):
        Payload(bytearray(b"abc"))
    with pytest.raises(TypeError, match="Payload"):
        get_compressor("identity").decode(b"\x00" * 20, _ctx())


def test_derive_seed_is_deterministic_and_sensitive():
    assert derive_seed(1, 2, "a") == derive_seed(1, 2, "a")
    seeds = {derive_seed(1, 2, "a"), derive_seed(2, 1, "a"), derive_seed(1, 2, "b"), derive_seed(12, "a")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize("key", sorted(SPECS))
def test_payload_is_serialized_bytes_of_the_documented_length(key, tmp_path):
    spec, expected = SPECS[key]
    x, ctx = _x(), _ctx()
    payload = build_compressor(spec).encode(x, {"client_seed": 5}, ctx)
    assert isinstance(payload.data, bytes)
    assert len(payload) == len(payload.data) == expected(x)
    assert payload.data[:4] == MAGIC + bytes([WIRE_VERSION, payload.data[3]])
    assert HEADER.unpack_from(payload.data)[3] == D
    # what goes over the wire is self-contained: a fresh decoder reading the file gets the same vector
    path = tmp_path / "payload.bin"
    path.write_bytes(payload.data)
    assert path.stat().st_size == len(payload)
    fresh = build_compressor(spec)
    again = fresh.decode(Payload(path.read_bytes()), ctx)
    assert again.dtype == torch.float32 and again.shape == (D,)
    assert torch.equal(again, build_compressor(spec).decode(payload, ctx))


@pytest.mark.parametrize("key", sorted(SPECS))
def test_malformed_payloads_raise_clear_errors(key):
    spec, _ = SPECS[key]
    comp, ctx = build_compressor(spec), _ctx()
    data = comp.encode(_x(), {"client_seed": 5}, ctx).data
    with pytest.raises(CompressionError, match="truncated|shorter"):
        comp.decode(Payload(data[:-1]), ctx)
    with pytest.raises(CompressionError, match="truncated|shorter"):
        comp.decode(Payload(data[: len(data) // 2]), ctx)
    with pytest.raises(CompressionError, match="trailing"):
        comp.decode(Payload(data + b"\x00"), ctx)
    with pytest.raises(CompressionError, match="shorter than the 12-byte header"):
        comp.decode(Payload(data[:5]), ctx)
    with pytest.raises(CompressionError, match="bad magic"):
        comp.decode(Payload(b"XX" + data[2:]), ctx)
    with pytest.raises(CompressionError, match="wire version 7"):
        comp.decode(Payload(data[:2] + b"\x07" + data[3:]), ctx)
    other_kind = 1 if data[3] != 1 else 7
    with pytest.raises(CompressionError, match=f"kind {other_kind}"):
        comp.decode(Payload(data[:3] + bytes([other_kind]) + data[4:]), ctx)
    with pytest.raises(CompressionError, match="encodes d = 300, context expects d = 40"):
        comp.decode(Payload(data), CompressionContext.flat(40, round=2, seed=11))


def test_header_layout_is_the_documented_one():
    x = torch.tensor([1.5, -2.0])
    data = get_compressor("identity").encode(x, {}, CompressionContext.flat(2)).data
    assert data == b"SF" + bytes([1, 1]) + struct.pack("<Q", 2) + struct.pack("<2f", 1.5, -2.0)


def test_varint_helper_matches_leb128_reference():
    # LEB128 reference values (e.g. the DWARF spec's examples: 2 -> 02, 127 -> 7f, 128 -> 80 01, 129 -> 81 01)
    out = varint_encode(np.array([2, 127, 128, 129, 12857]), 3).tobytes()
    assert out == bytes([0x02, 0x7F, 0x80, 0x01, 0x81, 0x01, 0xB9, 0x64])


def test_linear_and_server_state_flags():
    linear = {name for name in COMPRESSORS.names() if name not in ("compose", "ef", "ef21", "topk_q8")
              and get_compressor(name, **({"k": 3} if name in ("topk", "randk") else {})).linear}
    assert linear == {"identity", "randk"}
    assert get_compressor("compose", stages=[{"name": "randk", "k": 3}, "identity"]).linear
    assert not get_compressor("compose", stages=[{"name": "randk", "k": 3}, "sign"]).linear
    assert get_compressor("ef", inner={"name": "randk", "k": 3, "unbiased": False}).linear
    assert get_compressor("ef21", inner="identity").requires_server_state
    assert not get_compressor("ef", inner="identity").requires_server_state
