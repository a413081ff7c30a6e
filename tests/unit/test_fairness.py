"""Fairness metrics against hand-computed tables."""

import json

import pytest

from speechfl.metrics.fairness import UttResult, distribution, gini, group_breakdown, group_fairness, individual_fairness


def utt(u, spk, gender, we, nw, ce=0, nc=10, **extra):
    return UttResult(u, spk, {"gender": gender, **extra}, we, nw, ce, nc)


# speaker a (F): 1/10 + 1/10 words -> 2/20; speaker b (F): 3/10; speaker c (M): 4/20; speaker d (M): 0/10
RESULTS = [
    utt("a1", "a", "F", 1, 10, 2, 40),
    utt("a2", "a", "F", 1, 10, 0, 40),
    utt("b1", "b", "F", 3, 10, 6, 40),
    utt("c1", "c", "M", 4, 20, 4, 80),
    utt("d1", "d", "M", 0, 10, 0, 40),
]


def test_group_fairness_hand_table():
    gf = group_fairness(RESULTS, "gender")
    # F: (1+1+3)/30 = 1/6; M: 4/30 = 2/15. CER F: 8/120, M: 4/120
    assert gf.groups["F"].wer == pytest.approx(1 / 6)
    assert gf.groups["M"].wer == pytest.approx(2 / 15)
    assert gf.groups["F"].cer == pytest.approx(8 / 120)
    assert gf.groups["M"].cer == pytest.approx(4 / 120)
    assert (gf.groups["F"].n_utts, gf.groups["F"].n_speakers) == (3, 2)
    assert gf.abs_gap == pytest.approx(1 / 6 - 2 / 15)
    assert gf.relative_gap == pytest.approx((1 / 6 - 2 / 15) / (2 / 15))
    assert gf.cer_abs_gap == pytest.approx(4 / 120)
    assert (gf.worst_group, gf.best_group) == ("F", "M")
    json.dumps(gf.to_dict())


def test_relative_gap_unbounded_is_none_with_reason():
    rs = [utt("x", "x", "F", 0, 5), utt("y", "y", "M", 1, 5)]
    gf = group_fairness(rs)
    assert gf.relative_gap is None and "unbounded" in gf.notes["relative_gap"]
    assert gf.abs_gap == pytest.approx(0.2)
    zero = group_fairness([utt("x", "x", "F", 0, 5), utt("y", "y", "M", 0, 5)])
    assert zero.relative_gap == 0.0


def test_other_attribute_and_missing_attribute_errors():
    rs = [utt("a", "a", "F", 1, 4, accent="us"), utt("b", "b", "M", 3, 4, accent="gb"), utt("c", "c", "M", 0, 4, accent="us")]
    gf = group_fairness(rs, "accent")
    assert gf.groups["us"].wer == pytest.approx(1 / 8) and gf.groups["gb"].wer == pytest.approx(3 / 4)
    assert set(gf.groups) == {"us", "gb"}  # no empty groups
    with pytest.raises(ValueError, match="absent from all results"):
        group_fairness(rs, "age")
    partial = rs + [utt("d", "d", "F", 0, 4)]
    with pytest.raises(ValueError, match="missing for 1 of 4"):
        group_fairness(partial, "accent")


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="no utterance results"):
        group_fairness([])
    with pytest.raises(ValueError, match="no reference words"):
        group_fairness([utt("a", "a", "F", 0, 0), utt("b", "b", "M", 1, 3)])
    with pytest.raises(ValueError, match="non-negative int"):
        group_fairness([utt("a", "a", "F", -1, 3)])


def test_individual_fairness_hand_table():
    ind = individual_fairness(RESULTS)
    wers = {"a": 0.1, "b": 0.3, "c": 0.2, "d": 0.0}
    assert ind.per_speaker_wer == pytest.approx(wers)
    assert ind.wer.mean == pytest.approx(0.15)
    # population std of (0.1, 0.3, 0.2, 0.0): var = (0.0025 + 0.0225 + 0.0025 + 0.0225) / 4 = 0.0125
    assert ind.wer.std == pytest.approx(0.0125 ** 0.5)
    # p90 with linear interpolation over sorted (0, .1, .2, .3): position 0.9 * 3 = 2.7 -> 0.27
    assert ind.wer.p90 == pytest.approx(0.27)
    assert ind.wer.max == pytest.approx(0.3)
    # Gini: sum |xi - xj| over ordered pairs = 2 * (0.1+0.2+0.3+0.1+0.2+0.1) = 2.0; / (2 * 16 * 0.15) = 0.41666
    assert ind.wer.gini == pytest.approx(2.0 / (2 * 16 * 0.15))
    json.dumps(ind.to_dict())


def test_gini_oracle_and_edges():
    import itertools

    xs = [0.3, 0.0, 0.7, 0.7, 0.1]
    slow = sum(abs(a - b) for a, b in itertools.product(xs, xs)) / (2 * len(xs) ** 2 * (sum(xs) / len(xs)))
    assert gini(xs) == pytest.approx(slow)
    assert gini([0.0, 0.0]) == 0.0
    assert gini([0.0, 0.0, 1.0]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        gini([-1.0, 1.0])
    with pytest.raises(ValueError):
        distribution([])


def test_group_breakdown():
    out = group_breakdown({"s1": 0.1, "s2": 0.3, "s3": 0.5}, {"s1": "F", "s2": "F", "s3": "M"})
    assert out["groups"]["F"] == {"n": 2, "mean": pytest.approx(0.2), "min": 0.1, "max": 0.3}
    assert out["abs_gap"] == pytest.approx(0.3)
    assert (out["max_group"], out["min_group"]) == ("M", "F")
    with pytest.raises(ValueError, match="no group"):
        group_breakdown({"s1": 0.1, "s9": 0.2}, {"s1": "F"})
    with pytest.raises(ValueError, match="at least one"):
        group_breakdown({}, {})
    with pytest.raises(ValueError, match="non-finite"):
        group_breakdown({"s1": float("nan")}, {"s1": "F"})
