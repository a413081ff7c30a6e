import pytest
import torch

from speechfl.privacy.secagg import (SecAggAborted, SecureAggregation, check_secagg_compatible, decode_fixed,
                                     encode_fixed)

IDS = ["alice", "bob", "carol", "dave", "erin"]


def _updates(n=5, d=1000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {cid: 0.5 * torch.randn(d, generator=g) for cid in IDS[:n]}


def test_fixed_point_hand_values():
    enc = encode_fixed(torch.tensor([1.5, -0.25, 0.0]), scale_bits=2, modulus_bits=8)
    assert enc.tolist() == [6, 255, 0]  # -1 in 8-bit two's complement
    assert decode_fixed(enc, 2, 8).tolist() == [1.5, -0.25, 0.0]


@pytest.mark.parametrize("modulus_bits,scale_bits", [(32, 24), (62, 30)])
def test_unmasked_sum_equals_plain_sum(modulus_bits, scale_bits):
    sa = SecureAggregation(seed=1, scale_bits=scale_bits, modulus_bits=modulus_bits)
    ups = _updates()
    masked = {cid: sa.mask(cid, u, IDS, round=3) for cid, u in ups.items()}
    total = sa.unmask_sum(masked, IDS, round=3)
    plain = torch.stack(list(ups.values())).sum(0)
    assert torch.allclose(total, plain, atol=len(IDS) * 2.0 ** -(scale_bits + 1) + 1e-6)


def test_each_masked_update_alone_is_far_from_its_raw_update():
    sa = SecureAggregation(seed=1)
    ups = _updates()
    for cid, u in ups.items():
        masked = sa.mask(cid, u, IDS, round=0)
        looks_like = decode_fixed(masked, 24, 32)  # what the server would read without the other vectors
        assert float((looks_like - u).abs().mean()) > 10.0  # raw values are ~0.5; the ring spans +-128
        assert abs(float(torch.corrcoef(torch.stack([looks_like, u]))[0, 1])) < 0.15


def test_dropped_clients_masks_are_recovered():
    sa = SecureAggregation(seed=2, min_survivors=3)
    ups = _updates()
    masked = {cid: sa.mask(cid, u, IDS, round=1) for cid, u in ups.items()}
    survivors = ["alice", "carol", "erin"]  # bob and dave never send
    total = sa.unmask_sum({c: masked[c] for c in survivors}, IDS, round=1)
    assert torch.allclose(total, sum(ups[c] for c in survivors), atol=1e-6)
    naive = decode_fixed(sum(masked[c] for c in survivors) % 2 ** 32, 24, 32)  # without recovery: garbage
    assert float((naive - total).abs().mean()) > 1.0


def test_too_few_survivors_aborts_the_round():
    sa = SecureAggregation(seed=2, min_survivors=3)
    ups = _updates()
    masked = {cid: sa.mask(cid, u, IDS, round=1) for cid, u in ups.items()}
    with pytest.raises(SecAggAborted, match="re-run the round"):
        sa.unmask_sum({c: masked[c] for c in ["alice", "bob"]}, IDS, round=1)


def test_masks_change_with_round_and_seed():
    u = _updates()["alice"]
    a = SecureAggregation(seed=1).mask("alice", u, IDS, round=0)
    assert not torch.equal(a, SecureAggregation(seed=1).mask("alice", u, IDS, round=1))
    assert not torch.equal(a, SecureAggregation(seed=9).mask("alice", u, IDS, round=0))
    assert torch.equal(a, SecureAggregation(seed=1).mask("alice", u, IDS, round=0))


def test_input_validation():
    sa = SecureAggregation(seed=0)
    with pytest.raises(ValueError, match="could wrap"):
        sa.mask("alice", torch.tensor([30.0]), IDS, round=0)  # 5 * 30 > 2^7
    with pytest.raises(ValueError, match="not among"):
        sa.mask("zoe", torch.zeros(3), IDS, round=0)
    with pytest.raises(ValueError, match="at least 2 participants"):
        sa.mask("alice", torch.zeros(3), ["alice"], round=0)
    with pytest.raises(ValueError, match="non-finite"):
        sa.mask("alice", torch.tensor([float("nan")]), IDS, round=0)
    with pytest.raises(ValueError, match="non-participants"):
        sa.unmask_sum({"zoe": torch.zeros(3, dtype=torch.long)}, IDS, round=0)
    with pytest.raises(ValueError, match="modulus_bits"):
        SecureAggregation(seed=0, modulus_bits=64)


def test_compatibility_check_says_why():
    with pytest.raises(ValueError, match="needs individual client updates"):
        check_secagg_compatible(aggregator_requires_individual=True, compressor_linear=True, dp_sample=False)
    with pytest.raises(ValueError, match="not linear"):
        check_secagg_compatible(aggregator_requires_individual=False, compressor_linear=False, dp_sample=True)
    with pytest.raises(ValueError, match="clipped-norm bit"):
        check_secagg_compatible(aggregator_requires_individual=False, compressor_linear=True, dp_sample=False,
                                dp_user_adaptive=True)
    with pytest.raises(TypeError, match="dp_sample must be a bool"):
        check_secagg_compatible(aggregator_requires_individual=False, compressor_linear=True, dp_sample="yes")
    check_secagg_compatible(aggregator_requires_individual=False, compressor_linear=True, dp_sample=True)
