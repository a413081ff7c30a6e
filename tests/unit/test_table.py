"""The sweep table: values read from results.json documents, n/a with reasons, CSV and Markdown."""

import csv
import io

import pytest

from speechfl.experiment.table import (COLUMN_KEYS, COLUMNS, NA, Table, extract_row, format_value, rows_from, to_csv,
                                      to_markdown)


def evaluated_results():
    """A federated run with DP, malicious clients, backdoor and a full evaluation (hand-made)."""
    return {
        "kind": "federated",
        "test": {"wer": 42.5, "cer": 20.25, "by_group": {"gender": {"F": {"wer": 50.0}, "M": {"wer": 35.0}}}},
        "communication": {"bytes_up_total": 2_500_000},
        "client_seconds_per_round": 3.5,
        "rounds": [{"round": 1, "epsilon_sample_max": 1.5}, {"round": 2, "epsilon_sample_max": 2.25}],
        "privacy_budget": {"user_level_epsilon": 7.0, "delta": 1e-3},
        "attack": {"malicious_clients": ["1"], "data_attack": {"name": "audio_backdoor"},
                   "backdoor_success": {"success_rate": 0.125, "cer_to_target": 30.0, "n_triggered": 8,
                                        "target_text": "OPEN THE DOOR"}},
        "fairness": {"gender": {"gap_abs": 15.0, "worst_group": "F"},
                     "individual": {"mean": 40.0, "std": 4.0}},
        "privacy": {
            "representations": {"strongest": {"family": "mlp", "top1": 0.4, "chance": 0.05, "eer": 0.2}},
            "fbank": {"strongest": {"family": "xvector", "top1": 0.9, "chance": 0.05, "eer": 0.05}},
            "linkage": {"accuracy": 0.75, "chance": 0.25, "eer": 0.3},
            "source_inference": {"skipped": "fewer than two recorded clients"},
            "membership": {"auc": 0.55, "tpr_at_1fpr": 0.02},
            "reconstruction": {"labels": {"recorded": {"f1": 0.875}},
                               "local_model": {"recorded": {"footprint_eer": 0.25}}},
        },
    }


def test_full_results_fill_every_column_with_the_hand_computed_value():
    row = extract_row("cell", {"axis": "v"}, "done", evaluated_results())
    v = row.values
    assert set(v) == set(COLUMN_KEYS)
    assert (v["test_wer"], v["test_cer"], v["wer_gap_fm"], v["worst_group"]) == (42.5, 20.25, 15.0, "F")
    assert v["spk_wer_std"] == 4.0
    assert (v["attacker_family"], v["attacker_top1"], v["attacker_chance"], v["attacker_eer"]) == ("mlp", 0.4, 0.05,
                                                                                                   0.2)
    assert v["fbank_top1"] == 0.9 and v["linkage_acc"] == 0.75 and v["membership_auc"] == 0.55
    assert v["source_inf_acc"] == NA("skipped: fewer than two recorded clients")
    assert v["wer_under_attack"] == 42.5 and v["backdoor_success"] == 0.125
    assert v["uplink_mb"] == pytest.approx(2.5) and v["client_s_per_round"] == 3.5
    assert v["epsilon_user"] == 7.0 and v["epsilon_sample"] == 2.25  # max over rounds
    assert row.kind == "federated" and row.status == "done" and row.axes == {"axis": "v"}


def test_unevaluated_run_without_threats_says_why_each_value_is_missing():
    res = {"kind": "federated", "test": {"wer": 10.0, "cer": 5.0, "by_group": {"gender": {
        "F": {"wer": 12.0}, "M": {"wer": 9.0}}}}, "communication": {"bytes_up_total": 1_000_000},
        "client_seconds_per_round": 1.0, "rounds": [{"round": 1}]}
    v = extract_row("c", {}, "trained", res).values
    assert v["wer_gap_fm"] == pytest.approx(3.0) and v["worst_group"] == "F"  # fallback from test.by_group
    assert v["spk_wer_std"] == NA("not evaluated") and v["attacker_top1"] == NA("not evaluated")
    assert v["wer_under_attack"] == NA("no attack") and v["backdoor_success"] == NA("no attack")
    assert v["epsilon_user"] == NA("no user-level DP") and v["epsilon_sample"] == NA("no sample-level DP")


def test_one_gender_test_set_and_centralized_run():
    res = {"kind": "centralized", "test": {"wer": 10.0, "cer": 5.0, "by_group": {"gender": {"M": {"wer": 10.0}}}},
           "communication": {"bytes_up_total": 5}, "fairness": {"gender": {
               "gap_abs": None, "worst_group": "M", "note": "needs F and M test speakers, have ['M']"}}}
    v = extract_row("central", {}, "done", res).values
    assert v["wer_gap_fm"] == NA("needs F and M test speakers, have ['M']")
    assert v["uplink_mb"] == NA("centralized: no uplink")
    v2 = extract_row("c", {}, "trained", {"test": res["test"]}).values
    assert v2["wer_gap_fm"] == NA("test set has genders ['M'] only")


def test_failed_cell_and_malformed_sections_never_crash():
    failed = extract_row("bad", {}, "failed", None, "run failed")
    assert all(val == NA("run failed") for val in failed.values.values())
    odd = extract_row("odd", {}, "done", {"test": "garbage", "fairness": {"gender": "x"},
                                          "privacy": {"linkage": ["not", "a", "dict"]},
                                          "rounds": [{"epsilon_sample_max": None}]})
    assert odd.values["test_wer"] == NA("no test result")
    assert odd.values["linkage_acc"] == NA("no linkage result")
    assert all(isinstance(val, (NA, float, int, str)) for val in odd.values.values())


def _table():
    return Table(axes=["defense"], rows=[extract_row("dp", {"defense": "dp"}, "done", evaluated_results()),
                                         extract_row("x", {"defense": "none"}, "failed", None, "run failed")])


def test_csv_round_trips_numbers_and_marks_na_with_reason():
    rows = list(csv.DictReader(io.StringIO(to_csv(_table()))))
    assert len(rows) == 2
    assert list(rows[0])[:4] == ["cell", "defense", "kind", "status"] and list(rows[0])[4:] == list(COLUMN_KEYS)
    assert float(rows[0]["test_wer"]) == 42.5 and float(rows[0]["uplink_mb"]) == 2.5
    assert float(rows[0]["charset_f1"]) == 0.875 and float(rows[0]["footprint_eer"]) == 0.25
    assert rows[0]["source_inf_acc"] == "n/a: skipped: fewer than two recorded clients"
    assert rows[1]["status"] == "failed" and rows[1]["test_wer"] == "n/a: run failed"


def test_markdown_has_one_cell_per_column_and_numbered_na_notes():
    md = to_markdown(_table(), marks={"dp": "*"})
    lines = md.splitlines()
    n_cols = 3 + len(COLUMNS)
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 4
    assert all(line.count(" | ") == n_cols - 1 for line in table_lines if not line.startswith("|---"))
    assert "| dp * | dp | done | 42.50 | 20.25 | +15.00 |" in md
    assert "- [1] skipped: fewer than two recorded clients" in md and "- [2] run failed" in md
    assert table_lines[3].count("n/a[2]") == len(COLUMNS)


def test_format_value_uses_the_column_format_and_rejects_unknown_columns():
    assert format_value(0.12345, "attacker_top1") == "0.123"
    assert format_value(NA("no DP"), "epsilon_user") == "n/a: no DP"
    with pytest.raises(KeyError, match="valid columns"):
        format_value(1.0, "nope")


def test_rows_from_index_entries_mark_failed_and_unevaluated_cells():
    trained = {"kind": "federated", "test": {"wer": 10.0, "cer": 5.0}}
    entries = [{"name": "a", "axes": {"x": "1"}, "status": "evaluate failed", "dir": "a"},
               {"name": "b", "axes": {}, "status": "failed", "dir": "b"},
               {"name": "c", "axes": {}, "status": "pending", "dir": "c"}]
    rows = rows_from(entries, lambda e: trained if e["name"] == "a" else None)
    assert [r.status for r in rows] == ["evaluate failed", "failed", "pending"]
    assert rows[0].values["test_wer"] == 10.0 and rows[0].values["attacker_top1"] == NA("evaluation failed")
    assert rows[0].values["epsilon_user"] == NA("no user-level DP")
    assert rows[1].values["test_wer"] == NA("run failed") and rows[2].values["test_wer"] == NA("no results yet")


def test_backdoor_and_individual_fairness_are_read_from_the_written_shapes():
    """The writer's shapes (results.BackdoorResult, evaluate's flat individual WER), never a dict printed as text."""
    from speechfl.experiment.results import AttackSection, BackdoorResult

    attack = AttackSection(["2"], data_attack={"name": "audio_backdoor"},
                           backdoor_success=BackdoorResult(0.5, 10.0, 4, "YES")).to_dict()
    v = extract_row("c", {}, "done", {"test": {"wer": 1.0, "cer": 1.0}, "attack": attack,
                                      "fairness": {"individual": {"mean": 3.0, "std": 1.5}}}).values
    assert v["backdoor_success"] == 0.5 and v["spk_wer_std"] == 1.5
    bad = extract_row("c", {}, "done", {"attack": {"malicious_clients": [], "backdoor_success": {"rate": 1}}}).values
    assert bad["backdoor_success"] == NA("unreadable (ResultsError)")
    assert extract_row("c", {}, "done", {"attack": {"malicious_clients": ["1"]}}).values["backdoor_success"] == \
        NA("no backdoor configured")
