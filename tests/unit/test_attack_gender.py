"""Gender inference from representations and from updates, on held-out speakers/clients."""

import json

import pytest
import torch

from speechfl.attackers import gender_attack, update_gender_attack
from speechfl.attackers.splits import grouped_folds
from speechfl.attackers.types import UtteranceSet


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead


def speakers(n_spk=12, n_utt=5, d=12, gender_shift=1.5, seed=0):
    """Frames = speaker mean + noise; female speakers' means are shifted along dim 0."""
    g = torch.Generator().manual_seed(seed)
    frames, spk, gen, utt = [], [], [], []
    for s in range(n_spk):
        gender = "F" if s % 2 else "M"
        mu = torch.randn(d, generator=g)
        mu[0] += gender_shift if gender == "F" else -gender_shift
        for u in range(n_utt):
            frames.append(mu + torch.randn(40, d, generator=g))
            spk.append(f"s{s}")
            gen.append(gender)
            utt.append(f"s{s}-{u}")
    return UtteranceSet(frames, spk, gen, utt)


def test_gender_leaks_from_representations():
    rep = gender_attack(speakers(n_spk=16, gender_shift=2.0))
    assert rep.accuracy >= 0.9 and rep.auc >= 0.95
    assert rep.chance == 0.5 and rep.unit == "utterance" and rep.positive_class == "F"
    assert rep.n_groups == 16 and rep.n_folds == 5
    assert set(rep.families) == {"linear", "lda", "mlp"}
    assert rep.auc == max(f.auc for f in rep.families.values())
    json.dumps(rep.to_dict())


def test_no_gender_information_gives_chance_auc():
    rep = gender_attack(speakers(n_spk=16, gender_shift=0.0))
    for f in rep.families.values():
        assert 0.2 <= f.auc <= 0.8, f.auc


def test_gender_attack_input_errors():
    data = speakers(n_spk=4)
    one_f = data.subset([i for i, s in enumerate(data.spk_ids) if s != "s3"])
    with pytest.raises(ValueError, match="at least 2"):
        gender_attack(one_f)
    three = UtteranceSet(data.frames, data.spk_ids, [("X" if s == "s0" else g) for s, g in zip(data.spk_ids, data.genders)], data.utt_ids)
    with pytest.raises(ValueError, match="exactly 2 label values"):
        gender_attack(three)
    with pytest.raises(ValueError, match="unknown gender attacker family"):
        gender_attack(speakers(), families=("svm",))


def test_unknown_gender_is_excluded_explicitly():
    data = speakers(n_spk=16, gender_shift=2.0)
    data.genders = ["unknown" if s in ("s0", "s1") else g for s, g in zip(data.spk_ids, data.genders)]
    rep = gender_attack(data)
    assert rep.n_items == 14 * 5 and rep.n_groups == 14
    assert rep.notes["excluded"] == "10 utterances labelled ['unknown'] were excluded"


def test_grouped_folds_never_split_a_group_and_stratify():
    groups = [f"g{i // 3}" for i in range(30)]  # 10 groups of 3 items
    labels = ["F" if (i // 3) % 2 else "M" for i in range(30)]
    folds = grouped_folds(groups, labels, 5, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(30))
    for f in folds:
        assert {labels[i] for i in f} == {"F", "M"}
        for g in {groups[i] for i in f}:
            assert all(groups[i] != g for other in folds if other is not f for i in other)


def update_vectors(n_clients=12, k=2, d=3000, signal=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(d, generator=g)
    updates, genders = {}, {}
    for c in range(n_clients):
        gender = "F" if c % 2 else "M"
        base = torch.randn(d, generator=g) + (signal if gender == "F" else -signal) * direction
        updates[f"c{c}"] = base + 0.5 * torch.randn(k, d, generator=g)
        genders[f"c{c}"] = gender
    return updates, genders


def test_gender_leaks_from_updates_after_sketching():
    updates, genders = update_vectors()
    rep = update_gender_attack(updates, genders)
    assert rep.unit == "update" and rep.n_items == 24 and rep.n_groups == 12
    assert rep.auc >= 0.9, rep.auc


def test_update_gender_errors():
    updates, genders = update_vectors(n_clients=4)
    with pytest.raises(ValueError, match="no gender given"):
        update_gender_attack(updates, {"c0": "M"})
    updates["c1"] = updates["c1"][:, :10]
    with pytest.raises(ValueError, match="update dim"):
        update_gender_attack(updates, genders)
