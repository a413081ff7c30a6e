"""The compression x privacy study grid: every cell is validated (keys and values) before anything runs."""

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_compression_privacy import COMPRESSORS, GRID, validate_cells  # noqa: E402

from speechfl.experiment.sweep import GridError  # noqa: E402


def test_every_study_cell_is_valid():
    grid = validate_cells(GRID)
    spec = yaml.safe_load(GRID.read_text())
    axes = spec["grid"]
    assert len(grid.cells) == len(axes["compression"]) * len(axes["attack"]) == 36
    # the study and the reconstruction benchmark cover the same compressors
    assert set(axes["compression"]) == set(COMPRESSORS)


@pytest.mark.parametrize("bad,match", [
    ('["--uplink={name: topk, fraction: 2.0}"]', "cell compression-bad__attack-none: uplink: topk: fraction"),
    ('["--uplink={name: nope}"]', "nope"),
])
def test_a_bad_cell_fails_validation_naming_it(tmp_path, bad, match):
    spec = yaml.safe_load(GRID.read_text())
    spec["base"] = str((GRID.parent / spec["base"]).resolve())
    spec["grid"] = {"compression": {"bad": yaml.safe_load(bad)}, "attack": {"none": []}}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(GridError, match=match):
        validate_cells(path)


def _row(comp, attack, cer, mb, **threats):
    from speechfl.experiment.table import NA, Row

    values = {"test_cer": cer, "uplink_mb": mb, **threats}
    values.setdefault("linkage_acc", NA("skipped: test"))
    return Row(cell=f"{comp}-{attack}", axes={"compression": comp, "attack": attack}, kind="federated",
               status="done", values=values)


def test_best_tradeoff_hand_picked():
    from bench_compression_privacy import best_tradeoff, pareto_report

    rows = [_row("fp32", "none", 30.0, 50.0, membership_auc=0.70),
            _row("fp16", "none", 30.5, 25.0, membership_auc=0.70),   # tie on the threat: fewer MB wins
            _row("sign_ef", "none", 32.0, 2.0, membership_auc=0.60),   # best within +10 % CER (33.0)
            _row("topk1_ef", "none", 60.0, 0.5, membership_auc=0.50)]  # lower threat but CER out of budget
    comp, value, rel, cer, mb = best_tradeoff(rows, "membership_auc", "none")
    assert (comp, value, cer, mb) == ("sign_ef", 0.60, 32.0, 2.0) and rel == pytest.approx(0.60 / 0.70)
    assert best_tradeoff(rows[:2], "membership_auc", "none")[0] == "fp16"
    assert "no fp32 cell" in best_tradeoff(rows[1:], "membership_auc", "none")
    assert "has linkage_acc" in best_tradeoff(rows, "linkage_acc", "none")
    report = pareto_report(rows)
    assert "membership_auc     none       sign_ef" in report and "linkage_acc" in report


def test_unknown_evaluate_argument_fails_validation(tmp_path):
    spec = yaml.safe_load(GRID.read_text())
    spec["base"] = str((GRID.parent / spec["base"]).resolve())
    spec["evaluate"] = {"attackers": ["linear"], "bogus": 1}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(GridError, match="unknown evaluate argument.*bogus"):
        validate_cells(path)
