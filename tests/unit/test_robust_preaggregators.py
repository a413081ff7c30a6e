"""NNM, bucketing, static clipping and ARC: hand cases and slow oracles."""

import pytest
import torch

import speechfl.robustness as R

COL = torch.tensor([[0.0], [1.0], [2.0], [10.0]])


def test_nnm_by_hand():
    # f = 1, 3 nearest (self included): 0 -> {0,1,2}; 1 -> {1,0,2}; 2 -> {2,1,0}; 10 -> {10,2,1}
    nnm = R.get_preaggregator("nnm", f=1)
    assert torch.allclose(nnm(COL), torch.tensor([[1.0], [1.0], [1.0], [13 / 3]]))
    expected = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 1, 1, 1]], dtype=torch.float64) / 3
    assert torch.equal(nnm.last_mixing, expected)


def test_nnm_matches_slow_oracle():
    n, f = 7, 2
    x = torch.randn(n, 11, generator=torch.Generator().manual_seed(0))
    x[:f] *= 20
    out = R.get_preaggregator("nnm", f=f)(x)
    for i in range(n):
        dist = [float(((x[i].double() - x[j].double()) ** 2).sum()) for j in range(n)]
        nearest = sorted(range(n), key=lambda j: dist[j])[: n - f]
        assert torch.allclose(out[i], x[nearest].mean(0), atol=1e-6)
    with pytest.raises(ValueError, match="at least 3"):
        R.get_preaggregator("nnm", f=2)(x[:2])


def test_bucketing_partitions_and_averages():
    x = torch.arange(10.0).reshape(5, 2)
    b = R.get_preaggregator("bucketing", s=2, seed=3)
    state = b.state_dict()
    out = b(x)
    member = b.last_membership
    assert out.shape == (3, 2) and member.shape == (3, 5)
    assert torch.equal(member.sum(0), torch.ones(5, dtype=torch.float64))  # each row in exactly one bucket
    assert sorted(member.sum(1).tolist()) == [1.0, 2.0, 2.0]  # ceil(5/2) buckets, last one smaller
    for k in range(3):
        rows = member[k].nonzero().flatten()
        assert torch.allclose(out[k], x[rows].mean(0))
    assert torch.allclose(b.map_weights(torch.arange(1.0, 6.0, dtype=torch.float64)),
                          member @ torch.arange(1.0, 6.0, dtype=torch.float64))
    again = R.get_preaggregator("bucketing", s=2, seed=0)
    again.load_state_dict(state)
    assert torch.equal(again(x), out)  # same generator state, same permutation


def test_clipping_by_hand_and_no_mutation():
    x = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    before = x.clone()
    clip = R.get_preaggregator("clipping", tau=1.0)
    assert torch.allclose(clip(x), torch.tensor([[0.6, 0.8], [0.3, 0.4]]))
    assert torch.equal(x, before)
    assert torch.allclose(clip.last_mixing, torch.diag(torch.tensor([0.2, 1.0], dtype=torch.float64)))
    small = x[1:].clone()
    assert clip(small).data_ptr() == small.data_ptr()  # nothing to clip: no copy
    with pytest.raises(ValueError, match="tau must be > 0"):
        R.get_preaggregator("clipping", tau=0.0)


@pytest.mark.parametrize("f,expected", [(1, [1, 2, 3, 4, 4]), (2, [1, 2, 3, 3, 3]), (0, [1, 2, 3, 4, 10])])
def test_arc_by_hand(f, expected):
    # k = floor(2 f (n - f) / n): f=1 -> floor(1.6) = 1; f=2 -> floor(2.4) = 2; f=0 -> 0
    x = torch.tensor([[1.0], [-2.0], [3.0], [10.0], [4.0]])
    out = R.get_preaggregator("arc", f=f)(x)
    sign = torch.tensor([[1.0], [-1.0], [1.0], [1.0], [1.0]])
    order = [0, 1, 2, 4, 3]  # rows sorted by norm: 1, 2, 3, 4, 10
    want = torch.empty(5, 1)
    for pos, row in enumerate(order):
        want[row] = expected[pos] * sign[row]
    assert torch.allclose(out, want)


def test_arc_matches_slow_oracle():
    n, f = 9, 3
    x = torch.randn(n, 6, generator=torch.Generator().manual_seed(5)) * torch.arange(1.0, 10.0)[:, None]
    out = R.get_preaggregator("arc", f=f)(x)
    norms = [float(torch.linalg.vector_norm(r.double())) for r in x]
    k = int(2 * f / n * (n - f))  # 4
    order = sorted(range(n), key=lambda i: -norms[i])
    thr = norms[order[k]]
    for i in range(n):
        scale = min(1.0, thr / norms[i]) if i in order[:k] else 1.0
        assert torch.allclose(out[i], x[i] * scale, atol=1e-6)
