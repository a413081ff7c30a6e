"""Speaker linkage from client updates, and the count sketch it relies on."""

import json

import pytest
import torch

from speechfl.attackers import update_linkage_attack
from speechfl.attackers.sketch import count_sketch, stack_updates


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead



def rounds(n_clients=8, d=4000, signal=1.0, drift=5.0, k_enroll=2, seed=0):
    """Update = round drift shared by everyone + a persistent client direction + noise."""
    g = torch.Generator().manual_seed(seed)
    own = {f"c{i}": signal * torch.randn(d, generator=g) for i in range(n_clients)}
    drift1, drift2 = drift * torch.randn(d, generator=g), drift * torch.randn(d, generator=g)
    enroll = {c: drift1 + u + torch.randn(k_enroll, d, generator=g) for c, u in own.items()}
    probe = {c: drift2 + u + torch.randn(d, generator=g) for c, u in own.items()}
    return enroll, probe


def test_persistent_client_signal_is_linked():
    enroll, probe = rounds()
    rep = update_linkage_attack(enroll, probe)
    assert rep.chance == pytest.approx(1 / 8)
    assert rep.accuracy == 1.0 and rep.eer <= 0.05
    assert rep.projected_dim == 1024 and rep.n_enroll_updates == 16 and rep.n_probes == 8
    # the shared drift hides identity from plain cosine; centring removes it
    assert rep.methods["centered_cosine"].accuracy >= rep.methods["cosine"].accuracy
    assert rep.methods["centered_cosine"].accuracy == 1.0
    json.dumps(rep.to_dict())


def test_no_client_signal_gives_chance():
    accs = [update_linkage_attack(*rounds(signal=0.0, seed=s)).methods["centered_cosine"].accuracy for s in range(4)]
    assert sum(accs) / len(accs) <= 0.4  # chance 1/8


def test_linkage_errors():
    enroll, probe = rounds(n_clients=3, d=50)
    with pytest.raises(ValueError, match="never enrolled"):
        update_linkage_attack({k: enroll[k] for k in ("c0", "c1")}, probe)
    with pytest.raises(ValueError, match="at least 2 enrolled"):
        update_linkage_attack({"c0": enroll["c0"]}, {"c0": probe["c0"]})
    with pytest.raises(ValueError, match="dim"):
        update_linkage_attack(enroll, {"c0": probe["c0"][:10]})
    bad = dict(enroll, c1=torch.full((50,), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        update_linkage_attack(bad, probe)
    with pytest.raises(TypeError, match="float tensor"):
        update_linkage_attack(dict(enroll, c1=torch.zeros(50, dtype=torch.long)), probe)


def slow_sketch(x, out_dim, seed):
    g = torch.Generator().manual_seed(seed)
    bucket = torch.randint(0, out_dim, (x.shape[1],), generator=g)
    sign = torch.randint(0, 2, (x.shape[1],), generator=g).float() * 2 - 1
    out = torch.zeros(x.shape[0], out_dim)
    for r in range(x.shape[0]):
        for i in range(x.shape[1]):
            out[r, bucket[i]] += sign[i] * x[r, i]
    return out


def test_count_sketch_matches_slow_definition_and_preserves_norms():
    x = torch.randn(2, 300)
    assert torch.allclose(count_sketch(x, 16, seed=3), slow_sketch(x, 16, 3), atol=1e-5)
    assert torch.equal(count_sketch(x, 400), x)  # short vectors pass through
    big = torch.randn(3, 20000)
    z = count_sketch(big, 1024, seed=0)
    ratio = z.norm(dim=1) ** 2 / big.norm(dim=1) ** 2
    assert torch.all((ratio > 0.8) & (ratio < 1.2)), ratio  # relative std ~ sqrt(2/1024)
    with pytest.raises(ValueError, match="out_dim"):
        count_sketch(x, 0)


def test_stack_updates_shapes_and_owners():
    x, owners = stack_updates({"b": torch.zeros(2, 3), "a": torch.ones(3)}, "t")
    assert x.shape == (3, 3) and owners == ["a", "b", "b"]
    with pytest.raises(ValueError, match="no updates"):
        stack_updates({}, "t")
