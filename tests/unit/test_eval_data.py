"""Roles of attacked utterances when splits overlap or are missing: each utterance once, overlap reported."""

import pytest

from speechfl.experiment.eval_data import assign_roles, cap_per_speaker, membership_sets


def rows(spk_utts):
    return [{"ID": f"{s}-{u}", "spk_id": s, "gender": "M"} for s, n in spk_utts for u in range(n)]


def test_valid_pointed_at_test_split_is_deduplicated_and_reported():
    train, test = rows([("a", 3), ("b", 3)]), rows([("c", 4), ("d", 2)])
    r = assign_roles({"train": train, "valid": test, "test": test})
    assert [x["ID"] for x in r.rows["valid"]] == [x["ID"] for x in test] and r.rows["test"] == []
    assert r.n_duplicates == {"train": 0, "valid": 0, "test": 6}
    assert "6 of the 6 test utterances are also valid utterances" in r.notes["duplicates/test"]
    assert r.role_of["c-0"] == "valid" and r.role_of["a-0"] == "train"
    assert r.shared_speakers == {"valid/test": ["c", "d"]}
    d = r.to_dict()
    assert d["n_utterances"] == {"train": 6, "valid": 6, "test": 0} and d["n_duplicates"]["test"] == 6


def test_test_split_equal_to_train_leaves_only_dev_non_members():
    train, dev = rows([("a", 4), ("b", 4)]), rows([("c", 4)])
    r = assign_roles({"train": train, "valid": dev, "test": train})
    members, nonmembers = membership_sets(r, 2)
    assert members == ["a-0", "a-1", "b-0", "b-1"] and nonmembers == ["c-0", "c-1"]
    assert "missing/test" not in r.notes and r.n_duplicates["test"] == 8


def test_missing_roles_and_shared_speakers_across_train_and_test():
    train = rows([("a", 3)])
    test = [{"ID": "a-9", "spk_id": "a", "gender": "M"}]
    r = assign_roles({"train": train, "test": test})
    assert r.notes["missing/valid"] == "no valid utterances"
    assert "1 speakers appear in both train and test" in r.notes["shared_speakers/train/test"]
    members, nonmembers = membership_sets(r, 5)
    assert nonmembers == ["a-9"] and "a-9" not in members


@pytest.mark.parametrize("cap,expect", [(1, ["a-0", "b-0"]), (2, ["a-0", "a-1", "b-0", "b-1"])])
def test_cap_per_speaker(cap, expect):
    assert cap_per_speaker(list(reversed(rows([("b", 3), ("a", 2)]))), cap) == expect
