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
