"""``speechfl sweep``, ``speechfl report`` and ``speechfl demo``.

``speechfl/cli.py`` calls :func:`register` on its sub-parsers, then ``args.func(args)``.
Heavy modules load only when a sub-command runs.
"""

from __future__ import annotations

import argparse


def _print_outcome(sweep) -> int:
    """Print the sweep's Markdown table and files; returns the number of cells that failed."""
    print(sweep.markdown.read_text())
    ran = sum(c.action != "skipped" for c in sweep.cells)
    failed = [c for c in sweep.cells if c.status in ("failed", "evaluate failed")]
    print(f"{len(sweep.cells)} cells ({ran} run now, {len(sweep.cells) - ran} already finished); "
          f"table: {sweep.csv} and {sweep.markdown}")
    for c in failed:
        print(f"  {c.status}: {c.name}: {c.error} (traceback in {sweep.out / c.dir})")
    return len(failed)


def _set_threads(threads) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _add_threads(p) -> None:
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's choice); 1 on a machine shared with other jobs, "
                        "where oversubscribed threads make recurrent layers many times slower")


def cmd_sweep(args) -> None:
    from speechfl.experiment.sweep import GridError, run_sweep

    _set_threads(args.threads)
    try:
        sweep = run_sweep(args.grid, args.out, progress=not args.no_progress,
                          only=args.cells.split(",") if args.cells else None, jobs=args.jobs, threads=args.threads)
    except (GridError, FileNotFoundError) as exc:
        raise SystemExit(f"speechfl sweep: error: {exc}") from None
    if _print_outcome(sweep):
        raise SystemExit(1)


def cmd_report(args) -> None:
    from speechfl.experiment.report import write_report

    try:
        rep = write_report(args.sweep_dir, args.out)
    except FileNotFoundError as exc:
        raise SystemExit(f"speechfl report: error: {exc}") from None
    print(rep.markdown.read_text().split("## Plots")[0].rstrip())
    for view, cells in rep.optimal.items():
        print(f"Pareto-optimal ({view}): {', '.join(cells) or 'none'}")
    print(f"report: {rep.html}\n        {rep.markdown}")


def cmd_demo(args) -> None:
    from speechfl.experiment.demo import run_demo
    from speechfl.experiment.sweep import GridError

    _set_threads(args.threads)
    try:
        demo = run_demo(args.out, **({"grid": args.grid} if args.grid else {}), progress=not args.no_progress)
    except (GridError, FileNotFoundError) as exc:
        raise SystemExit(f"speechfl demo: error: {exc}") from None
    failed = _print_outcome(demo.sweep)
    for view, cells in demo.report.optimal.items():
        print(f"Pareto-optimal ({view}): {', '.join(cells) or 'none'}")
    print(f"report: {demo.report.html}  ({demo.seconds / 60:.1f} min)")
    if failed:
        raise SystemExit(1)


def register(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="run every cell of a grid (resumable), evaluate, write the table")
    p.add_argument("grid", metavar="GRID.yaml", help="grid file (format: speechfl.experiment.sweep docstring)")
    p.add_argument("--out", required=True, metavar="DIR", help="sweep folder (cells/, sweep.json, table.csv/.md)")
    p.add_argument("--cells", default=None, metavar="FILTERS",
                   help="run only these cells: comma-separated cell names or axis=value filters (e.g. attack=none); "
                        "the others stay as they are, for a later run in the same folder")
    p.add_argument("--jobs", type=_positive_int, default=1,
                   help="cells run at a time, each in its own process with --threads torch threads (default 1 "
                        "cell; with --jobs > 1, 1 thread per cell unless --threads says otherwise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_threads(p)
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("report", help="HTML + Markdown report with Pareto plots of a sweep folder")
    p.add_argument("sweep_dir", metavar="DIR", help="a folder written by `speechfl sweep`")
    p.add_argument("--out", default=None, metavar="REPORT_DIR", help="where to write (default DIR/report)")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("demo", help="small sweep over every pillar on the embedded corpus, with report")
    p.add_argument("--out", default="demo_out", metavar="DIR", help="sweep folder (default demo_out)")
    p.add_argument("--grid", default=None, help="another grid instead of recipes/grids/demo.yaml")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _add_threads(p)
    p.set_defaults(func=cmd_demo)
