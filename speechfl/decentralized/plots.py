"""Per-round curves of decentralized runs for the sweep report: validation CER and consensus distance.

:func:`series` reads the numbers (one entry per run with a ``decentralized`` section, labelled
``cell (topology, algorithm)``); :func:`plot_decentralized` draws them, two panels, one line per run,
one colour per topology. The report can add the figure with one call; runs of other engines are skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple

Series = Dict[str, Tuple[str, List[Tuple[int, float]], List[Tuple[int, float]]]]


def series(results: Mapping[str, dict]) -> Series:
    """``{label: (topology, [(round, valid_cer)], [(round, consensus_distance)])}`` for decentralized runs."""
    out: Series = {}
    for cell, res in results.items():
        dec = res.get("decentralized")
        if not dec:
            continue
        rounds = res.get("rounds") or []
        cer = [(r["round"], r["valid_cer"]) for r in rounds if r.get("valid_cer") is not None]
        cd = [(r["round"], r["consensus_distance"]) for r in rounds if r.get("consensus_distance") is not None]
        out[f"{cell} ({dec['topology']}, {dec['algorithm']})"] = (dec["topology"], cer, cd)
    return out


def plot_decentralized(results: Mapping[str, dict], path: str | Path) -> Optional[Path]:
    """Write the two-panel PNG to ``path``; ``None`` when no run is decentralized."""
    data = series(results)
    if not data:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    topologies = sorted({t for t, _, _ in data.values()})
    cmap = plt.get_cmap("tab10")
    colour = {t: cmap(i % 10) for i, t in enumerate(topologies)}
    styles = ["-", "--", ":", "-."]
    fig, (ax_cer, ax_cd) = plt.subplots(1, 2, figsize=(12, 4.4), dpi=110)
    seen: Dict[str, int] = {}
    for label, (topo, cer, cd) in data.items():
        style = styles[seen.setdefault(topo, 0) % len(styles)]
        seen[topo] += 1
        if cer:
            ax_cer.plot(*zip(*cer), style, marker="o", markersize=3, color=colour[topo], label=label)
        if cd:
            ax_cd.plot(*zip(*cd), style, marker="o", markersize=3, color=colour[topo], label=label)
    ax_cer.set(xlabel="round", ylabel="validation CER % (honest nodes' average)", title="CER per round")
    ax_cd.set(xlabel="round", ylabel="1/h sum ||x_i - xbar||^2", title="Consensus distance per round", yscale="log")
    for ax in (ax_cer, ax_cd):
        ax.grid(alpha=0.3)
    ax_cd.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
