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
