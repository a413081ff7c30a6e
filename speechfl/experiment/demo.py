"""``speechfl demo`` (= ``make demo``): a small sweep that shows every pillar, evaluated and reported.

Runs ``recipes/grids/demo.yaml``: FedAvg baseline, scaled sign with error feedback,
speaker adversaries (gradient reversal), user-level DP (DP-FedAvg), a
robust aggregator under 20% sign-flipping clients, and the centralized
reference, on a small embedded synthetic corpus (generated first if absent).
Each cell is trained, attacked by the evaluation attackers, and the report
(HTML + Markdown + PNG) is written to ``OUT/report``. Rerunning resumes: the
corpus and finished cells are reused.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from speechfl.experiment.report import ReportFiles, write_report
from speechfl.experiment.sweep import Grid, SweepResult, load_grid, run_sweep

DEMO_GRID = Path(__file__).resolve().parents[2] / "recipes" / "grids" / "demo.yaml"
DEFAULT_OUT = "demo_out"


@dataclass
class DemoResult:
    sweep: SweepResult
    report: ReportFiles
    seconds: float


def ensure_corpus(grid: Grid, progress: bool = True) -> Path | None:
    """Generate the grid's embedded synthetic corpus (as its first cell configures it) if absent.

    Returns the corpus folder, or None when the grid names no ``synthetic`` corpus.
    """
    from data_prep.synthetic import generate_corpus
    from speechfl.experiment.hparams import load_hparams

    with tempfile.TemporaryDirectory() as tmp:  # output_folder is never written: only data keys are read
        hp = load_hparams(grid.base, [*grid.cells[0].overrides, f"--output_folder={tmp}"])
    syn = hp.get("synthetic")
    if not syn:
        return None
    return generate_corpus(hp["data_folder"], n_speakers=int(syn["speakers"]), n_utterances=int(syn["utterances"]),
                           seed=int(syn.get("seed", 0)), progress=progress)


def run_demo(out=DEFAULT_OUT, grid=DEMO_GRID, progress: bool = True) -> DemoResult:
    """Corpus -> sweep (train + evaluate every cell) -> report; returns what was written."""
    start = time.time()
    grid_path = Path(grid)
    if not grid_path.is_file():
        raise FileNotFoundError(f"demo grid {grid_path} not found: run the demo from a source checkout "
                                "(pip install -e .) or pass --grid")
    ensure_corpus(load_grid(grid_path), progress=progress)
    sweep = run_sweep(grid_path, out, progress=progress)
    report = write_report(sweep.out)
    return DemoResult(sweep=sweep, report=report, seconds=time.time() - start)
