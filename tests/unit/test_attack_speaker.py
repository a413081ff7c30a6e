"""Speaker identification / verification attackers on Gaussian-cluster utterances."""

import json

import pytest
import torch

from speechfl.attackers import SPEAKER_ATTACKERS, speaker_attacks
from speechfl.attackers.splits import plan_speaker_split
from speechfl.attackers.types import UtteranceSet
from speechfl.attackers.verification import CosineBackend, trial_scores
from speechfl.registry import RegistryError

FAST = {"xvector": {"channels": 32, "emb_dim": 32, "epochs": 20, "crop": 40, "batch_size": 16}}


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead


def clusters(n_spk=12, n_utt=8, d=16, sep=1.5, noise=2.0, seed=0, informative=True):
    """Utterances whose frames are a speaker mean plus noise (``informative=False``: no speaker mean)."""
    g = torch.Generator().manual_seed(seed)
    frames, spk, gen, utt = [], [], [], []
    for s in range(n_spk):
        mu = torch.randn(d, generator=g) * sep if informative else torch.zeros(d)
        for u in range(n_utt):
            t = int(torch.randint(30, 60, (1,), generator=g))
            frames.append(mu + noise * torch.randn(t, d, generator=g))
            spk.append(f"s{s:02d}")
            gen.append("F" if s % 2 else "M")
            utt.append(f"s{s:02d}-{u}")
    return UtteranceSet(frames, spk, gen, utt)


@pytest.mark.parametrize("family", ["linear", "mlp", "xvector"])
def test_each_family_identifies_and_verifies_separable_speakers(family):
    rep = speaker_attacks(clusters(n_spk=20), families=(family,), family_params={k: v for k, v in FAST.items() if k == family}, progress=False)
    fr = rep.families[family]
    assert fr.top1 >= 0.9, fr.top1
    assert fr.eer <= 0.1, fr.eer
    assert fr.chance == pytest.approx(1 / rep.n_attack_speakers)
    assert set(fr.per_gender) == {"F", "M"}
    assert all(v.top1 is not None and v.eer is not None for v in fr.per_gender.values())
    json.dumps(rep.to_dict())


def test_no_speaker_information_gives_chance_level():
    rep = speaker_attacks(clusters(informative=False), families=("linear", "mlp"), progress=False)
    for fr in rep.families.values():
        assert fr.top1 <= 0.35, fr.top1  # chance is 1/8
        assert fr.eer >= 0.3, fr.eer


def test_report_shape_counts_and_strongest():
    data = clusters()
    rep = speaker_attacks(data, families=("linear", "mlp"), progress=False)
    assert rep.n_utts == 96 and rep.n_speakers == 12
    assert rep.n_attack_speakers + rep.n_heldout_speakers == 12
    assert rep.n_id_train + rep.n_id_test == 8 * rep.n_attack_speakers
    n_held = 8 * rep.n_heldout_speakers
    assert rep.n_target_trials + rep.n_nontarget_trials == n_held * (n_held - 1) // 2
    assert rep.n_target_trials == rep.n_heldout_speakers * 8 * 7 // 2
    assert rep.best_top1 == max(f.top1 for f in rep.families.values())
    assert rep.best_eer == min(f.eer for f in rep.families.values())
    assert rep.families[rep.strongest_verification].eer == rep.best_eer


def test_deterministic_with_seed():
    data = clusters()
    a = speaker_attacks(data, families=("linear", "mlp"), progress=False, seed=3).to_dict()
    b = speaker_attacks(data, families=("linear", "mlp"), progress=False, seed=3).to_dict()
    for r in (a, b):
        for f in r["families"].values():
            f.pop("seconds")
    assert a == b


def test_speaker_with_one_utterance_is_named_or_excluded_explicitly():
    data = clusters()
    keep = [i for i, u in enumerate(data.utt_ids) if not (u.startswith("s03-") and u != "s03-0")]
    short = data.subset(keep)
    with pytest.raises(ValueError, match=r"fewer than 2 utterances \(\['s03'\]\)"):
        speaker_attacks(short, families=("linear",), progress=False)
    rep = speaker_attacks(short, families=("linear",), progress=False, drop_singletons=True)
    assert rep.excluded_speakers == ["s03"] and "excluded" in rep.notes["excluded_speakers"]
    assert rep.n_attack_speakers + rep.n_heldout_speakers == 11


def test_too_few_speakers_and_bad_family_names():
    with pytest.raises(ValueError, match="at least 2 attack speakers and 2 held-out"):
        speaker_attacks(clusters(n_spk=3), families=("linear",), progress=False)
    with pytest.raises(RegistryError, match="valid speaker attackers: ecapa, linear, mlp, xvector"):
        speaker_attacks(clusters(), families=("svm",), progress=False)
    with pytest.raises(RegistryError, match="unknown parameter"):
        speaker_attacks(clusters(), families=("mlp",), family_params={"mlp": {"depth": 3}}, progress=False)
    with pytest.raises(ValueError, match="families not run"):
        speaker_attacks(clusters(), families=("linear",), family_params={"mlp": {}}, progress=False)
    with pytest.raises(ValueError, match="bad MLP settings"):
        SPEAKER_ATTACKERS.build("mlp", hidden=0)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: UtteranceSet([], [], [], []), "empty"),
        (lambda d: UtteranceSet(d.frames, d.spk_ids[:-1], d.genders, d.utt_ids), "spk_ids"),
        (lambda d: UtteranceSet(d.frames[:-1] + [torch.zeros(5, 3)], d.spk_ids, d.genders, d.utt_ids), "feature dim 3"),
        (lambda d: UtteranceSet(d.frames[:-1] + [torch.full((5, 16), float("nan"))], d.spk_ids, d.genders, d.utt_ids), "NaN"),
        (lambda d: UtteranceSet(d.frames[:-1] + [torch.zeros(0, 16)], d.spk_ids, d.genders, d.utt_ids), "zero frames"),
        (lambda d: UtteranceSet(d.frames[:-1] + [torch.zeros(16)], d.spk_ids, d.genders, d.utt_ids), r"\[T, D\]"),
        (lambda d: UtteranceSet(d.frames, d.spk_ids, d.genders, d.utt_ids[:-1] + [d.utt_ids[0]]), "duplicate"),
        (lambda d: UtteranceSet(d.frames, d.spk_ids, d.genders[:-1] + ["X"], d.utt_ids), "two gender labels"),
    ],
)
def test_utterance_set_validation(mutate, match):
    with pytest.raises((ValueError, TypeError), match=match):
        mutate(clusters(n_spk=4, n_utt=3)).validate()


def test_split_is_speaker_disjoint_and_gender_stratified():
    data = clusters(n_spk=20, n_utt=5)
    sp = plan_speaker_split(data.spk_ids, data.genders, heldout_frac=0.3, seed=1)
    assert not set(sp.attack_speakers) & set(sp.heldout_speakers)
    held_genders = [data.speaker_gender()[s] for s in sp.heldout_speakers]
    assert held_genders.count("F") == 3 and held_genders.count("M") == 3
    train_spk = {data.spk_ids[i] for i in sp.id_train}
    assert train_spk == set(sp.attack_speakers) == {data.spk_ids[i] for i in sp.id_test}
    assert not set(sp.id_train) & set(sp.id_test)
    assert {data.spk_ids[i] for i in sp.heldout} == set(sp.heldout_speakers)


def test_trial_pairs_same_set_and_cross():
    emb = torch.nn.functional.normalize(torch.randn(5, 3), dim=1)
    spk, gen = ["a", "a", "b", "b", "c"], ["F", "F", "M", "M", "M"]
    overall, per_g = trial_scores(emb, emb, spk, gen, same_set=True)
    assert (overall.target.size, overall.nontarget.size) == (2, 8)
    assert (per_g["M"].target.size, per_g["M"].nontarget.size) == (1, 2)
    assert (per_g["F"].target.size, per_g["F"].nontarget.size) == (1, 0)
    assert overall.target[0] == pytest.approx(float(emb[0] @ emb[1]))
    cross, _ = trial_scores(emb, emb, spk, gen, same_set=False)
    assert (cross.target.size, cross.nontarget.size) == (4, 16)


def test_lda_backend_finds_the_informative_direction():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(20)
    emb = torch.randn(120, 5, generator=g) * torch.tensor([0.1, 5.0, 5.0, 5.0, 5.0])
    emb[:, 0] += labels.float()  # only dim 0 separates classes; the others are loud noise
    be = CosineBackend.fit(emb, labels, lda_dim=1)
    z = (emb - be.mean) @ be.proj[:, 0]
    assert abs(torch.corrcoef(torch.stack([z, emb[:, 0]]))[0, 1]) > 0.95
