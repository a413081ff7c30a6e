"""Join speaker-hiding sweeps into one privacy-utility figure and table (issue 19).

Usage::

    speechfl sweep recipes/grids/speaker_hiding.yaml --out sweeps/speaker_hiding --jobs 2
    speechfl sweep recipes/grids/speaker_hiding_strengths.yaml --out sweeps/speaker_hiding_strengths --jobs 2
    python benchmarks/speaker_hiding_curves.py sweeps/speaker_hiding sweeps/speaker_hiding_strengths \\
        --out benchmarks/results/speaker_hiding_grid

Each sweep's own report (``speechfl report DIR``) draws its cells; this draws every cell of every sweep
given (a defense point found in two sweeps, e.g. the undefended ``none``, is taken from the first), so each
defense's strengths from both grids lie on one curve (:func:`speechfl.experiment.hiding_plots.defense_family`).
Writes ``OUT.png`` and ``OUT.md``: the ``--header`` lines (the commands, the machine, the wall times), the
seconds of every cell of every sweep, and the table behind the figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def joined_points(sweeps) -> tuple:
    """(points of every sweep's cells, first sweep wins a repeated (engine, defense); {cell: seconds} per sweep)."""
    from speechfl.experiment.hiding_plots import hiding_points
    from speechfl.experiment.sweep import INDEX
    from speechfl.io import read_json

    points, seen, seconds = [], set(), {}
    for sweep in sweeps:
        cells = read_json(Path(sweep) / INDEX)["cells"]
        seconds[str(sweep)] = {c["name"]: c.get("seconds") for c in cells}
        for p in hiding_points(sweep, [c["name"] for c in cells]):
            key = (p["group"], p["label"])
            if key not in seen:
                seen.add(key)
                points.append(p)
    return points, seconds


def main(argv=None) -> None:
    from speechfl.experiment.hiding_plots import hiding_markdown, plot_hiding_curves
    from speechfl.io import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="+", help="sweep output folders (speechfl sweep --out)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speaker_hiding_grid"),
                    help="output path without extension: OUT.md and OUT.png")
    ap.add_argument("--header", action="append", default=[],
                    help="a line for the top of OUT.md (the commands, the machine, the wall times)")
    args = ap.parse_args(argv)
    missing = [s for s in args.sweeps if not (Path(s) / "sweep.json").exists()]
    if missing:
        raise SystemExit(f"not a sweep folder (no sweep.json): {', '.join(missing)}")
    points, seconds = joined_points(args.sweeps)
    if not points:
        raise SystemExit(f"no cell with a speaker attack on representations in {', '.join(args.sweeps)}")
    order = {"federated": 0, "centralized": 1}
    points.sort(key=lambda p: order.get(p["group"], 2))
    out = Path(args.out)
    plot_hiding_curves(points, out.with_suffix(".png"))
    n = points[0]
    lines = [f"# {h}" for h in args.header] + [
        f"# Attackers retrained on each protected representation (semi-informed): identification among "
        f"{n['n_id_speakers']} speakers on {n['n_id_test']} test utterances (chance {n['chance']:.3f}); verification "
        f"on {n['n_eer_speakers']} held-out speakers, {n['n_target_trials']} target / {n['n_nontarget_trials']} "
        f"non-target trials; [95 % CI]: bootstrap over speakers ({n['n_boot']} resamples). EER as fractions; 'EER ignorant / "
        "lazy': the strongest family's EER when trained on the engine's undefended cell."]
    for sweep, secs in seconds.items():
        lines.append(f"# seconds per cell (train + evaluate), {Path(sweep).name}: " + ", ".join(
            f"{k.replace('engine-', '').replace('__defense-', '/')}: {round(v)}" for k, v in secs.items() if v))
    text = "\n".join(lines + ["", hiding_markdown(points), ""])
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)


if __name__ == "__main__":
    main()
