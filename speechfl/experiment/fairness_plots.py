"""Fairness figures: per-group bars per cell, and the per-speaker WER x privacy-risk scatter.

``plot_group_bars`` draws one group of bars per cell (configuration), one bar per speaker
group (e.g. test CER of F and M), so a gap and how each method changes it are read at a
glance. ``plot_speaker_scatter`` draws every speaker as a point (x: its WER, y: its privacy
risk under the strongest attacker), coloured by group, with the Pearson correlation in the
title: the upper right corner holds the speakers who pay twice. Matplotlib, Agg backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

COLOURS = {"F": "tab:red", "M": "tab:blue"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_group_bars(values: Mapping[str, Mapping[str, float]], path, ylabel: str = "test CER (%)",
                    title: str = "per-group error by configuration") -> Path:
    """Grouped bars: ``values[cell][group]``; every cell must name the same groups."""
    if not values:
        raise ValueError("plot_group_bars needs at least one cell")
    cells = list(values)
    groups = sorted(values[cells[0]])
    for c in cells:
        if sorted(values[c]) != groups:
            raise ValueError(f"cell {c!r} has groups {sorted(values[c])}, expected {groups}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(cells) + 1), 3.5))
    width = 0.8 / len(groups)
    x = np.arange(len(cells))
    for k, g in enumerate(groups):
        ax.bar(x + (k - (len(groups) - 1) / 2) * width, [float(values[c][g]) for c in cells], width,
               label=g, color=COLOURS.get(g))
    ax.set_xticks(x, cells, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    return _save(plt, fig, path)


def plot_speaker_scatter(points: Mapping[str, Mapping[str, float]], groups: Mapping[str, str], path,
                         title: str = "", pearson: Optional[float] = None) -> Path:
    """One point per speaker: ``points[spk] = {"wer", "risk"}``, coloured by ``groups[spk]``."""
    if not points:
        raise ValueError("plot_speaker_scatter needs at least one speaker")
    missing = sorted(s for s in points if s not in groups)
    if missing:
        raise ValueError(f"speakers {missing[:3]} have no group")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 3.5))
    by_group: Dict[str, list] = {}
    for s in sorted(points):
        by_group.setdefault(groups[s], []).append(s)
    for g, members in sorted(by_group.items()):
        ax.scatter([points[s]["wer"] for s in members], [points[s]["risk"] for s in members], label=g,
                   color=COLOURS.get(g))
        for s in members:
            ax.annotate(s, (points[s]["wer"], points[s]["risk"]), fontsize=6, alpha=0.7)
    ax.set_xlabel("speaker WER (%)")
    ax.set_ylabel("privacy risk (strongest attacker)")
    ax.set_ylim(-0.02, 1.02)
    suffix = "" if pearson is None or not np.isfinite(pearson) else f" (Pearson r = {pearson:.2f})"
    ax.set_title(f"{title}{suffix}", fontsize=9)
    ax.legend()
    return _save(plt, fig, path)


def plot_fairness(cells: Mapping[str, Mapping], out_dir) -> list:
    """All figures of a fairness benchmark or sweep; returns the PNG paths.

    ``cells[name]`` holds ``"gender"`` (:func:`speechfl.fairness.tradeoff.gender_gap`) and
    optionally ``"individual"`` (:func:`speechfl.fairness.tradeoff.individual_level`).
    """
    out_dir = Path(out_dir)
    paths = [plot_group_bars({c: {g: v[g] for g in ("F", "M") if g in v} for c, v in
                              ((c, cell["gender"]) for c, cell in cells.items())}, out_dir / "group_cer.png")]
    for name, cell in cells.items():
        ind = cell.get("individual")
        if not ind or "skipped" in ind:
            continue
        pays = ind["who_pays"]
        paths.append(plot_speaker_scatter(pays["points"], ind["genders"], out_dir / f"speakers_{name}.png", title=name,
                                          pearson=pays["pearson"]))
    return paths


def sweep_fairness_figures(sweep_dir, cells, out_dir) -> list:
    """The sweep report's fairness figures: ``[(title, png, text)]``.

    Per-group test WER bars over the cells whose results hold both genders, and one per-speaker
    WER x risk scatter per cell whose ``fairness.individual_privacy`` was written (by
    :func:`speechfl.fairness.tradeoff.individual_level`). Empty when no cell has per-group WER.
    """
    from speechfl.experiment.sweep import INDEX
    from speechfl.io import read_json

    sweep_dir, out_dir = Path(sweep_dir), Path(out_dir)
    index = {e["name"]: e for e in read_json(sweep_dir / INDEX)["cells"]}
    bars, figures = {}, []
    for cell in cells:
        path = sweep_dir / index[cell]["dir"] / "results.json" if cell in index else None
        if path is None or not path.exists():
            continue
        res = read_json(path)
        groups = ((res.get("test") or {}).get("by_group") or {}).get("gender") or {}
        if {"F", "M"} <= set(groups):
            bars[cell] = {g: float(groups[g]["wer"]) for g in ("F", "M")}
        ind = (res.get("fairness") or {}).get("individual_privacy")
        if ind and "skipped" not in ind:
            png = plot_speaker_scatter(ind["who_pays"]["points"], ind["genders"], out_dir / f"speakers_{cell}.png",
                                       title=cell, pearson=ind["who_pays"]["pearson"])
            figures.append((f"Per-speaker WER vs privacy risk: {cell}", png,
                            "One point per test speaker; risk under the strongest attacker (0 = chance)."))
    if bars:
        png = plot_group_bars(bars, out_dir / "group_wer.png", ylabel="test WER (%)", title="per-gender test WER")
        figures.insert(0, ("Per-gender WER", png, "Test WER of female and male speakers per cell "
                                                  "(cells without both genders are left out)."))
    return figures
