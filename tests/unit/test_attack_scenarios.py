"""VoicePrivacy scenarios: ignorant / lazy-informed / semi-informed attackers."""

import pytest
import torch

from speechfl.attackers import scenario_attacks
from speechfl.attackers.types import UtteranceSet


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead


def clusters(n_spk=12, n_utt=8, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames, spk, gen, utt = [], [], [], []
    for s in range(n_spk):
        mu = 1.5 * torch.randn(d, generator=g)
        for u in range(n_utt):
            frames.append(mu + 2.0 * torch.randn(int(torch.randint(30, 60, (1,), generator=g)), d, generator=g))
            spk.append(f"s{s:02d}")
            gen.append("F" if s % 2 else "M")
            utt.append(f"s{s:02d}-{u}")
    return UtteranceSet(frames, spk, gen, utt)


def transformed(data, fn):
    return UtteranceSet([fn(f) for f in data.frames], list(data.spk_ids), list(data.genders), list(data.utt_ids))


def test_invertible_protection_fools_only_uninformed_attackers():
    base = clusters()
    q, _ = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(5)))
    prot = transformed(base, lambda f: f @ q)  # a secret rotation: no information is removed
    out = scenario_attacks(base, prot, families=("linear",), progress=False)
    assert set(out) == {"ignorant", "lazy_informed", "semi_informed"}
    semi, ign, lazy = (out[k].families["linear"] for k in ("semi_informed", "ignorant", "lazy_informed"))
    assert semi.top1 >= 0.9 and semi.eer <= 0.1
    assert ign.top1 <= semi.top1 - 0.4  # the baseline-trained attacker is lost in the rotated space
    assert lazy.top1 == ign.top1  # same trained attacker, same protected test utterances
    # ignorant verification compares baseline enrolment with rotated trials: near chance
    assert ign.eer >= 0.25


def test_no_protection_makes_all_scenarios_equal():
    base = clusters()
    same = transformed(base, lambda f: f.clone())
    out = scenario_attacks(base, same, families=("linear",), progress=False)
    r = {k: v.families["linear"] for k, v in out.items()}
    assert r["ignorant"].top1 == r["lazy_informed"].top1 == r["semi_informed"].top1
    assert r["lazy_informed"].eer == pytest.approx(r["semi_informed"].eer)
    # ignorant scores every ordered cross pair (i != j): same scores, counted twice
    assert out["ignorant"].n_target_trials == 2 * out["semi_informed"].n_target_trials
    assert r["ignorant"].eer == pytest.approx(r["semi_informed"].eer)


def test_scenario_input_errors():
    base = clusters(n_spk=6, n_utt=3)
    with pytest.raises(ValueError, match="dims must match"):
        scenario_attacks(base, transformed(base, lambda f: f[:, :8]), progress=False)
    shuffled = base.subset(list(reversed(range(len(base)))))
    with pytest.raises(ValueError, match="utt_ids differ at position 0"):
        scenario_attacks(base, shuffled, progress=False)
