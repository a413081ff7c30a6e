"""``speechfl report DIR``: the sweep's table, Pareto plots and learning curves as HTML and Markdown.

Writes ``DIR/report/``: ``report.html`` (self-contained: the PNGs are embedded as
base64 data URIs), ``report.md`` (links the PNGs next to it), and the PNGs
(matplotlib, Agg backend): one per :data:`speechfl.experiment.pareto.PARETO_VIEWS`
(WER vs strongest attacker, WER vs uplink, |fairness gap| vs attacker) and
``learning_curves.png`` (validation WER, CER and training loss per round).

Pareto-optimal cells (non-dominated among federated cells; see
:mod:`speechfl.experiment.pareto`) are red on the plots and marked in the
table; a centralized run is drawn as a reference (a star, or a horizontal line
where it has no value on the x axis) and takes no part in the fronts.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

from speechfl.decentralized.plots import plot_decentralized
from speechfl.experiment.pareto import PARETO_VIEWS, ViewResult, front_staircase, pareto_view
from speechfl.experiment.sweep import INDEX, load_table
from speechfl.experiment.table import COLUMNS, NA, Table, format_value, to_markdown
from speechfl.io import atomic_write_text, read_json

LABEL_LIMIT = 12  # more points than this are labelled by their row number


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    pngs: List[Path]
    optimal: Dict[str, List[str]]  # view name -> Pareto-optimal cells


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _reference(table: Table, key: str):
    """First value of ``key`` across rows (a reference level shared by the cells, e.g. chance), or None."""
    return next((r.values[key] for r in table.rows if not isinstance(r.values[key], NA)), None)


def _label_points(ax, res: ViewResult, labels: List[str]) -> None:
    """Label every point; a label that would overprint an earlier one (in screen pixels) moves below it."""
    import numpy as np

    ax.figure.canvas.draw()  # fixes the axis limits, so data -> pixel transforms are final
    pts = np.zeros((0, 2))  # positions in typographic points, the unit of the label offsets
    if res.cells:
        pts = ax.transData.transform(np.column_stack([res.x, res.y])) * 72.0 / ax.figure.dpi
    placed: List[tuple] = []
    for i, (label, opt) in enumerate(zip(labels, res.optimal)):
        dy = 4
        while any(abs(pts[i, 0] - px) < 70 and abs(pts[i, 1] + dy - py) < 9 for px, py in placed):
            dy -= 9
        placed.append((pts[i, 0], pts[i, 1] + dy))
        ax.annotate(label, (res.x[i], res.y[i]), textcoords="offset points", xytext=(14 if dy < 4 else 6, dy),
                    fontsize=8, color="tab:red" if opt else "black", va="center" if dy < 4 else "baseline",
                    arrowprops=dict(arrowstyle="-", color="gray", linewidth=0.6) if dy < 4 else None)


def plot_view(res: ViewResult, table: Table, path: Path) -> Path:
    """Scatter of one view with its Pareto front, references and labels; saved as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.2), dpi=110)
    number = {r.cell: i + 1 for i, r in enumerate(table.rows)}
    many = len(res.cells) > LABEL_LIMIT
    for cell, x, y, opt in zip(res.cells, res.x, res.y, res.optimal):
        ref = cell in res.references
        ax.scatter([x], [y], s=110 if ref else 60, marker="*" if ref else "o", zorder=3,
                   color="black" if ref else "tab:red" if opt else "tab:gray", edgecolor="black", linewidth=0.5)
    front = [(x, y) for x, y, o in zip(res.x, res.y, res.optimal) if o]
    if len(front) > 1:
        stairs = front_staircase([p[0] for p in front], [p[1] for p in front])
        ax.plot(stairs[:, 0], stairs[:, 1], color="tab:red", linewidth=1.2, zorder=2, label="Pareto front")
    elif front:
        ax.scatter([], [], color="tab:red", label="Pareto-optimal")
    for row in table.rows:  # a centralized run with no x value: its y as a horizontal reference line
        if row.kind == "centralized" and row.cell in res.missing and not isinstance(row.values[res.view.y_key], NA):
            ax.axhline(res.view.y_transform(row.values[res.view.y_key]), color="black", linestyle="--",
                       linewidth=1, label=f"{row.cell} (reference)")
    if res.view.x_key == "attacker_top1":
        for key, style, label in (("attacker_chance", ":", "chance"), ("fbank_top1", "-.", "attacker on raw fbank")):
            level = _reference(table, key)
            if level is not None:
                ax.axvline(level, color="tab:blue", linestyle=style, linewidth=1, label=label)
    if res.view.x_key == "uplink_mb" and res.x and min(res.x) > 0 and max(res.x) / min(res.x) > 20:
        ax.set_xscale("log")
    if not res.cells:
        ax.text(0.5, 0.5, "no cell has both values\n(see the list under the plot)", ha="center", va="center",
                transform=ax.transAxes, fontsize=11, color="tab:gray")
    _label_points(ax, res, [f"#{number[c]}" if many else c for c in res.cells])
    ax.set_xlabel(res.view.x_label, fontsize=9)
    ax.set_ylabel(res.view.y_label, fontsize=9)
    ax.set_title(f"{res.view.title} (lower-left is better)", fontsize=11)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


CURVES = (("valid_wer", "validation WER %"), ("valid_cer", "validation CER %"),
          ("train_loss", "training loss (honest clients)"))


def plot_learning_curves(sweep_dir: Path, table: Table, path: Path) -> Path:
    """Validation WER, validation CER and training loss per round (:data:`CURVES`), one line per cell."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    index = {e["name"]: e for e in read_json(sweep_dir / INDEX)["cells"]}
    fig, axes = plt.subplots(1, len(CURVES), figsize=(15, 4.6), dpi=110)
    cmap = plt.get_cmap("tab10" if len(table.rows) <= 10 else "tab20")
    legend: Dict[str, object] = {}
    for i, row in enumerate(table.rows):
        res_path = sweep_dir / index[row.cell]["dir"] / "results.json"
        rounds = (read_json(res_path).get("rounds") or []) if res_path.exists() else []
        for ax, (key, _) in zip(axes, CURVES):
            pts = [(r["round"], r[key]) for r in rounds if r.get(key) is not None]
            if pts:
                (line,) = ax.plot(*zip(*pts), marker="o", markersize=3, color=cmap(i % cmap.N), label=row.cell)
                legend.setdefault(row.cell, line)
    for ax, (_, label) in zip(axes, CURVES):
        ax.set(xlabel="round", ylabel=label, title=label[0].upper() + label[1:] + " per round")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if legend:
        fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(5, len(legend)), fontsize=8)
        fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(legend) - 1) // 5), 1, 1))
    else:
        axes[0].text(0.5, 0.5, "no per-round records", ha="center", va="center", transform=axes[0].transAxes)
        fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#f0f0f0}td.l{text-align:left}
tr.opt td{background:#fde8e8}td.na{color:#999}img{max-width:100%;border:1px solid #ddd}
.fig{display:inline-block;vertical-align:top;width:48%;margin:0 1% 1.5em 0}small{color:#666}"""


def _html_table(table: Table, optimal: Dict[str, List[str]]) -> str:
    views = list(PARETO_VIEWS)
    head = ["#", "cell", *table.axes, "status", *(c.header for c in COLUMNS), *(f"Pareto: {v.name}" for v in views)]
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for i, row in enumerate(table.rows):
        is_opt = any(row.cell in optimal[v.name] for v in views)
        tds = [f"<td>{i + 1}</td>", f"<td class=l><b>{html.escape(row.cell)}</b></td>" if is_opt else
               f"<td class=l>{html.escape(row.cell)}</td>"]
        tds += [f"<td class=l>{html.escape(row.axes.get(a, ''))}</td>" for a in table.axes]
        tds.append(f"<td class=l>{html.escape(row.status)}</td>")
        for c in COLUMNS:
            v = row.values[c.key]
            tds.append(f"<td class=na title='{html.escape(v.reason, quote=True)}'>n/a</td>" if isinstance(v, NA)
                       else f"<td>{html.escape(format_value(v, c.key))}</td>")
        tds += [f"<td>{'&#9733;' if row.cell in optimal[v.name] else ''}</td>" for v in views]
        out.append(f"<tr class={'opt' if is_opt else 'row'}>" + "".join(tds) + "</tr>")
    return "\n".join(out + ["</table>"])


def _view_text(res: ViewResult) -> str:
    opt = [c for c, o in zip(res.cells, res.optimal) if o]
    text = f"Pareto-optimal: {', '.join(opt) if opt else 'none'}."
    if res.missing:
        text += " Not plotted: " + "; ".join(f"{c} ({r})" for c, r in res.missing.items()) + "."
    return text


UNITS = ("Error rates and WER gaps in percent (gap = WER(F) - WER(M)); attacker accuracies, EER and membership "
         "AUC are fractions; uplink in MB. A centralized run is a reference, not a competitor.")


def _html_page(head: str, table: Table, optimal: Dict[str, List[str]], figures, examples=()) -> str:
    """The whole report as one HTML document; figures are embedded (base64) and link their PNG file."""
    body = [f"<h1>speechfl sweep report</h1><p>{html.escape(head).replace(chr(10) * 2, '<br>')}</p>",
            f"<h2>Results</h2><p><small>{html.escape(UNITS)} Hover over n/a for the reason. Rows in red are "
            "Pareto-optimal in at least one view (&#9733; per view).</small></p>", _html_table(table, optimal)]
    if examples:
        rows = "".join(f"<tr><td>{html.escape(c)}</td><td>{html.escape(r)}</td><td>{html.escape(h)}</td>"
                       f"<td>{e:.1f}</td></tr>" for c, r, h, e in examples)
        body.append("<h2>Example transcripts</h2><p><small>The median-CER test utterance of each cell.</small></p>"
                    f"<table><tr><th>cell</th><th>reference</th><th>hypothesis</th><th>CER %</th></tr>{rows}</table>")
    body.append("<h2>Plots</h2>")
    for title, png, text in figures:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        body.append(f"<div class=fig><h3>{html.escape(title)}</h3><a href='{png.name}'><img "
                    f"alt='{html.escape(title)}' src='data:image/png;base64,{data}'></a>"
                    f"<p style='white-space: pre-wrap'><small>{html.escape(text)}</small></p></div>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>speechfl sweep report</title>"
            f"<style>{_CSS}</style></head><body>" + "\n".join(body) + "</body></html>\n")


def _cell_results(sweep_dir: Path, cells: List[str]) -> Dict[str, dict]:
    """results.json of every finished cell, by cell name."""
    index = {e["name"]: e for e in read_json(sweep_dir / INDEX)["cells"]}
    paths = {c: sweep_dir / index[c]["dir"] / "results.json" for c in cells if c in index}
    return {c: read_json(p) for c, p in paths.items() if p.exists()}


def example_transcripts(sweep_dir: Path, cells: List[str]) -> List[tuple]:
    """``[(cell, reference, hypothesis, CER %)]``: each finished cell's median-CER test utterance.

    The median (not the best) utterance shows what the model typically does with unseen speech.
    """
    index = {e["name"]: e for e in read_json(sweep_dir / INDEX)["cells"]}
    out = []
    for cell in cells:
        path = sweep_dir / index[cell]["dir"] / "test_utterances.json" if cell in index else None
        if path is None or not path.exists():
            continue
        utts = [u for u in read_json(path) if u["n_chars"] > 0]
        if utts:
            cer = lambda u: 100.0 * u["char_errors"] / u["n_chars"]  # noqa: E731
            u = sorted(utts, key=lambda u: (cer(u), u["utt_id"]))[len(utts) // 2]
            out.append((cell, u["ref"], u["hyp"], cer(u)))
    return out


def _examples_md(examples: List[tuple]) -> str:
    rows = [f"| {c} | {r} | {h} | {e:.1f} |" for c, r, h, e in examples]
    return "\n".join(["## Example transcripts (median-CER test utterance of each cell)\n",
                      "| cell | reference | hypothesis | CER % |", "|---|---|---|---|", *rows, ""])


def write_report(sweep_dir, out_dir=None) -> ReportFiles:
    """Write the HTML and Markdown report of the sweep in ``sweep_dir`` (default into ``sweep_dir/report``)."""
    sweep_dir = Path(sweep_dir)
    table = load_table(sweep_dir)
    out = Path(out_dir) if out_dir is not None else sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    results = [pareto_view(table.rows, v) for v in PARETO_VIEWS]
    optimal = {r.view.name: [c for c, o in zip(r.cells, r.optimal) if o] for r in results}
    pngs = [plot_view(r, table, out / f"{r.view.name}.png") for r in results]
    pngs.append(plot_learning_curves(sweep_dir, table, out / "learning_curves.png"))
    figures = [(r.view.title, p, _view_text(r)) for r, p in zip(results, pngs)]
    figures.append(("Learning curves", pngs[-1], "Validation WER and CER (rounds with validation, see eval_every) "
                                                 "and honest clients' training loss per round."))
    from speechfl.experiment.fairness_plots import sweep_fairness_figures

    for title, png, text in sweep_fairness_figures(sweep_dir, [r.cell for r in table.rows], out):
        pngs.append(png)
        figures.append((title, png, text))
    from speechfl.experiment.hiding_plots import sweep_hiding_figures

    for title, png, text in sweep_hiding_figures(sweep_dir, table, out):
        pngs.append(png)
        figures.append((title, png, text))
    dec = plot_decentralized(_cell_results(sweep_dir, [r.cell for r in table.rows]), out / "decentralized.png")
    if dec is not None:
        pngs.append(dec)
        figures.append(("Decentralized runs", dec, "Honest nodes' average validation CER and consensus distance "
                                                   "(1/h sum ||x_i - xbar||^2) per round, one colour per topology."))
    counts = {s: sum(r.status == s for r in table.rows) for s in dict.fromkeys(r.status for r in table.rows)}
    summary = f"{len(table.rows)} cells: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "."
    head = f"{sweep_dir.resolve()}\n\n{summary}"
    html_path, md_path = out / "report.html", out / "report.md"
    examples = example_transcripts(sweep_dir, [r.cell for r in table.rows])
    atomic_write_text(html_path, _html_page(head, table, optimal, figures, examples))
    marks = {row.cell: "★" for row in table.rows if any(row.cell in v for v in optimal.values())}
    md = [f"# speechfl sweep report\n\n{head}\n\n## Results\n\n{UNITS} ★ = Pareto-optimal in at least one view; "
          "n/a reasons are listed under the table.\n", to_markdown(table, marks), _examples_md(examples),
          "## Plots\n"]
    md += [f"### {title}\n\n![{title}]({png.name})\n\n{text}\n" for title, png, text in figures]
    atomic_write_text(md_path, "\n".join(md))
    return ReportFiles(html=html_path, markdown=md_path, pngs=pngs, optimal=optimal)
