"""Per-speaker privacy risk against a hand-built score matrix; who pays; the four-axis Pareto set."""

import numpy as np
import pytest
from scipy import stats

from speechfl.metrics.individual import (identification_ranks, individual_privacy, speaker_risks, tradeoff_pareto,
                                         tradeoff_point, who_pays)

# rows: probe utterances; columns: speakers A, B, C
S = np.array([[0.9, 0.1, 0.2],    # A, ranked 1st
              [0.5, 0.7, 0.1],    # A, B scores higher: rank 2
              [0.3, 0.8, 0.3],    # B, rank 1
              [0.6, 0.6, 0.9],    # B, C higher and A tied: rank 1 + 1 + 0.5 = 2.5
              [0.2, 0.4, 0.95]])  # C, rank 1
TRUE = np.array([0, 0, 1, 1, 2])


def test_ranks_by_hand():
    assert identification_ranks(S, TRUE).tolist() == [1.0, 2.0, 1.0, 2.5, 1.0]


def test_speaker_risks_by_hand():
    r = speaker_risks(S, TRUE, ["A", "B", "C"])
    # MRR: A (1 + 1/2)/2, B (1 + 1/2.5)/2, C 1
    assert (r["A"].mrr, r["B"].mrr, r["C"].mrr) == pytest.approx((0.75, 0.7, 1.0))
    assert (r["A"].top1, r["B"].top1, r["C"].top1) == (0.5, 0.5, 1.0)
    # column A: targets {0.9, 0.5}, non-targets {0.3, 0.6, 0.2}: ROC points (FPR, FNR) (0, .5), (1/3, .5), (1/3, 0)
    # cross the diagonal at FPR = 1/3; column B likewise; column C separates perfectly
    assert (r["A"].eer, r["B"].eer, r["C"].eer) == pytest.approx((1 / 3, 1 / 3, 0.0))
    # risk = max(MRR, 1 - 2 EER)
    assert (r["A"].risk, r["B"].risk, r["C"].risk) == pytest.approx((0.75, 0.7, 1.0))
    assert r["A"].n_utts == 2 and r["C"].n_utts == 1


def test_strongest_attacker_and_worst_case():
    weak = speaker_risks(np.array([[0.5, 0.6, 0.4], [0.4, 0.5, 0.6], [0.5, 0.4, 0.6], [0.6, 0.5, 0.4],
                                   [0.6, 0.5, 0.4]]), TRUE, ["A", "B", "C"])
    out = individual_privacy({"strong": speaker_risks(S, TRUE, ["A", "B", "C"]), "weak": weak})
    assert out.strongest_attacker == "strong"
    assert out.risk == pytest.approx({"A": 0.75, "B": 0.7, "C": 1.0})
    assert out.worst_case == {s: max(out.detail["strong"][s]["risk"], out.detail["weak"][s]["risk"])
                              for s in "ABC"}
    with pytest.raises(ValueError, match="different speakers"):
        individual_privacy({"a": {"A": weak["A"]}, "b": weak})


def test_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        identification_ranks(np.zeros(3), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="outside"):
        identification_ranks(S, np.array([0, 0, 1, 1, 3]))
    with pytest.raises(ValueError, match="NaN"):
        identification_ranks(np.where(S > 0.9, np.nan, S), TRUE)


def test_who_pays_by_hand_and_against_scipy():
    wer = {"A": 0.1, "B": 0.5, "C": 0.3, "D": 0.2, "E": 0.3}
    risk = {"A": 0.2, "B": 0.9, "C": 0.4, "D": 0.1, "E": 0.3, "Z": 1.0}  # Z has no WER: left out
    out = who_pays(wer, risk, groups={"A": "F", "B": "F", "C": "M", "D": "M", "E": "M"})
    assert out.n_speakers == 5 and out.worst_served == ["B"]
    assert out.risk_worst_served == 0.9 and out.risk_rest == pytest.approx((0.2 + 0.4 + 0.1 + 0.3) / 4)
    assert out.topk_overlap == 1.0
    w, p = [wer[s] for s in "ABCDE"], [risk[s] for s in "ABCDE"]
    assert out.pearson == pytest.approx(stats.pearsonr(w, p)[0])
    assert out.spearman == pytest.approx(stats.spearmanr(w, p)[0])  # C and E tie on WER: average ranks
    assert out.by_group["wer"]["groups"]["F"]["mean"] == pytest.approx(0.3)
    assert out.by_group["risk"]["max_group"] == "F"


def test_tradeoff_pareto_by_hand():
    a = tradeoff_point(mean_wer=0.3, group_wer={"F": 0.4, "M": 0.2}, attacker_success=0.8,
                       individual_risk={"s1": 0.9, "s2": 0.5})
    assert a == {"mean_wer": 0.3, "worst_group_wer": 0.4, "attacker_success": 0.8, "worst_individual_risk": 0.9}
    b = dict(a, worst_group_wer=0.35)            # dominates a
    c = dict(a, mean_wer=0.5, attacker_success=0.2)  # worse WER, better privacy: on the front
    d = dict(c, worst_individual_risk=0.95)       # dominated by c
    assert tradeoff_pareto({"a": a, "b": b, "c": c, "d": d}) == ["b", "c"]


def test_cosine_trials_by_hand():
    from speechfl.metrics.individual import cosine_trials

    emb = np.array([[1.0, 0], [2.0, 0.1], [0, 1.0], [0.1, 3.0], [5.0, 5.0]])
    scores, true, speakers, left = cosine_trials(emb, ["a", "a", "b", "b", "c"])
    assert speakers == ["a", "b"] and left == ["c"] and true.tolist() == [0, 1]
    # probes: a's 2nd utterance, b's 2nd; models: a = [1, 0], b = [0, 1]
    n1, n2 = np.hypot(2, 0.1), np.hypot(0.1, 3)
    np.testing.assert_allclose(scores, [[2 / n1, 0.1 / n1], [0.1 / n2, 3 / n2]])
    assert speaker_risks(scores, true, speakers)["a"].mrr == 1.0


def _toy_frames(offsets, n_frames=6, dim=4, seed=0):
    """One [n_frames, dim] utterance per offset: noise around the offset's direction."""
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n_frames, dim, generator=g) * 0.05 + torch.as_tensor(o, dtype=torch.float32)
            for o in offsets]


def test_trained_trials_fit_on_enrolment_and_score_the_probes():
    from speechfl.metrics.individual import trained_trials

    centre = {"a": [3.0, 0, 0, 0], "b": [0, 3.0, 0, 0], "c": [0, 0, 3.0, 0]}
    spk = ["a", "a", "b", "b", "c", "c", "a", "a", "b", "b", "c", "c", "d"]
    frames = _toy_frames([centre.get(s, [0, 0, 0, 3.0]) for s in spk])
    scores, true, speakers, left = trained_trials(frames, spk, "linear")
    assert speakers == ["a", "b", "c"] and left == ["d"]
    # probes are each speaker's odd positions: a: rows 1, 7; b: 3, 9; c: 5, 11
    assert true.tolist() == [0, 0, 1, 1, 2, 2] and scores.shape == (6, 3)
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0, rtol=1e-9)  # log-probabilities
    risks = speaker_risks(scores, true, speakers)
    assert all(r.top1 == 1.0 and r.eer == 0.0 and r.risk == 1.0 for r in risks.values())

    # a's probes made to look like b's enrolment: the attacker trained on enrolment only must now rank them
    # second or worse (a probe's own label is never seen in training)
    swapped = [f for f in frames]
    for i in (1, 7):
        swapped[i] = _toy_frames([centre["b"]], seed=i)[0]
    scores, true, speakers, _ = trained_trials(swapped, spk, "linear")
    ranks = identification_ranks(scores, true)
    assert (ranks[:2] > 1).all() and (ranks[2:] == 1).all()
    assert speaker_risks(scores, true, speakers)["a"].top1 == 0.0


def test_trained_trials_errors_name_the_problem():
    from speechfl.metrics.individual import trained_trials

    frames = _toy_frames([[1.0, 0, 0, 0]] * 4)
    with pytest.raises(ValueError, match="4 utterances but 3 speaker ids"):
        trained_trials(frames, ["a", "a", "b"], "linear")
    with pytest.raises(ValueError, match="two speakers with >= 2 utterances"):
        trained_trials(frames, ["a", "a", "a", "b"], "linear")
    with pytest.raises(Exception, match="no_such_family"):
        trained_trials(frames, ["a", "a", "b", "b"], "no_such_family")
