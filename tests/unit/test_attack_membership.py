"""Membership inference: hand-computed cases and a deliberately overfit model."""

import json

import numpy as np
import pytest
import torch

from speechfl.attackers import membership_inference


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead


def run(m, n, mg=None, ng=None, ms=None, ns=None, **kw):
    return membership_inference(
        m, n,
        member_groups=mg or ["F"] * len(m), nonmember_groups=ng or ["F"] * len(n),
        member_speakers=ms or [f"m{i}" for i in range(len(m))], nonmember_speakers=ns or [f"n{i}" for i in range(len(n))],
        **kw,
    )


def test_threshold_attack_hand_case():
    # attack score -loss: members (-0.1, -0.2, -0.9) vs non-members (-0.5, -1.0): 5 of 6 pairs ordered right
    rep = run([0.1, 0.2, 0.9], [0.5, 1.0])
    u = rep.utterance["threshold"]
    assert u.auc == pytest.approx(5 / 6)
    assert u.tpr_at_1pct_fpr == pytest.approx(2 / 3)  # threshold above -0.5: two members, no non-member
    assert u.advantage == pytest.approx(2 / 3)
    assert rep.utterance["calibrated"] is None and "no reference" in rep.notes["calibrated"]
    assert rep.strongest in ("utterance/threshold", "speaker/threshold")
    json.dumps(rep.to_dict())


def test_calibration_removes_per_utterance_difficulty():
    rng = np.random.default_rng(0)
    diff_m, diff_n = rng.uniform(0, 5, 200), rng.uniform(0, 5, 200)  # hard utterances have high loss anyway
    member = diff_m + rng.normal(0, 0.1, 200) - 0.5  # training lowered each member's loss by 0.5
    nonmember = diff_n + rng.normal(0, 0.1, 200)
    ref_m, ref_n = diff_m + rng.normal(0, 0.1, 200), diff_n + rng.normal(0, 0.1, 200)
    rep = run(member, nonmember, reference_member_scores=ref_m, reference_nonmember_scores=ref_n)
    assert rep.utterance["threshold"].auc < 0.65
    assert rep.utterance["calibrated"].auc > 0.95
    assert rep.strongest.endswith("/calibrated")


def test_speaker_level_and_groups():
    rep = run(
        [0.1, 0.3, 0.2, 0.9], [0.4, 0.8, 0.5],
        mg=["F", "F", "M", "M"], ng=["F", "M", "M"],
        ms=["a", "a", "b", "b"], ns=["c", "c", "d"],
    )
    # speaker means of -loss: a -0.2, b -0.55 vs c -0.6, d -0.5 -> pairs: a>c, a>d, b>c, b<d -> 3/4
    assert rep.speaker["threshold"].auc == pytest.approx(0.75)
    assert rep.speaker["threshold"].n_members == 2
    # group F: members (-0.1, -0.3) vs non-member (-0.4) -> 1.0; group M: (-0.2, -0.9) vs (-0.8, -0.5) -> 2/4
    assert rep.per_group["F"]["threshold"].auc == 1.0
    assert rep.per_group["M"]["threshold"].auc == pytest.approx(0.5)


def test_shared_speakers_and_one_sided_groups_are_none_with_reasons():
    rep = run([0.1, 0.2], [0.3, 0.4], mg=["F", "X"], ng=["F", "F"], ms=["a", "b"], ns=["a", "c"])
    assert rep.speaker["threshold"] is None and "both members and non-members" in rep.notes["speaker/threshold"]
    assert rep.per_group["X"]["threshold"] is None and "0 non-members" in rep.notes["per_group/X/threshold"]


def test_membership_input_errors():
    with pytest.raises(ValueError, match="both reference"):
        run([0.1], [0.2], reference_member_scores=[0.1])
    with pytest.raises(ValueError, match="member_groups has 1 entries for 2"):
        membership_inference([0.1, 0.2], [0.3], member_groups=["F"], nonmember_groups=["F"],
                             member_speakers=["a", "b"], nonmember_speakers=["c"])
    with pytest.raises(ValueError, match="non-finite"):
        run([0.1, float("nan")], [0.2])
    with pytest.raises(ValueError, match="empty"):
        run([], [0.2])


def test_overfit_model_is_detected():
    """An MLP memorises 40 random-label points; unseen points keep a high loss."""
    torch.manual_seed(0)
    x_in, y_in = torch.randn(40, 8), torch.randint(0, 4, (40,))
    x_out, y_out = torch.randn(40, 8), torch.randint(0, 4, (40,))
    model = torch.nn.Sequential(torch.nn.Linear(8, 128), torch.nn.ReLU(), torch.nn.Linear(128, 4))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x_in), y_in).backward()
        opt.step()
    with torch.no_grad():
        loss_in = torch.nn.functional.cross_entropy(model(x_in), y_in, reduction="none")
        loss_out = torch.nn.functional.cross_entropy(model(x_out), y_out, reduction="none")
    groups = ["F" if i % 2 else "M" for i in range(40)]
    rep = run(loss_in, loss_out, mg=groups, ng=groups)
    assert rep.utterance["threshold"].auc > 0.9
    assert rep.utterance["threshold"].advantage > 0.8
    assert all(rep.per_group[g]["threshold"].auc > 0.85 for g in ("F", "M"))
