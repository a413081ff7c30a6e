"""Pareto optimality of sweep cells over two or more objectives to minimise.

A point ``a`` *dominates* ``b`` when ``a_j <= b_j`` for every objective ``j``
and ``a_j < b_j`` for at least one. The Pareto set (non-dominated set) is the
set of points no other point dominates (Deb, *Multi-Objective Optimization
Using Evolutionary Algorithms*, 2001, Def. 2.5). Identical points do not
dominate each other, so duplicates on the front are all optimal. A point with a
missing (NaN) objective takes no part: it is neither optimal nor dominating.

The views the report draws (which table columns are the objectives) are
:data:`PARETO_VIEWS`; :func:`pareto_view` applies one to table rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np

from speechfl.experiment.table import NA, Row


def pareto_mask(points) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``points`` (every column minimised).

    Parameters
    ----------
    points : array-like of shape (n, k)
        Objective values; rows holding a NaN are never optimal and dominate nothing.

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, k), got shape {pts.shape}")
    if np.isinf(pts).any():
        raise ValueError("points hold an infinite value; use NaN for a missing objective")
    valid = ~np.isnan(pts).any(axis=1)
    p = pts[valid]
    # le[i, j]: p[j] <= p[i] everywhere; lt[i, j]: p[j] < p[i] somewhere -> j dominates i.
    le = (p[None, :, :] <= p[:, None, :]).all(axis=2)
    lt = (p[None, :, :] < p[:, None, :]).any(axis=2)
    dominated = (le & lt).any(axis=1)
    mask = np.zeros(len(pts), dtype=bool)
    mask[np.flatnonzero(valid)[~dominated]] = True
    return mask


def front_staircase(x, y) -> np.ndarray:
    """Corner points of the 2-D attainment staircase through a front (for plotting).

    ``x``, ``y`` are the coordinates of the Pareto-optimal points (both minimised).
    Returns an (m, 2) array ordered by ``x`` that steps right then down.
    """
    order = np.lexsort((np.asarray(y, float), np.asarray(x, float)))
    xs, ys = np.asarray(x, float)[order], np.asarray(y, float)[order]
    corners: List[tuple] = []
    for i, (xi, yi) in enumerate(zip(xs, ys)):
        if i:
            corners.append((xi, ys[i - 1]))
        corners.append((xi, yi))
    return np.array(corners, dtype=float).reshape(-1, 2)


@dataclass(frozen=True)
class ParetoView:
    """Two table columns to minimise jointly, with the labels a plot needs."""

    name: str
    title: str
    x_key: str
    y_key: str
    x_label: str
    y_label: str
    x_transform: Callable[[float], float] = float
    y_transform: Callable[[float], float] = float


PARETO_VIEWS = (
    ParetoView("wer_vs_attacker", "WER vs strongest speaker attacker", "attacker_top1", "test_wer",
               "strongest speaker attacker top-1 accuracy on representations (lower = more private)",
               "test WER % (under attack where configured)"),
    ParetoView("wer_vs_uplink", "WER vs uplink bytes", "uplink_mb", "test_wer",
               "total uplink MB (all clients, all rounds)", "test WER % (under attack where configured)"),
    ParetoView("gap_vs_privacy", "Fairness gap vs privacy", "attacker_top1", "wer_gap_fm",
               "strongest speaker attacker top-1 accuracy on representations", "|WER gap F - M| (points)",
               y_transform=abs),
)


@dataclass
class ViewResult:
    """One view over the table: who is plotted, who is Pareto-optimal, who is left out and why."""

    view: ParetoView
    cells: List[str]
    x: List[float]
    y: List[float]
    optimal: List[bool]
    references: List[str]          # plotted cells that take no part in the front (centralized runs)
    missing: Dict[str, str]        # cell -> reason it is not plotted


def pareto_view(rows: Sequence[Row], view: ParetoView) -> ViewResult:
    """Apply ``view`` to table rows: federated cells with both values compete; centralized ones are references."""
    cells, xs, ys, refs, missing = [], [], [], [], {}
    for row in rows:
        xv, yv = row.values[view.x_key], row.values[view.y_key]
        bad = [v for v in (xv, yv) if isinstance(v, NA)]
        if bad:
            missing[row.cell] = bad[0].reason
            continue
        cells.append(row.cell)
        xs.append(view.x_transform(xv))
        ys.append(view.y_transform(yv))
        if row.kind == "centralized":
            refs.append(row.cell)
    compete = [c not in refs for c in cells]
    pts = np.array([[x, y] if c else [np.nan, np.nan] for x, y, c in zip(xs, ys, compete)], dtype=float)
    optimal = pareto_mask(pts.reshape(-1, 2)).tolist() if cells else []
    return ViewResult(view=view, cells=cells, x=xs, y=ys, optimal=optimal, references=refs, missing=missing)
