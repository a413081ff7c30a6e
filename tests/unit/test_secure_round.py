"""Client encoding + server aggregation under secure aggregation, DP and compression (issue 13 §2, §3).

Each test drives the real client-side ``encode_update`` and the real ``Server``; the
oracle is the plain arithmetic the docstrings promise (clipped sums, weighted means,
noise std on the sum, k masked values).
"""

import math
from types import SimpleNamespace

import pytest
import torch

from speechfl.compression import CompressionContext, CompressionError, get_compressor
from speechfl.federated.round import encode_update
from speechfl.federated.server import Server, UnencodablePayload, trusted_counts
from speechfl.federated.server_opt import SERVER_OPTIMIZERS
from speechfl.federated.update import Update
from speechfl.privacy.dp_user import DPFedAvg, clip_updates
from speechfl.privacy.secagg import SecureAggregation
from speechfl.robustness import build_robust_pipeline

IDS = ["a", "b", "c", "d"]


def ctx(d):
    return CompressionContext(round=1, seed=0, layout=[("w", (d,))], dim=d)


def updates(d, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {c: scale * torch.randn(d, generator=g) for c in IDS}


def make(d, *, uplink="identity", dp_user=None, secagg=True, dropout=0.0, counts=None, aggregator="weighted_mean"):
    comp = get_compressor(uplink) if isinstance(uplink, str) else uplink
    sa = SecureAggregation(seed=7, dropout=dropout) if secagg else None
    setup = SimpleNamespace(secagg=sa, uplink=comp, dp_user=dp_user)
    server = Server(global_flat=torch.zeros(d), optimizer=SERVER_OPTIMIZERS.build("fedavg"), uplink=comp,
                    robust=build_robust_pipeline(aggregator, []), dp_user=dp_user, secagg=sa, sample_counts=counts)
    return setup, server


def send(setup, ups, c, n=None, claimed=None):
    n = n or {k: 1 for k in ups}
    out = []
    for cid, u in ups.items():
        upd = Update(cid, u.clone(), n[cid])
        rec = encode_update(setup, upd, {"client_seed": 1}, c, list(ups))
        if claimed and cid in claimed:
            rec.n_samples = claimed[cid]
        out.append(rec)
    return out


def test_dp_user_with_secagg_clips_on_clients_and_noises_the_sum():
    d, clip, z = 40_000, 1.0, 1.5
    dp = DPFedAvg(clip=clip, noise_multiplier=z, expected_clients=4.0, sample_rate=1.0, seed=3)
    setup, server = make(d, dp_user=dp)
    ups = updates(d, scale=0.05)  # norms ~10 >> clip: every client is clipped
    agg = server.aggregate(send(setup, ups, ctx(d)), ctx(d), participants=IDS)
    clipped_sum = clip_updates(torch.stack(list(ups.values())), clip)[0].sum(0)
    noise = agg.delta * 4.0 - clipped_sum  # released = (clipped sum + N(0, (z C)^2)) / m
    assert float(noise.std()) == pytest.approx(z * clip, rel=0.03)
    assert abs(float(noise.mean())) < 0.05
    assert agg.dp["clip"] == clip and agg.dp["noise_std_on_sum"] == pytest.approx(z * clip)
    assert dp.history == [(z, 1.0, 1)] and dp.epsilon(1e-5) > 0
    assert sorted(agg.accepted) == IDS


def test_dp_user_secagg_sensitivity_one_client_moves_the_noise_free_sum_by_at_most_clip():
    d = 1000
    dp = DPFedAvg(clip=0.5, noise_multiplier=0.0, expected_clients=4.0, sample_rate=1.0, seed=0)
    setup, server = make(d, dp_user=dp)
    ups = updates(d, scale=3.0)
    a = server.aggregate(send(setup, ups, ctx(d)), ctx(d), participants=IDS).delta * 4
    ups2 = dict(ups, d=ups["d"] * 1000)
    setup2, server2 = make(d, dp_user=DPFedAvg(clip=0.5, noise_multiplier=0.0, expected_clients=4.0,
                                               sample_rate=1.0, seed=0))
    b = server2.aggregate(send(setup2, ups2, ctx(d)), ctx(d), participants=IDS).delta * 4
    assert float((a - b).norm()) <= 2 * 0.5 + 1e-3  # both clipped to C: ||x - y|| <= 2C


def test_secagg_weighted_mean_uses_server_counts_and_caps_claims():
    d = 50
    setup, server = make(d, counts={"a": 1, "b": 3, "c": 2, "d": 2})
    ups = updates(d)
    n = {"a": 1, "b": 3, "c": 2, "d": 2}
    agg = server.aggregate(send(setup, ups, ctx(d), n=n, claimed={"a": 10**9}), ctx(d), participants=IDS)
    expected = sum(n[c] * ups[c] for c in IDS) / 8
    assert torch.allclose(agg.delta, expected, atol=1e-5)
    assert agg.weights["a"] == pytest.approx(1 / 8)
    assert "claimed 1000000000" in agg.overridden["a"] and set(agg.overridden) == {"a"}


def test_weighted_mean_caps_claimed_counts_at_the_partition_count():
    d = 5
    _, server = make(d, secagg=False, counts={"a": 4, "b": 4, "c": 4, "d": 4})
    setup = SimpleNamespace(secagg=None, uplink=server.uplink, dp_user=None)
    ups = {c: torch.full((d,), float(i)) for i, c in enumerate(IDS)}
    agg = server.aggregate(send(setup, ups, ctx(d), n={c: 4 for c in IDS}, claimed={"c": 10**9, "d": 10**9}),
                           ctx(d), participants=IDS)
    assert torch.allclose(agg.delta, torch.full((d,), 1.5))  # plain mean of 0, 1, 2, 3: no bought weight
    assert agg.weights == pytest.approx({c: 0.25 for c in IDS})
    assert set(agg.overridden) == {"c", "d"} and "partition holds 4" in agg.overridden["c"]


def test_trusted_counts_by_hand():
    counts, why = trusted_counts({"a": 5, "b": 2}, {"a": 3, "b": 3})
    assert counts == {"a": 3, "b": 2} and list(why) == ["a"]
    with pytest.raises(ValueError, match="not in the server's partition"):
        trusted_counts({"x": 1}, {"a": 3})


def test_randk_with_secagg_masks_only_the_k_shared_values():
    d = 2000
    setup, server = make(d, uplink=get_compressor("randk", fraction=0.1))
    ups = updates(d)
    recs = send(setup, ups, ctx(d))
    k = 200
    assert all(r.payload.numel() == k and r.metadata["bytes_up"] == 8 * k for r in recs)
    agg = server.aggregate(recs, ctx(d), participants=IDS)
    # oracle: the plain (unmasked) random-k pipeline on the same updates
    plain_setup, plain = make(d, uplink=get_compressor("randk", fraction=0.1), secagg=False)
    ref = plain.aggregate(send(plain_setup, ups, ctx(d)), ctx(d), participants=IDS)
    assert torch.allclose(agg.delta, ref.delta, atol=1e-4)
    assert int((agg.delta != 0).sum()) == k


def test_nan_client_under_secagg_is_dropped_and_the_round_goes_on():
    d = 100
    setup, server = make(d)
    ups = updates(d)
    ups["b"][3] = float("nan")
    recs = send(setup, ups, ctx(d))
    assert isinstance(recs[1].payload, UnencodablePayload) and recs[1].metadata["bytes_up"] == 0
    agg = server.aggregate(recs, ctx(d), participants=IDS)
    assert agg.dropped == ["b"] and "dropped out" in agg.rejected["b"] and "non-finite" in agg.rejected["b"]
    assert torch.allclose(agg.delta, (ups["a"] + ups["c"] + ups["d"]) / 3, atol=1e-5)


def test_overflowing_client_under_secagg_is_dropped():
    d = 10
    setup, server = make(d)
    ups = updates(d)
    ups["c"] = torch.full((d,), 1e6)  # cannot fit the 32-bit ring at scale 2^24
    agg = server.aggregate(send(setup, ups, ctx(d)), ctx(d), participants=IDS)
    assert agg.dropped == ["c"] and "could wrap" in agg.rejected["c"]
    assert torch.allclose(agg.delta, (ups["a"] + ups["b"] + ups["d"]) / 3, atol=1e-5)


def test_secagg_dropout_is_seeded_recovered_and_recorded():
    sa = SecureAggregation(seed=7, dropout=0.3)
    ids = [f"c{i}" for i in range(4000)]
    rate = sum(sa.drops_out(c, 2) for c in ids) / len(ids)
    assert rate == pytest.approx(0.3, abs=0.03)
    assert [sa.drops_out(c, 2) for c in ids[:50]] == [sa.drops_out(c, 2) for c in ids[:50]]
    assert [sa.drops_out(c, 2) for c in ids[:50]] != [sa.drops_out(c, 3) for c in ids[:50]]
    d = 30
    setup, server = make(d, dropout=0.5)
    ups = updates(d)
    gone = [c for c in IDS if setup.secagg.drops_out(c, 1)]
    assert 0 < len(gone) <= 2  # seed 7 drops some but leaves >= min_survivors
    agg = server.aggregate(send(setup, ups, ctx(d)), ctx(d), participants=IDS)
    kept = [c for c in IDS if c not in gone]
    assert agg.dropped == gone and sorted(agg.accepted) == kept
    assert torch.allclose(agg.delta, sum(ups[c] for c in kept) / len(kept), atol=1e-5)
    with pytest.raises(ValueError, match="dropout"):
        SecureAggregation(seed=0, dropout=1.0)


def test_too_few_survivors_leave_the_model_unchanged_without_aborting_the_run():
    d = 10
    setup, server = make(d)
    ups = updates(d)
    for c in ("a", "b", "c"):
        ups[c][0] = float("inf")
    agg = server.aggregate(send(setup, ups, ctx(d)), ctx(d), participants=IDS)
    assert torch.equal(agg.new_global, torch.zeros(d)) and agg.accepted == []
    assert "aborted" in agg.rejected["<sum>"] and agg.dropped == ["a", "b", "c"]


def test_missing_reply_is_a_dropped_participant():
    d = 20
    setup, server = make(d)
    ups = updates(d)
    recs = send(setup, ups, ctx(d))
    agg = server.aggregate([r for r in recs if r.client_id != "d"], ctx(d), participants=IDS)
    assert agg.dropped == ["d"] and "no reply" in agg.rejected["d"]
    assert torch.allclose(agg.delta, (ups["a"] + ups["b"] + ups["c"]) / 3, atol=1e-5)


class _Buggy:
    name = "buggy"
    shared_support = False

    def __init__(self, exc):
        self.exc = exc

    def encode(self, vector, state, ctx):
        raise self.exc


def test_encode_catches_only_compression_errors():
    d = 4
    upd = lambda: Update("a", torch.ones(d), 1)  # noqa: E731
    setup = SimpleNamespace(secagg=None, uplink=_Buggy(RuntimeError("index bug")), dp_user=None)
    with pytest.raises(RuntimeError, match="index bug"):
        encode_update(setup, upd(), {}, ctx(d), ["a"])
    setup.uplink = _Buggy(ValueError("some bug"))
    with pytest.raises(ValueError, match="some bug"):
        encode_update(setup, upd(), {}, ctx(d), ["a"])
    setup.uplink = _Buggy(CompressionError("cannot code this"))
    rec = encode_update(setup, upd(), {}, ctx(d), ["a"])
    assert isinstance(rec.payload, UnencodablePayload) and "cannot code" in rec.payload.reason
    setup.uplink = get_compressor("topk", fraction=0.5)
    nan = Update("a", torch.tensor([1.0, math.nan, 0.0, 2.0]), 1)
    assert isinstance(encode_update(setup, nan, {"client_seed": 1}, ctx(d), ["a"]).payload, UnencodablePayload)
