"""What the speaker-attack figures rest on: real chance level, speaker and trial counts, bootstrap intervals."""

import json

import numpy as np
import pytest
import torch

from speechfl.attackers import speaker_attacks
from speechfl.attackers.intervals import eer_interval, top1_interval
from speechfl.attackers.types import UtteranceSet
from speechfl.attackers.verification import TrialScores
from speechfl.metrics.privacy import bootstrap_counts, eer

pytestmark = pytest.mark.usefixtures("one_thread")


def clusters(n_spk, n_utt=6, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames, spk, gen, utt = [], [], [], []
    for s in range(n_spk):
        mu = 1.5 * torch.randn(d, generator=g)
        for u in range(n_utt):
            frames.append(mu + 2.0 * torch.randn(30, d, generator=g))
            spk.append(f"s{s:02d}")
            gen.append("F" if s % 2 else "M")
            utt.append(f"s{s:02d}-{u}")
    return UtteranceSet(frames, spk, gen, utt)


def test_six_speakers_identification_is_among_four_so_chance_is_a_quarter():
    rep = speaker_attacks(clusters(6), families=("linear",), progress=False)
    fr = rep.families["linear"]
    assert rep.n_attack_speakers == 4 and rep.n_heldout_speakers == 2  # 2 of 6 held out for verification
    assert rep.chance == fr.chance == 0.25
    assert "chance 1/4 = 0.250" in rep.chance_note and "2 of 6 held out" in rep.chance_note
    assert fr.n_id_speakers == 4 and fr.n_eer_speakers == 2
    assert fr.n_target_trials == rep.n_target_trials == 2 * 6 * 5 // 2
    assert fr.n_nontarget_trials == 6 * 6
    assert fr.n_id_test == rep.n_id_test
    assert sum(g.n_id_speakers for g in fr.per_gender.values()) == 4
    assert sum(g.n_eer_speakers for g in fr.per_gender.values()) == 2
    assert rep.few_speakers and "few_speakers" in rep.notes
    d = json.loads(json.dumps(rep.to_dict()))
    ci = d["families"]["linear"]["top1_ci"]
    assert ci["unit"] == "speaker" and ci["n_units"] == 4 and ci["low"] <= fr.top1 <= ci["high"]


def test_many_speakers_not_flagged_and_intervals_bracket_the_point_values():
    rep = speaker_attacks(clusters(40, n_utt=4), families=("linear",), progress=False)
    fr = rep.families["linear"]
    assert not rep.few_speakers and "few_speakers" not in rep.notes
    assert fr.top1_ci.low <= fr.top1 <= fr.top1_ci.high
    assert fr.eer_ci.low <= fr.eer <= fr.eer_ci.high
    assert fr.eer_ci.n_units == rep.n_heldout_speakers and fr.eer_ci.n_valid == fr.eer_ci.n_boot


def test_top1_interval_matches_a_slow_resampling_of_utterance_lists():
    rng = np.random.default_rng(1)
    spk = [f"s{i}" for i in range(5) for _ in range(i + 2)]
    hit = rng.random(len(spk)) < 0.6
    ci = top1_interval(hit, spk, seed=7, n_boot=50)
    speakers = sorted(set(spk))
    vals = []
    for counts in bootstrap_counts(len(speakers), 50, 7):  # the same draws, recomputed the obvious way
        pooled = [h for s, c in zip(speakers, counts) for _ in range(c) for h, u in zip(hit, spk) if u == s]
        vals.append(sum(pooled) / len(pooled))
    lo, hi = np.quantile(vals, [0.025, 0.975])
    assert (ci.low, ci.high) == pytest.approx((lo, hi))
    assert ci.n_units == 5 and ci.n_valid == 50


def test_bootstrap_counts_draw_with_replacement():
    c = bootstrap_counts(4, 3, seed=0)
    rng = np.random.default_rng(0)
    expect = np.stack([np.bincount(rng.integers(0, 4, 4), minlength=4) for _ in range(3)])
    assert (c == expect).all() and (c.sum(axis=1) == 4).all()


def test_eer_interval_matches_slow_expansion_and_skips_single_speaker_draws():
    # 3 speakers: targets within a speaker, non-targets across
    tgt = np.array([0.9, 0.8, 0.4, 0.7])
    tgt_spk = np.array([[0, 0], [1, 1], [1, 1], [2, 2]])
    non = np.array([0.1, 0.5, 0.3, 0.85])
    non_spk = np.array([[0, 1], [0, 2], [1, 2], [1, 2]])
    ci = eer_interval(TrialScores(tgt, non, tgt_spk, non_spk), 3, seed=3, n_boot=40)
    vals = []
    for c in bootstrap_counts(3, 40, 3):
        t = [s for s, (a, _) in zip(tgt, tgt_spk) for _ in range(c[a])]
        n = [s for s, (a, b) in zip(non, non_spk) for _ in range(c[a] * c[b])]
        if t and n:
            vals.append(eer(t, n))
    assert ci.n_valid == len(vals) < 40  # draws of one speaker only have no non-target trial
    assert (ci.low, ci.high) == pytest.approx(tuple(np.quantile(vals, [0.025, 0.975])))


def test_eer_interval_needs_trial_speakers():
    with pytest.raises(ValueError, match="speaker indices"):
        eer_interval(TrialScores(np.ones(2), np.zeros(2)), 2)


def test_auc_interval_matches_slow_resampling_with_shared_speakers():
    from speechfl.attackers.intervals import auc_interval
    from speechfl.metrics.privacy import roc_auc

    m, m_spk = np.array([0.9, 0.7, 0.2, 0.6]), ["a", "a", "b", "c"]
    n, n_spk = np.array([0.3, 0.8, 0.1]), ["b", "d", "d"]  # b is on both sides (utterance-level)
    ci = auc_interval(m, n, m_spk, n_spk, seed=5, n_boot=60)
    units = ["a", "b", "c", "d"]
    vals = []
    for c in bootstrap_counts(4, 60, 5):
        w = dict(zip(units, c))
        mm = [s for s, u in zip(m, m_spk) for _ in range(w[u])]
        nn = [s for s, u in zip(n, n_spk) for _ in range(w[u])]
        if mm and nn:
            vals.append(roc_auc(mm, nn))
    assert ci.n_valid == len(vals) and ci.n_units == 4
    assert (ci.low, ci.high) == pytest.approx(tuple(np.quantile(vals, [0.025, 0.975])))


def test_membership_source_and_linkage_reports_carry_intervals():
    from speechfl.attackers.linkage import update_linkage_attack
    from speechfl.attackers.membership import membership_inference
    from speechfl.attackers.source_inference import source_inference

    rep = membership_inference([0.1, 0.2, 0.3, 0.15], [0.5, 0.6, 0.4], member_groups=["F"] * 4,
                               nonmember_groups=["F"] * 3, member_speakers=["a", "a", "b", "c"],
                               nonmember_speakers=["d", "e", "e"])
    u = rep.utterance["threshold"]
    assert u.n_speakers == 5 and u.auc_ci.low <= u.auc <= u.auc_ci.high == 1.0
    assert rep.speaker["threshold"].auc_ci.n_units == 5
    src = source_inference(torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.7, 0.1], [0.2, 0.3]]), torch.tensor([0, 1, 1, 1]),
                           client_ids=["x", "y"])
    assert src.accuracy_ci.n_units == 2 and src.accuracy_ci.unit == "client" and src.accuracy_ci.low <= src.accuracy <= src.accuracy_ci.high
    g = torch.Generator().manual_seed(0)
    own = {f"c{i}": torch.randn(50, generator=g) for i in range(4)}
    link = update_linkage_attack({c: u + 0.1 * torch.randn(50, generator=g) for c, u in own.items()},
                                 {c: u + 0.1 * torch.randn(50, generator=g) for c, u in own.items()})
    assert link.accuracy_ci.n_units == 4 and link.accuracy_ci.unit == "client"


def test_gender_report_auc_interval_over_speakers():
    from speechfl.attackers.gender import gender_attack

    data = clusters(8)
    rep = gender_attack(data, families=("lda",))
    assert rep.auc_ci.n_units == 8 and rep.auc_ci.low <= rep.auc <= rep.auc_ci.high
