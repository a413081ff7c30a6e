"""Sweep a grid of experiments: ``speechfl sweep GRID.yaml --out DIR``.

Grid file (YAML)::

    base: recipes/LibriSpeech/ASR/federated/hparams/synthetic_fedavg.yaml  # relative to the grid file, else cwd
    overrides: ["--rounds=3", "--hidden=128"]      # applied to every cell
    grid:                                          # cartesian product of named axes, in file order
      compression: {none: [], topk_ef: ["--uplink={name: ef, inner: {name: topk, fraction: 0.01}}"]}
      defense: {none: [], dp_user: ["--dp_user={clip: 1.0, noise_multiplier: 0.5}"]}
    cells:                                         # optional explicit cells, run after the grid
      - {name: centralized, overrides: ["--engine=centralized"]}
    evaluate: {attackers: [linear, mlp]}           # optional keyword arguments of evaluate_run;
                                                   # false: no privacy/fairness evaluation
    seeds:                                         # optional: repeat some cells with other seeds
      values: [1, 2]                               #   (confidence intervals over seeds)
      cells: [compression-none__defense-none]      #   cell names or axis=value filters

A repeated cell is named ``<cell>__seed-<v>``, has the extra axis ``seed`` (the other
cells show the base file's seed there) and the override ``--seed=<v>`` last.

``evaluate.baseline_cell`` names, per cell, another cell of the grid whose trained model is
the VoicePrivacy baseline of the cell's evaluation (``evaluate_run(baseline=...)``: the
ignorant / lazy-informed / semi-informed scenarios), as a template on the cell's axes, e.g.
``"engine-{engine}__defense-none"``. A baseline cell is its own baseline (evaluated without
one); chains are refused. Baseline cells are trained first, and a cell waits for its own.

A cell's overrides are ``overrides`` + one value's list per axis (or the explicit
cell's list) + ``--output_folder=DIR/cells/<name>``; a later override of the same
key replaces an earlier one. The cell name is the slug ``axis-value__axis-value``
(or the explicit ``name``), so it is deterministic. Every key is checked against
the base file before anything runs.

Each cell runs via :func:`speechfl.experiment.run.run_federated`, then
:func:`speechfl.experiment.evaluate.evaluate_run`: in this process, or with ``jobs > 1``
in that many worker processes (spawned, ``threads`` torch threads each), a cell per
worker at a time; every cell is seeded by its own configuration, so results do not depend
on ``jobs``. A cell is *finished* when
its results.json exists and holds the ``privacy`` and ``fairness`` sections, or
its evaluation failed (``evaluate_error.txt``: delete it to evaluate again), or
evaluation is off; finished cells are skipped on a rerun. A cell whose training raises gets ``error.txt``
(the traceback) and status ``failed``, and the sweep goes on; a rerun retries it.
Training itself resumes from the cell's checkpoint. ``DIR/sweep.json`` (the
index, written atomically after every cell) and ``DIR/table.{csv,md}`` are
rewritten at the end.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import re
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

from speechfl.experiment.table import Table, rows_from, to_csv, to_markdown
from speechfl.io import atomic_write_json, atomic_write_text, read_json

logger = logging.getLogger(__name__)
GRID_KEYS = {"base", "overrides", "grid", "cells", "evaluate", "seeds"}
INDEX = "sweep.json"
STATUSES = ("pending", "failed", "trained", "evaluate failed", "done")


class GridError(ValueError):
    """A malformed grid file, or a sweep folder run with a different grid."""


def slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text)).strip("_.")
    if not s:
        raise GridError(f"name {text!r} has no usable characters for a folder name")
    return s


@dataclass(frozen=True)
class CellSpec:
    name: str
    axes: Dict[str, str]
    overrides: Tuple[str, ...]

    def overrides_seed(self, default):
        """The seed this cell runs with: its last ``--seed=`` override, else ``default``."""
        seeds = [o.split("=", 1)[1] for o in self.overrides if o.startswith("--seed=")]
        return int(yaml.safe_load(seeds[-1])) if seeds else default


@dataclass
class Grid:
    path: Path
    base: Path
    axes: List[str]
    cells: List[CellSpec]
    evaluate: Optional[dict]  # None: evaluation off
    baselines: Dict[str, str] = field(default_factory=dict)  # cell name -> its baseline cell's name (only cells that have another one)


def _override_list(value, where: str) -> List[str]:
    from speechfl.experiment.hparams import HparamsError, parse_overrides

    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GridError(f"{where} must be a list of '--key=value' strings, got {value!r}")
    try:
        parse_overrides(value)
    except HparamsError as exc:
        raise GridError(f"{where}: {exc}") from None
    return list(value)


def expand(axes: Dict[str, Dict[str, list]], common: List[str]) -> List[CellSpec]:
    """Cartesian product of the axes (file order, last axis fastest) as cells."""
    names = list(axes)
    values = [list(axes[a]) for a in names]
    cells = []
    for combo in itertools.product(*values) if names else []:
        overrides = list(common)
        for a, v in zip(names, combo):
            overrides += _override_list(axes[a][v], f"grid.{a}.{v}")
        cells.append(CellSpec("__".join(f"{slug(a)}-{slug(v)}" for a, v in zip(names, combo)),
                              dict(zip(names, map(str, combo))), tuple(overrides)))
    return cells


def load_grid(path) -> Grid:
    """Read and check a grid file (unknown keys, bad overrides, unknown hparams names, duplicate cells)."""
    from speechfl.experiment.hparams import HparamsError, apply_overrides, parse_overrides

    path = Path(path)
    if not path.is_file():
        raise GridError(f"grid file {path} does not exist")
    spec = yaml.safe_load(path.read_text()) or {}
    if not isinstance(spec, dict):
        raise GridError(f"{path}: a grid file is a mapping with keys {sorted(GRID_KEYS)}")
    unknown = sorted(set(spec) - GRID_KEYS)
    if unknown or "base" not in spec:
        raise GridError(f"{path}: unknown keys {unknown} or no 'base'; valid keys: {', '.join(sorted(GRID_KEYS))}")
    candidates = [path.parent / str(spec["base"]), Path(str(spec["base"]))]
    base = next((c.resolve() for c in candidates if c.is_file()), None)
    if base is None:
        raise GridError(f"{path}: base hparams {spec['base']!r} found neither next to the grid file nor in the cwd")
    common = _override_list(spec.get("overrides"), "overrides")
    axes = spec.get("grid") or {}
    if not isinstance(axes, dict) or not all(isinstance(v, dict) and v for v in axes.values()):
        raise GridError(f"{path}: 'grid' maps axis names to non-empty {{value name: [overrides]}} mappings")
    cells = expand(axes, common)
    for i, c in enumerate(spec.get("cells") or []):
        if not isinstance(c, dict) or set(c) - {"name", "overrides"} or "name" not in c:
            raise GridError(f"{path}: cells[{i}] must be {{name: ..., overrides: [...]}}, got {c!r}")
        cells.append(CellSpec(slug(c["name"]), {}, tuple(common + _override_list(c.get("overrides"), f"cells[{i}]"))))
    if not cells:
        raise GridError(f"{path}: the grid has no cells (give 'grid' axes or 'cells')")
    axis_names = list(axes)
    if spec.get("seeds") is not None:
        cells, axis_names = _seed_repeats(path, spec["seeds"], cells, axis_names, base)
    dupes = sorted({c.name for c in cells if [d.name for d in cells].count(c.name) > 1})
    if dupes:
        raise GridError(f"{path}: duplicate cell names {dupes}")
    text = base.read_text()
    for c in cells:
        try:
            apply_overrides(text, parse_overrides(c.overrides), where=str(base))
        except HparamsError as exc:
            raise GridError(f"{path}: cell {c.name}: {exc}") from None
    evaluate = spec.get("evaluate", {})
    if evaluate is False or evaluate is None:
        evaluate = None
    elif not isinstance(evaluate, dict):
        raise GridError(f"{path}: 'evaluate' is a mapping of evaluate_run arguments or false, got {evaluate!r}")
    baselines = {}
    if evaluate is not None and "baseline_cell" in evaluate:
        evaluate = dict(evaluate)
        baselines = _baseline_cells(path, evaluate.pop("baseline_cell"), cells, "baseline" in evaluate)
    return Grid(path=path.resolve(), base=base, axes=axis_names, cells=cells, evaluate=evaluate, baselines=baselines)


def _baseline_cells(path: Path, template, cells: List[CellSpec], has_baseline: bool) -> Dict[str, str]:
    """Cell name -> baseline cell name from the ``evaluate.baseline_cell`` template (cells that are their own
    baseline are left out)."""
    if has_baseline:
        raise GridError(f"{path}: evaluate has both 'baseline' (one run folder) and 'baseline_cell' (a cell per "
                        "cell); give one")
    if not isinstance(template, str) or not template:
        raise GridError(f"{path}: evaluate.baseline_cell is a cell-name template such as "
                        f"'engine-{{engine}}__defense-none', got {template!r}")
    names = {c.name for c in cells}
    out = {}
    for c in cells:
        try:
            name = template.format(**c.axes)
        except (KeyError, IndexError, ValueError) as exc:
            raise GridError(f"{path}: evaluate.baseline_cell {template!r} does not format with cell {c.name}'s axes "
                            f"{c.axes}: {exc!r}") from None
        if name not in names:
            raise GridError(f"{path}: evaluate.baseline_cell gives {name!r} for cell {c.name}, which is no cell of "
                            "the grid")
        if name != c.name:
            out[c.name] = name
    chained = sorted(n for n, b in out.items() if b in out)
    if chained:
        raise GridError(f"{path}: evaluate.baseline_cell: the baseline of {chained[0]} ({out[chained[0]]}) has a "
                        "baseline of its own; a baseline cell must be its own baseline")
    return out


def _seed_repeats(path: Path, seeds, cells: List[CellSpec], axis_names: List[str],
                  base: Path) -> Tuple[List[CellSpec], List[str]]:
    """``cells`` with a ``seed`` axis (the base file's seed) plus the repeats the ``seeds`` block asks for."""
    if not isinstance(seeds, dict) or set(seeds) != {"values", "cells"}:
        raise GridError(f"{path}: 'seeds' is {{values: [int, ...], cells: [cell names or axis=value filters]}}, "
                        f"got {seeds!r}")
    values, picks = seeds["values"], seeds["cells"]
    if (not isinstance(values, list) or not values or not all(isinstance(v, int) and not isinstance(v, bool)
                                                               for v in values) or len(set(values)) != len(values)):
        raise GridError(f"{path}: seeds.values must be a non-empty list of distinct integers, got {values!r}")
    if not isinstance(picks, list) or not picks or not all(isinstance(c, str) for c in picks):
        raise GridError(f"{path}: seeds.cells must be a non-empty list of cell names or axis=value filters, "
                        f"got {picks!r}")
    if "seed" in axis_names:
        raise GridError(f"{path}: 'seeds' adds the axis 'seed', which the grid already has")
    m = re.search(r"^seed:[ \t]*(-?\d+)[ \t]*(#.*)?$", base.read_text(), flags=re.MULTILINE)
    base_seed = int(m.group(1)) if m else None
    if base_seed is None:
        raise GridError(f"{path}: 'seeds' needs a 'seed' key in the base hparams {base}")
    chosen = _select(path, cells, picks)
    default = {c.name: str(c.overrides_seed(base_seed)) for c in cells}
    if any(int(default[n]) in values for n in chosen):
        raise GridError(f"{path}: seeds.values {values} repeat a seed some chosen cell already runs with")
    out = [CellSpec(c.name, {**c.axes, "seed": default[c.name]}, c.overrides) for c in cells]
    for v in values:
        out += [CellSpec(f"{c.name}__seed-{v}", {**c.axes, "seed": str(v)}, (*c.overrides, f"--seed={v}"))
                for c in cells if c.name in chosen]
    return out, [*axis_names, "seed"]


def _evaluator(kwargs: dict):
    """``evaluate_run`` with the grid's arguments checked, or None if that module is not installed."""
    try:
        from speechfl.experiment.evaluate import evaluate_run
    except ModuleNotFoundError as exc:
        if exc.name != "speechfl.experiment.evaluate":
            raise
        return None
    params = inspect.signature(evaluate_run).parameters
    bad = sorted(k for k in kwargs if k not in params or k in ("run_dir", "progress"))
    if bad:
        raise GridError(f"unknown evaluate argument(s) {bad}; valid: "
                        f"{', '.join(p for p in params if p not in ('run_dir', 'progress'))}")
    return evaluate_run


def cell_status(cell_dir: Path, evaluate: bool = True) -> str:
    """One of :data:`STATUSES`, from the files in ``cell_dir``."""
    if (cell_dir / "results.json").exists():
        if (cell_dir / "evaluate_error.txt").exists():
            return "evaluate failed"
        res = read_json(cell_dir / "results.json")
        return "done" if evaluate and "privacy" in res and "fairness" in res else "trained"
    return "failed" if (cell_dir / "error.txt").exists() else "pending"


def is_finished(status: str, evaluate: bool) -> bool:
    return status in ("done", "evaluate failed") or (status == "trained" and not evaluate)


@dataclass
class CellOutcome:
    name: str
    axes: Dict[str, str]
    overrides: List[str]
    dir: str                  # relative to the sweep folder
    status: str
    action: str               # skipped | ran | evaluated (training was already done) | not selected
    seconds: float
    error: Optional[str]      # last line of the traceback


@dataclass
class SweepResult:
    out: Path
    cells: List[CellOutcome]
    table: Table
    csv: Path
    markdown: Path


def _check_identity(cell: CellSpec, cell_dir: Path) -> None:
    marker = cell_dir / "cell.json"
    if marker.exists() and read_json(marker)["overrides"] != list(cell.overrides):
        raise GridError(f"{cell_dir} was run with other overrides than cell {cell.name!r} has now; "
                        "use a new --out folder or delete that cell's folder")


def _write_error(path: Path) -> str:
    text = traceback.format_exc()
    atomic_write_text(path, text)
    return text.strip().splitlines()[-1]


def run_cell(grid: Grid, cell: CellSpec, cell_dir: Path, evaluate_fn, progress: bool) -> Tuple[str, Optional[str]]:
    """Train (unless results.json exists) and evaluate one cell (against its baseline cell, if the grid names
    one); returns (status, error line or None)."""
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.run import run_federated

    if not (cell_dir / "results.json").exists():
        (cell_dir / "error.txt").unlink(missing_ok=True)
        argv = [*cell.overrides, f"--output_folder={cell_dir}"]
        try:
            hparams = load_hparams(grid.base, argv)
            run_federated(hparams, str(grid.base), argv, progress=progress)
        except Exception:  # noqa: BLE001 - a failed cell is recorded and the sweep goes on
            return "failed", _write_error(cell_dir / "error.txt")
    if grid.evaluate is None or evaluate_fn is None:
        return "trained", None
    kwargs = dict(grid.evaluate)
    if cell.name in grid.baselines:
        kwargs["baseline"] = str(cell_dir.parent / grid.baselines[cell.name])
    try:
        evaluate_fn(cell_dir, progress=progress, **kwargs)
    except Exception:  # noqa: BLE001
        return "evaluate failed", _write_error(cell_dir / "evaluate_error.txt")
    return "done", None


def select_cells(grid: Grid, only: Optional[Sequence[str]]) -> set:
    """Names of the cells that ``only`` selects: cell names, or ``axis=value`` filters (a cell matches a filter
    when its axis has that value); ``None`` selects every cell. A filter that matches no cell is an error."""
    if only is None:
        return {c.name for c in grid.cells}
    return _select(grid.path, grid.cells, only, "--cells")


def _select(path: Path, cells: Sequence[CellSpec], filters: Sequence[str], what: str = "seeds.cells") -> set:
    chosen = set()
    for f in filters:
        if "=" in f:
            axis, value = f.split("=", 1)
            hit = {c.name for c in cells if c.axes.get(axis) == value}
        else:
            hit = {c.name for c in cells if c.name == f}
        if not hit:
            raise GridError(f"{path}: {what} {f!r} matches no cell; cells: {', '.join(c.name for c in cells)}")
        chosen |= hit
    return chosen


def _worker_init(threads: Optional[int]) -> None:
    import torch

    torch.set_num_threads(threads or 1)


def _run_cell_job(grid: Grid, cell: CellSpec, cell_dir: Path) -> Tuple[str, Optional[str], float]:
    """A worker process's cell: (status, error line, seconds)."""
    evaluate_fn = _evaluator(grid.evaluate) if grid.evaluate is not None else None
    start = time.time()
    status, error = run_cell(grid, cell, cell_dir, evaluate_fn, progress=False)
    return status, error, time.time() - start


def run_sweep(grid_path, out, progress: bool = True, only: Optional[Sequence[str]] = None, jobs: int = 1,
              threads: Optional[int] = None) -> SweepResult:
    """Run every unfinished cell of the grid in ``out`` (only those :func:`select_cells` picks from ``only``:
    the others are left as they are, to be run later in the same folder), then write the index and the table.

    ``jobs > 1`` runs that many cells at a time in spawned worker processes with ``threads`` torch threads
    each (default 1); per-cell progress bars are then off."""
    from tqdm.auto import tqdm

    if not isinstance(jobs, int) or jobs < 1:
        raise GridError(f"jobs must be a positive integer, got {jobs!r}")
    grid = load_grid(grid_path)
    selected = select_cells(grid, only)
    out = Path(out).resolve()
    evaluate_fn = _evaluator(grid.evaluate) if grid.evaluate is not None else None
    if grid.evaluate is not None and evaluate_fn is None:
        logger.warning("speechfl.experiment.evaluate is not installed: cells are trained, not evaluated")
    for cell in grid.cells:
        _check_identity(cell, out / "cells" / cell.name)
    outcomes: List[CellOutcome] = []
    for cell in grid.cells:
        d = out / "cells" / cell.name
        outcomes.append(CellOutcome(cell.name, cell.axes, list(cell.overrides), str(d.relative_to(out)),
                                    cell_status(d, grid.evaluate is not None), "pending", 0.0, None))
    _write_index(out, grid, outcomes)
    todo = []
    for cell, oc in zip(grid.cells, outcomes):
        if is_finished(oc.status, grid.evaluate is not None):
            oc.action = "skipped"
        elif oc.name not in selected:
            oc.action = "not selected"
        else:
            d = out / oc.dir
            d.mkdir(parents=True, exist_ok=True)
            atomic_write_json(d / "cell.json", {"name": oc.name, "axes": oc.axes, "overrides": oc.overrides,
                                                "base": str(grid.base)})
            oc.action = "evaluated" if oc.status == "trained" else "ran"
            todo.append((cell, oc))

    baselines = grid.baselines
    todo_names = {oc.name for _, oc in todo}
    status_of = {oc.name: oc.status for oc in outcomes}
    for _, oc in todo:
        dep = baselines.get(oc.name)
        if dep and dep not in todo_names and status_of[dep] in ("pending", "failed"):
            raise GridError(f"cell {oc.name} is evaluated against baseline cell {dep}, which is not trained and not "
                            "selected; run it too (--cells)")
    deps = {baselines[oc.name] for _, oc in todo if oc.name in baselines} & todo_names
    todo.sort(key=lambda t: t[1].name not in deps)  # baseline cells first (stable)

    def finish(oc: CellOutcome) -> None:
        if oc.error:
            tqdm.write(f"cell {oc.name}: {oc.status}: {oc.error} (see {out / oc.dir})")
        _write_index(out, grid, outcomes)

    bar = tqdm(total=len(todo), desc="sweep", unit="cell", disable=not progress)
    if jobs == 1 or len(todo) <= 1:
        for cell, oc in todo:
            bar.set_postfix_str(oc.name)
            start = time.time()
            oc.status, oc.error = run_cell(grid, cell, out / oc.dir, evaluate_fn, progress)
            oc.seconds = time.time() - start
            finish(oc)
            bar.update(1)
    else:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_worker_init,
                                 initargs=(threads,)) as pool:
            futures, finished = {}, set()
            waiting = [(cell, oc) for cell, oc in todo if baselines.get(oc.name) in deps]
            for cell, oc in todo:
                if baselines.get(oc.name) not in deps:
                    futures[pool.submit(_run_cell_job, grid, cell, out / oc.dir)] = oc
            while futures:
                done, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    oc = futures.pop(fut)
                    try:
                        oc.status, oc.error, oc.seconds = fut.result()
                    except Exception as exc:  # noqa: BLE001 - a worker that died (e.g. killed for memory)
                        oc.status, oc.error = "failed", f"worker process failed: {type(exc).__name__}: {exc}"
                    finished.add(oc.name)
                    bar.set_postfix_str(oc.name)
                    finish(oc)
                    bar.update(1)
                ready = [(c, o) for c, o in waiting if baselines[o.name] in finished]
                waiting = [(c, o) for c, o in waiting if baselines[o.name] not in finished]
                for cell, oc in ready:  # a cell whose baseline failed runs anyway; its evaluation says why
                    futures[pool.submit(_run_cell_job, grid, cell, out / oc.dir)] = oc
    bar.close()
    table = load_table(out)
    csv_path, md_path = out / "table.csv", out / "table.md"
    atomic_write_text(csv_path, to_csv(table))
    atomic_write_text(md_path, to_markdown(table))
    return SweepResult(out=out, cells=outcomes, table=table, csv=csv_path, markdown=md_path)


def _write_index(out: Path, grid: Grid, outcomes: List[CellOutcome]) -> None:
    atomic_write_json(out / INDEX, {"grid": str(grid.path), "base": str(grid.base), "axes": grid.axes,
                                    "evaluate": grid.evaluate, "cells": [asdict(o) for o in outcomes]})


def load_table(out) -> Table:
    """The sweep table of folder ``out`` from its index and each cell's results.json."""
    out = Path(out)
    if not (out / INDEX).exists():
        raise FileNotFoundError(f"{out} is not a sweep folder (no {INDEX}); run `speechfl sweep` first")
    index = read_json(out / INDEX)

    def load(entry):
        path = out / entry["dir"] / "results.json"
        return read_json(path) if path.exists() else None

    return Table(axes=list(index.get("axes") or []), rows=rows_from(index["cells"], load))
