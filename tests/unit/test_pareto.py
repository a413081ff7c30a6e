"""Pareto masks against hand-computed fronts and a brute-force oracle; views over table rows."""

import numpy as np
import pytest

from speechfl.experiment.pareto import PARETO_VIEWS, ParetoView, front_staircase, pareto_mask, pareto_view
from speechfl.experiment.table import COLUMN_KEYS, NA, Row


def brute_force_mask(points):
    pts = np.asarray(points, float)
    out = []
    for i, p in enumerate(pts):
        if np.isnan(p).any():
            out.append(False)
            continue
        dominated = False
        for j, q in enumerate(pts):
            if j == i or np.isnan(q).any():
                continue
            if all(q[k] <= p[k] for k in range(len(p))) and any(q[k] < p[k] for k in range(len(p))):
                dominated = True
        out.append(not dominated)
    return np.array(out)


def test_hand_computed_front_with_duplicates_and_nan():
    pts = [[1, 5], [2, 3], [3, 4], [4, 1], [2, 3], [np.nan, 0], [4, 2]]
    # [3,4] is dominated by [2,3]; [4,2] by [4,1]; the two [2,3] do not dominate each other.
    assert pareto_mask(pts).tolist() == [True, True, False, True, True, False, False]


def test_single_point_and_all_equal():
    assert pareto_mask([[3.0, 3.0]]).tolist() == [True]
    assert pareto_mask([[1, 1], [1, 1], [1, 1]]).tolist() == [True, True, True]
    assert pareto_mask(np.zeros((0, 2))).tolist() == []


@pytest.mark.parametrize("seed,k", [(0, 2), (1, 3), (2, 2), (3, 4)])
def test_matches_brute_force_oracle_with_ties(seed, k):
    rng = np.random.default_rng(seed)
    pts = rng.integers(0, 4, size=(25, k)).astype(float)  # small range: many ties
    pts[rng.random(25) < 0.1, 0] = np.nan
    np.testing.assert_array_equal(pareto_mask(pts), brute_force_mask(pts))


def test_bad_input_is_an_error():
    with pytest.raises(ValueError, match="2-D"):
        pareto_mask([1.0, 2.0])
    with pytest.raises(ValueError, match="infinite"):
        pareto_mask([[1.0, np.inf]])


def test_staircase_steps_right_then_down():
    stairs = front_staircase([4, 1, 2], [1, 5, 3])
    assert stairs.tolist() == [[1, 5], [2, 5], [2, 3], [4, 3], [4, 1]]


def _row(cell, kind="federated", **values):
    vals = {k: NA("unset") for k in COLUMN_KEYS}
    vals.update(values)
    return Row(cell, {}, kind, "done", vals)


def test_view_excludes_missing_values_and_keeps_centralized_out_of_the_front():
    view = next(v for v in PARETO_VIEWS if v.name == "wer_vs_attacker")
    rows = [
        _row("a", attacker_top1=0.5, test_wer=30.0),
        _row("b", attacker_top1=0.2, test_wer=40.0),
        _row("c", attacker_top1=0.6, test_wer=35.0),            # dominated by a
        _row("d", test_wer=10.0, attacker_top1=NA("not evaluated")),
        _row("central", kind="centralized", attacker_top1=0.1, test_wer=5.0),  # would dominate all
    ]
    res = pareto_view(rows, view)
    assert res.cells == ["a", "b", "c", "central"]
    assert res.optimal == [True, True, False, False]
    assert res.references == ["central"]
    assert res.missing == {"d": "not evaluated"}


def test_gap_view_minimises_the_absolute_gap():
    view = next(v for v in PARETO_VIEWS if v.name == "gap_vs_privacy")
    rows = [_row("neg", attacker_top1=0.3, wer_gap_fm=-5.0), _row("pos", attacker_top1=0.3, wer_gap_fm=3.0)]
    res = pareto_view(rows, view)
    assert res.y == [5.0, 3.0] and res.optimal == [False, True]


def test_every_view_names_real_columns():
    for v in PARETO_VIEWS:
        assert isinstance(v, ParetoView) and v.x_key in COLUMN_KEYS and v.y_key in COLUMN_KEYS


def test_permutation_invariance():
    rng = np.random.default_rng(7)
    pts = rng.random((12, 2))
    base = pareto_mask(pts)
    for _ in range(5):
        perm = rng.permutation(12)
        np.testing.assert_array_equal(pareto_mask(pts[perm]), base[perm])
