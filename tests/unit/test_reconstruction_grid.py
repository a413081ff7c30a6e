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
    base = [c for c in grid.cells if "__seed-" not in c.name]
    assert len(base) == len(axes["compression"]) * len(axes["attack"]) == 36
    # the deciding cells are repeated under the extra seeds, for intervals over 3 seeds
    assert len(grid.cells) == 36 + len(spec["seeds"]["values"]) * len(spec["seeds"]["cells"])
    assert len({c.axes["seed"] for c in grid.cells}) == 1 + len(spec["seeds"]["values"]) >= 3
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
    spec.pop("seeds")
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(GridError, match=match):
        validate_cells(path)


def _row(comp, attack, cer, mb, seed=None, **threats):
    from speechfl.experiment.table import NA, Row

    values = {"test_cer": cer, "uplink_mb": mb, **threats}
    values.setdefault("linkage_acc", NA("skipped: test"))
    axes = {"compression": comp, "attack": attack, **({} if seed is None else {"seed": seed})}
    name = f"{comp}-{attack}" + ("" if seed in (None, "0") else f"__seed-{seed}")
    return Row(cell=name, axes=axes, kind="federated", status="done", values=values)


def test_mean_ci_matches_the_student_t_interval_by_hand():
    from bench_compression_privacy import mean_ci

    mean, hw = mean_ci([1.0, 2.0, 3.0])  # sd 1, n 3: t(0.975, 2) = 4.302653
    assert mean == pytest.approx(2.0) and hw == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-6)
    assert mean_ci([5.0]) == (5.0, None)


def test_seed_table_pairs_ratios_by_seed_and_pareto_uses_the_base_seed():
    from bench_compression_privacy import pareto_report, seed_table

    rows = [_row("fp32", "none", 30.0, 50.0, seed="0", membership_auc=0.8),
            _row("fp32", "none", 32.0, 50.0, seed="1", membership_auc=0.6),
            _row("fp32", "none", 34.0, 50.0, seed="2", membership_auc=0.7),
            _row("qsgd2", "none", 33.0, 5.0, seed="0", membership_auc=0.4),
            _row("qsgd2", "none", 99.0, 5.0, seed="1", membership_auc=0.3),
            _row("qsgd2", "none", 34.0, 5.0, seed="2", membership_auc=0.35),
            _row("fp16", "none", 30.0, 25.0, seed="0", membership_auc=0.8)]
    table = seed_table(rows, metrics=("membership_auc",))
    assert "| fp32 | none | 0,1,2 | membership_auc | 0.700 +- 0.248 | — |" in table  # sd 0.1: 4.3027 * 0.1 / 3**.5
    # qsgd2 / fp32 per seed: 0.5, 0.5, 0.5 -> 0.50 +- 0.00; fp16 has one seed: not in the table
    assert "| qsgd2 | none | 0,1,2 | membership_auc | 0.350 +- 0.124 | 0.50 +- 0.00 (3 seeds) |" in table
    assert "fp16" not in table
    # the base seed's qsgd2 (33 % CER, within +10 % of 30 %) wins; its seed-1 repeat (99 %) is not mixed in
    assert "membership_auc     none       qsgd2           0.400" in pareto_report(rows)


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
