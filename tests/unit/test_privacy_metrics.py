"""Privacy metrics against hand-computed cases and slow obvious oracles."""

import itertools

import numpy as np
import pytest
import torch

from speechfl.metrics.privacy import accuracy_and_chance, eer, eer_with_threshold, roc_auc, roc_curve, tpr_at_fpr


def slow_auc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def slow_eer(target, nontarget):
    """Brute force: scan a fine threshold grid, take the point where FPR and FNR are closest."""
    best = None
    for t in np.linspace(min(min(target), min(nontarget)) - 1, max(max(target), max(nontarget)) + 1, 20001):
        fpr = np.mean(np.asarray(nontarget) >= t)
        fnr = np.mean(np.asarray(target) < t)
        if best is None or abs(fpr - fnr) < best[0]:
            best = (abs(fpr - fnr), (fpr + fnr) / 2)
    return best[1]


def test_eer_hand_case_on_a_roc_point():
    # thresholds .9,.8,.7: (FPR, FNR) = (0, 2/3), (0, 1/3), (1/3, 1/3) -> EER = 1/3 at threshold 0.7
    e, thr = eer_with_threshold([0.9, 0.8, 0.4], [0.7, 0.3, 0.2])
    assert e == pytest.approx(1 / 3)
    assert thr == pytest.approx(0.7)


def test_eer_hand_case_interpolated_on_a_segment():
    # at t=.7: FPR 0, FNR 1/4; at t=.5: FPR 1/2, FNR 1/4 -> the segment crosses FPR = FNR at 1/4
    assert eer([0.9, 0.8, 0.7, 0.3], [0.5, 0.1]) == pytest.approx(0.25)


def test_eer_extremes():
    assert eer([2.0, 3.0], [0.0, 1.0]) == 0.0
    assert eer([0.0, 1.0], [2.0, 3.0]) == 1.0
    assert eer([1.0, 1.0], [1.0, 1.0]) == pytest.approx(0.5)


def test_eer_matches_brute_force_on_random_scores():
    rng = np.random.default_rng(0)
    tgt = rng.normal(1.0, 1.0, 40)
    non = rng.normal(0.0, 1.0, 60)
    assert eer(tgt, non) == pytest.approx(slow_eer(tgt, non), abs=0.02)


def test_roc_auc_matches_pairwise_oracle_with_ties():
    rng = np.random.default_rng(1)
    pos = rng.integers(0, 5, 30).astype(float)  # many ties
    neg = rng.integers(0, 4, 25).astype(float)
    assert roc_auc(pos, neg) == pytest.approx(slow_auc(pos, neg))
    assert roc_auc([3.0], [1.0, 2.0]) == 1.0
    assert roc_auc([1.0], [1.0]) == 0.5


def test_roc_curve_endpoints_and_torch_input():
    fpr, tpr, thr = roc_curve(torch.tensor([0.9, 0.1]), torch.tensor([0.5]))
    assert list(fpr) == [0.0, 0.0, 1.0, 1.0]
    assert list(tpr) == [0.0, 0.5, 0.5, 1.0]
    assert thr[0] == np.inf


def test_tpr_at_fpr_hand_case():
    pos = [0.95, 0.9, 0.6, 0.05]
    neg = [0.8] + [0.1] * 99  # 100 negatives: one false positive is exactly 1% FPR
    assert tpr_at_fpr(pos, neg, 0.01) == pytest.approx(0.75)  # threshold 0.6 accepts 0.8 (1 FP) and 3 positives
    assert tpr_at_fpr(pos, neg, 0.0) == pytest.approx(0.5)  # zero false positives: only 0.95 and 0.9
    with pytest.raises(ValueError, match="max_fpr"):
        tpr_at_fpr(pos, neg, 1.5)


@pytest.mark.parametrize(
    "pos, neg, match",
    [([], [1.0], "empty"), ([1.0, float("nan")], [0.0], "non-finite"), ([[1.0]], [0.0], "1-D")],
)
def test_bad_scores_raise_clear_errors(pos, neg, match):
    with pytest.raises(ValueError, match=match):
        eer(pos, neg)
    with pytest.raises(ValueError, match=match):
        roc_auc(pos, neg)


def test_accuracy_and_chance():
    assert accuracy_and_chance([0, 1, 2, 2], [0, 1, 1, 2], 4) == (0.75, 0.25)
    with pytest.raises(ValueError, match="equal length"):
        accuracy_and_chance([0, 1], [0], 2)


def test_weighted_eer_is_eer_of_repeated_trials_and_none_without_weight():
    from speechfl.metrics.privacy import weighted_eer

    t, n = np.array([0.9, 0.4, 0.6]), np.array([0.5, 0.1])
    assert weighted_eer(t, n, [2, 0, 1], [1, 3]) == eer([0.9, 0.9, 0.6], [0.5, 0.1, 0.1, 0.1])
    assert weighted_eer(t, n, [0, 0, 0], [1, 1]) is None


def test_speaker_bootstrap_ci_constant_statistic_and_errors():
    from speechfl.metrics.privacy import speaker_bootstrap_ci

    ci = speaker_bootstrap_ci(lambda c: 0.3, 4, n_boot=20, seed=0)
    assert (ci.low, ci.high, ci.n_valid, ci.n_units) == (pytest.approx(0.3), pytest.approx(0.3), 20, 4)
    assert speaker_bootstrap_ci(lambda c: 0.3, 1) is None  # one speaker: nothing to resample
    assert speaker_bootstrap_ci(lambda c: None, 5, n_boot=10) is None  # never defined
    with pytest.raises(ValueError, match="level"):
        speaker_bootstrap_ci(lambda c: 0.3, 4, level=1.5)
