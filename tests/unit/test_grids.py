"""Every grid shipped under recipes/grids validates: keys, values and the composition of every cell."""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_compression_privacy import validate_cells  # noqa: E402


@pytest.mark.parametrize("grid", sorted((ROOT / "recipes" / "grids").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_grid_validates_every_cell(grid):
    g = validate_cells(grid)
    assert g.cells
    if grid.stem == "speaker_hiding":  # each engine's cells are evaluated against its undefended cell
        assert {c.name: g.baselines.get(c.name) for c in g.cells if c.axes["defense"] == "norm_vq48_init"} == {
            "engine-federated__defense-norm_vq48_init": "engine-federated__defense-none",
            "engine-centralized__defense-norm_vq48_init": "engine-centralized__defense-none"}


@pytest.mark.parametrize("jobs", [0, -1, 1.5, "2"])
def test_run_sweep_refuses_a_bad_job_count_before_loading_the_grid(jobs, tmp_path):
    from speechfl.experiment.sweep import GridError, run_sweep

    with pytest.raises(GridError, match=f"jobs must be a positive integer, got {jobs!r}"):
        run_sweep(tmp_path / "absent.yaml", tmp_path / "out", progress=False, jobs=jobs)
    assert not (tmp_path / "out").exists()  # nothing written
