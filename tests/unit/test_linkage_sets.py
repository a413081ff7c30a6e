"""evaluate helpers: which recorded updates the server-side attackers enrol and probe; client genders."""

import torch

from speechfl.experiment.evaluate import linkage_sets


def _rec(**updates):
    return {"updates": {c: torch.full((3,), float(v)) for c, v in updates.items()}}


def test_latest_update_probes_earlier_ones_enrol_and_singletons_are_distractors():
    recorded = [_rec(a=1, b=2), _rec(b=3, c=4), _rec(a=5, c=6)]
    enroll, probe, history = linkage_sets(recorded)
    assert sorted(probe) == ["a", "b", "c"] and sorted(enroll) == ["a", "b", "c"]
    assert torch.equal(probe["a"], torch.full((3,), 5.0)) and torch.equal(probe["b"], torch.full((3,), 3.0))
    assert enroll["a"].shape == (1, 3) and float(enroll["a"][0, 0]) == 1.0
    assert [float(u[0]) for u in history["c"]] == [4.0, 6.0]

    enroll, probe, _ = linkage_sets([_rec(a=1, b=2, c=3), _rec(d=4)])
    assert probe is None and enroll is None  # nobody seen twice: nothing to link


def test_clients_seen_once_stay_enrolled_as_distractors():
    enroll, probe, _ = linkage_sets([_rec(a=1, b=2, c=3), _rec(a=4)])
    assert sorted(enroll) == ["a", "b", "c"] and list(probe) == ["a"]
    assert enroll["b"].shape == (3,)


def test_client_gender_marks_mixed_clients_unknown():
    from speechfl.experiment.evaluate import _client_gender

    assert _client_gender({"a": ["F"], "b": ["F", "M"]}) == {"a": "F", "b": "unknown"}
    assert _client_gender({"b": ["F", "M"]}) is None


def test_update_gender_precondition_says_why_it_cannot_run():
    from speechfl.experiment.evaluate import _update_gender_precondition

    ups = {c: torch.zeros(3) for c in "abcd"}
    assert _update_gender_precondition(ups, {"a": "F", "b": "F", "c": "M", "d": "M"}) is None
    why = _update_gender_precondition(ups, {"a": "F", "b": "unknown", "c": "M", "d": "M"})
    assert "2 recorded single-gender clients" in why and "'F': 1" in why
    assert "single gender" in _update_gender_precondition(ups, None)
