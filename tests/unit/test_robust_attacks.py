"""Update attacks produce what their papers define; malicious-client selection is deterministic."""

import copy
import math
from statistics import NormalDist

import pytest
import torch

import speechfl.robustness as R
from speechfl.federated.update import UpdateRejected, validate_update
from speechfl.registry import RegistryError
from speechfl.robustness.attacks.adaptive import line_search
from speechfl.robustness.attacks.omniscient import alie_z

HONEST = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, 4.0]])  # mean (3, 4), sample std (2, 2)
OWN = torch.tensor([[1.0, -2.0], [0.5, 0.5]])


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_alie_uses_mean_and_std_of_honest():
    out = R.get_attack("alie", z=1.5)(HONEST, OWN, gen())
    assert torch.allclose(out, torch.tensor([[0.0, 1.0], [0.0, 1.0]]))  # (3, 4) - 1.5 * (2, 2)


def test_alie_default_z_from_n_and_f():
    # Baruch et al.: s = floor(n/2 + 1) - f, z = Phi^-1((n - s) / n)
    assert math.isclose(alie_z(20, 4), NormalDist().inv_cdf(13 / 20))  # s = 7
    assert math.isclose(alie_z(50, 24), NormalDist().inv_cdf(48 / 50))  # s = 2, z ~ 1.75
    assert abs(alie_z(50, 24) - 1.7507) < 1e-4
    honest = torch.randn(16, 5, generator=gen(1))
    out = R.get_attack("alie")(honest, torch.zeros(4, 5), gen())
    want = honest.mean(0) - alie_z(20, 4) * honest.std(0)
    assert torch.allclose(out, want.expand(4, 5))
    with pytest.raises(ValueError, match="pass z explicitly"):
        alie_z(10, 6)


def test_ipm_sign_flip_scaling():
    assert torch.allclose(R.get_attack("ipm", eps=0.5)(HONEST, OWN, gen()), torch.tensor([[-1.5, -2.0]] * 2))
    assert torch.equal(R.get_attack("sign_flip")(HONEST, OWN, gen()), -OWN)
    assert torch.equal(R.get_attack("sign_flip", scale=3.0)(HONEST, OWN, gen()), -3 * OWN)
    assert torch.equal(R.get_attack("scaling", factor=10.0)(HONEST, OWN, gen()), 10 * OWN)
    assert torch.equal(R.get_attack("scaling")(HONEST, OWN, gen()), 5 * OWN)  # gamma = n = 3 + 2


def test_gaussian_is_seeded_with_requested_moments():
    attack = R.get_attack("gaussian", mean=2.0, std=3.0)
    a = attack(HONEST[:, :1].expand(3, 20000), torch.zeros(2, 20000), gen(5))
    b = attack(HONEST[:, :1].expand(3, 20000), torch.zeros(2, 20000), gen(5))
    assert torch.equal(a, b)
    assert abs(float(a.mean()) - 2.0) < 0.05 and abs(float(a.std()) - 3.0) < 0.05


@pytest.mark.parametrize("value,fraction", [("nan", 1.0), ("inf", 0.25), ("-inf", 0.01)])
def test_nonfinite_is_rejected_by_validation(value, fraction):
    own = torch.randn(3, 400, generator=gen())
    out = R.get_attack("nonfinite", value=value, fraction=fraction)(HONEST[:, :1].expand(3, 400), own, gen())
    for row in out:
        assert int((~torch.isfinite(row)).sum()) == math.ceil(fraction * 400)
        with pytest.raises(UpdateRejected):
            validate_update(row, 400)


def test_mimic_copies_the_most_extreme_honest_client_along_the_top_direction():
    g = gen(2)
    u = torch.randn(30, generator=g)
    t = torch.tensor([-3.0, -1.0, 0.0, 1.0, 5.0, -2.0])
    honest = 7.0 + t[:, None] * u[None, :] + 0.01 * torch.randn(6, 30, generator=g)
    attack = R.get_attack("mimic")
    for _ in range(3):  # power iteration converges; row 4 (t = 5) is the most extreme along u
        out = attack(honest, torch.zeros(2, 30), gen(9))
    assert attack.last_target == 4 and torch.equal(out, honest[[4, 4]])
    assert set(attack.state_dict()) == {"direction"}
    fixed = R.get_attack("mimic", target=1)(honest, torch.zeros(3, 30), gen())
    assert torch.equal(fixed, honest[[1, 1, 1]])
    with pytest.raises(ValueError, match="only 6 honest"):
        R.get_attack("mimic", target=6)(honest, torch.zeros(1, 30), gen())


def test_line_search_finds_the_maximum():
    best = line_search(lambda c: -(c - 3.7) ** 2, evals=40, start=0.0, delta=1.0, ratio=0.8)
    assert abs(best - 3.7) < 0.05


def test_adaptive_attacks_beat_fixed_strength_and_leave_the_defense_untouched():
    honest = torch.randn(12, 8, generator=gen(3)) + 1.0
    cc = R.get_aggregator("centered_clipping", tau=2.0)
    cc(honest)
    center = cc.state_dict()["center"].clone()

    def damage(byz, defense):
        return float(torch.linalg.vector_norm(copy.deepcopy(defense)(torch.cat([honest, byz])) - honest.mean(0)))

    for name, fixed in (("alie_adaptive", R.get_attack("alie", z=1.0)), ("ipm_adaptive", R.get_attack("ipm"))):
        attack = R.get_attack(name, defense=cc, evals=15)
        byz = attack(honest, torch.zeros(3, 8), gen())
        assert damage(byz, cc) >= damage(fixed(honest, torch.zeros(3, 8), gen()), cc)
        assert torch.equal(cc.state_dict()["center"], center)
    spec = {"aggregator": {"name": "trimmed_mean", "f": 3}, "preaggregators": [{"name": "arc", "f": 3}]}
    attack = R.get_attack("ipm_adaptive", defense=spec, evals=5)
    assert attack(honest, torch.zeros(3, 8), gen()).shape == (3, 8) and attack.last_coefficient is not None


def test_attack_contract_errors():
    with pytest.raises(RegistryError, match="valid attacks: alie, alie_adaptive"):
        R.get_attack("lie")
    with pytest.raises(RegistryError, match="valid parameters: eps"):
        R.get_attack("ipm", tau=2.0)
    with pytest.raises(ValueError, match="d = 2, byzantine_own has d = 3"):
        R.get_attack("ipm")(HONEST, torch.zeros(1, 3), gen())
    with pytest.raises(ValueError, match="at least 2 honest"):
        R.get_attack("alie")(HONEST[:1], OWN, gen())
    with pytest.raises(TypeError, match="torch.Generator"):
        R.get_attack("ipm")(HONEST, OWN, 0)
    assert R.get_attack("ipm")(HONEST, OWN[:0], gen()).shape == (0, 2)
    with pytest.raises(ValueError, match="fraction must be in"):
        R.get_attack("nonfinite", fraction=1.5)


def test_select_malicious_is_deterministic_and_order_free():
    ids = [f"spk{i}" for i in range(20)]
    a = R.select_malicious(ids, count=4, seed=1)
    assert len(a) == 4 and a <= set(ids)
    assert R.select_malicious(list(reversed(ids)), count=4, seed=1) == a
    assert R.select_malicious(ids, fraction=0.2, seed=1) == a
    assert len(R.select_malicious(ids[:10], fraction=0.25, seed=0)) == 3  # 2.5 rounds half up
    assert R.select_malicious(ids, count=0) == set()
    assert len({frozenset(R.select_malicious(ids, count=4, seed=s)) for s in range(10)}) > 1
    with pytest.raises(ValueError, match="exactly one of count and fraction"):
        R.select_malicious(ids)
    with pytest.raises(ValueError, match="exactly one of count and fraction"):
        R.select_malicious(ids, count=2, fraction=0.1)
    with pytest.raises(ValueError, match=r"count must be an int in \[0, 20\]"):
        R.select_malicious(ids, count=21)
    with pytest.raises(ValueError, match="distinct"):
        R.select_malicious(["a", "a"], count=1)
