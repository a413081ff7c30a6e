"""The evaluation suite: privacy section with the strongest attacker per threat, fairness section."""

import json

import pytest
import torch

from speechfl.attackers import fairness_section, run_privacy_suite
from speechfl.attackers.suite import THREATS
from speechfl.attackers.types import UtteranceSet
from speechfl.metrics.fairness import UttResult


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead


def clusters(n_spk=12, n_utt=6, d=12, sep=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames, spk, gen, utt = [], [], [], []
    for s in range(n_spk):
        gender = "F" if s % 2 else "M"
        mu = sep * torch.randn(d, generator=g)
        mu[0] += 3.0 if gender == "F" else -3.0
        for u in range(n_utt):
            frames.append(mu + 2.0 * torch.randn(40, d, generator=g))
            spk.append(f"s{s:02d}")
            gen.append(gender)
            utt.append(f"s{s:02d}-{u}")
    return UtteranceSet(frames, spk, gen, utt)


def test_full_suite_names_strongest_per_threat_and_is_json():
    reps = clusters()
    fbank = clusters(d=20, seed=1)
    g = torch.Generator().manual_seed(0)
    own = {f"c{i}": torch.randn(300, generator=g) for i in range(4)}
    enroll = {c: u + 0.3 * torch.randn(300, generator=g) for c, u in own.items()}
    probe = {c: u + 0.3 * torch.randn(300, generator=g) for c, u in own.items()}
    genders = {"c0": "F", "c1": "M", "c2": "F", "c3": "M"}
    losses = torch.tensor([[0.1, 0.9, 0.8, 0.7], [0.9, 0.2, 0.8, 0.9], [0.5, 0.6, 0.1, 0.9], [0.5, 0.6, 0.7, 0.8]])
    mia = dict(member_scores=[0.1, 0.2, 0.3], nonmember_scores=[0.5, 0.6], member_groups=["F", "M", "F"],
               nonmember_groups=["F", "M"], member_speakers=["a", "b", "a"], nonmember_speakers=["c", "d"])
    rep = run_privacy_suite(
        representations=reps, fbank=fbank, linkage_enroll=enroll, linkage_probe=probe,
        client_updates=enroll, client_genders=genders, source_losses=losses, source_owner=torch.tensor([0, 1, 2, 3]),
        membership=mia, families=("linear",), progress=False,
    )
    d = rep.to_dict()
    json.dumps(d)
    assert set(d["strongest"]) == set(THREATS)
    assert all(d["strongest"][t] is not None for t in THREATS)
    assert d["strongest"]["speaker_identification"]["attacker"] == "linear"
    assert d["strongest"]["source_inference"]["value"] == pytest.approx(0.75)
    assert d["strongest"]["membership"]["value"] == 1.0
    assert d["scenarios"] is None and "baseline" in d["notes"]["scenarios"]
    assert d["fbank_speaker"]["best_top1"] >= 0.9  # the unprotected reference is attacked too
    assert d["update_linkage"]["accuracy"] == 1.0
    ran = {"speaker", "gender", "fbank_speaker", "fbank_gender", "update_linkage", "update_gender",
           "source_inference", "membership"}
    assert set(d["seconds"]) == ran and all(v >= 0 for v in d["seconds"].values())


def test_suite_with_nothing_given_is_all_none_with_reasons():
    rep = run_privacy_suite(progress=False)
    d = rep.to_dict()
    assert all(v is None for v in d["strongest"].values())
    assert set(d["notes"]) >= {"speaker", "fbank_speaker", "update_linkage", "source_inference", "membership"}
    assert d["seconds"] == {}  # nothing ran, nothing timed


def test_scenarios_are_in_the_strongest_pool():
    base = clusters()
    rep = run_privacy_suite(representations=base, baseline_representations=base, families=("linear",), progress=False)
    assert set(rep.scenarios) == {"ignorant", "lazy_informed", "semi_informed"}
    name = rep.strongest["speaker_identification"].attacker
    assert name in {"linear", "ignorant/linear", "lazy_informed/linear", "semi_informed/linear"}


def test_fairness_section_with_privacy_and_robustness():
    reps = clusters()
    priv = run_privacy_suite(representations=reps, families=("linear",), progress=False)
    results = [
        UttResult(u, s, {"gender": g, "accent": "us" if s < "s06" else "gb"}, 1 if g == "F" else 0, 5, 1, 20)
        for u, s, g in zip(reps.utt_ids, reps.spk_ids, reps.genders)
    ]
    results.append(UttResult("extra", "s00", {"gender": "M", "accent": "us", "age": "30"}, 0, 5, 0, 20))
    out = fairness_section(
        results, privacy=priv, exclusions={"c0": 0.5, "c1": 0.0}, exclusion_groups={"c0": "F", "c1": "M"}
    )
    json.dumps(out)
    assert set(out["groups"]) == {"accent", "gender"}
    assert out["groups"]["gender"]["groups"]["F"]["wer"] == pytest.approx(0.2)
    assert out["groups"]["gender"]["worst_group"] == "F"
    assert "only some" in out["notes"]["attribute/age"]
    assert out["privacy"]["family"] == "linear"
    assert set(out["privacy"]["speaker_top1_by_attribute"]) == {"accent", "gender"}
    assert out["robustness"]["exclusion_rate"]["max_group"] == "F"
    with pytest.raises(ValueError, match="exclusion_groups"):
        fairness_section(results, exclusions={"c0": 0.5})


def test_one_gender_corpus_skips_gender_attacks_with_reason_and_runs_the_rest():
    data = clusters()
    one = UtteranceSet(data.frames, data.spk_ids, ["M"] * len(data), data.utt_ids)
    rep = run_privacy_suite(representations=one, fbank=one, families=("linear",), progress=False)
    assert rep.speaker is not None and rep.fbank_speaker is not None  # speaker attacks ran
    assert rep.gender is None and rep.fbank_gender is None
    for k in ("gender", "fbank_gender"):
        assert rep.notes[k].startswith("skipped:") and "exactly 2 label values" in rep.notes[k]
    d = rep.to_dict()
    json.dumps(d)
    assert d["strongest"]["gender_inference"] is None and d["strongest"]["speaker_identification"] is not None
    assert "gender" not in d["seconds"]


def test_too_few_speakers_skips_speaker_attacks_but_a_bug_still_raises():
    data = clusters(n_spk=3)
    rep = run_privacy_suite(representations=data, families=("linear",), progress=False)
    assert rep.speaker is None and "at least 2 attack speakers" in rep.notes["speaker"]
    # malformed input is a bug, not a precondition: it raises
    bad = UtteranceSet(data.frames, data.spk_ids, data.genders, ["x"] * len(data))
    with pytest.raises(ValueError, match="duplicate utt_ids"):
        run_privacy_suite(representations=bad, families=("linear",), progress=False)


def test_membership_without_non_members_is_skipped_and_shared_speakers_are_a_caveat():
    mia = dict(member_scores=[0.1, 0.2], nonmember_scores=[], member_groups=["F", "M"], nonmember_groups=[],
               member_speakers=["a", "b"], nonmember_speakers=[])
    rep = run_privacy_suite(membership=mia, progress=False)
    assert rep.membership is None and "non-member utterances" in rep.notes["membership"]
    mia = dict(member_scores=[0.1, 0.2, 0.3], nonmember_scores=[0.5, 0.6], member_groups=["F", "M", "F"],
               nonmember_groups=["F", "M"], member_speakers=["a", "b", "a"], nonmember_speakers=["a", "c"])
    m = run_privacy_suite(membership=mia, progress=False).membership.to_dict()
    assert "utterance-level membership only" in m["notes"]["caveat"]
    assert (m["n_member_speakers"], m["n_nonmember_speakers"], m["n_shared_speakers"]) == (2, 2, 1)


def test_a_speaker_with_one_utterance_is_left_out_and_listed_not_fatal():
    data = clusters()
    keep = [i for i, u in enumerate(data.utt_ids) if not (data.spk_ids[i] == "s00" and not u.endswith("-0"))]
    rep = run_privacy_suite(representations=data.subset(keep), families=("linear",), progress=False)
    assert rep.speaker.excluded_speakers == ["s00"] and "excluded_speakers" in rep.speaker.notes
