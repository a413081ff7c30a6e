"""Report of an anonymization evaluation: ``report.md``, ``report.html`` (figures embedded) and PNGs.

Figures (matplotlib, Agg): ``eer_by_gender.png``, pooled EER per scenario with one bar per gender
and overall; ``privacy_utility.png``, privacy (semi-informed EER, the VPC ranking attacker) against
utility (WER on anonymized speech when an ASR run was given, else ``rho_F0``), with the original
speech as the reference point (EER of the original scenario; WER on original speech, or
``rho_F0 = 1``). Several results files can be drawn on one privacy-utility plot
(:func:`privacy_utility_points`).
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

GROUPS = ("all", "F", "M")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def _eer(block, group="all"):
    b = (block or {}).get(group)
    return None if b is None else b["eer"]


def privacy_utility_points(results: dict) -> Tuple[str, List[Tuple[str, float, float]]]:
    """(utility axis label, [(label, semi-informed EER, utility)]) for the original and anonymized speech."""
    asr = results["utility"]["asr"]
    anon_eer = _eer(results["privacy"]["semi_informed"]["pooled"])
    orig_eer = _eer(results["privacy"]["original"]["pooled"])
    if "wer" in asr.get("anonymized", {}):
        return "WER on the speech (%)", [("original", orig_eer, 100 * asr["original"]["wer"]),
                                         ("anonymized", anon_eer, 100 * asr["anonymized"]["wer"])]
    rho = results["utility"]["rho_f0"]["rho_f0"]
    return "rho_F0 (pitch correlation)", [("original", orig_eer, 1.0), ("anonymized", anon_eer, rho)]


def plot_eer_bars(results: dict, path: Path) -> Path:
    plt = _pyplot()
    names = list(results["privacy"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.26
    for k, g in enumerate(GROUPS):
        vals = [100 * (_eer(results["privacy"][n]["pooled"], g) or 0) for n in names]
        ax.bar([i + (k - 1) * width for i in range(len(names))], vals, width, label=g)
    ax.set_xticks(range(len(names)), [n.replace("_", "-") for n in names])
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_ylabel("EER (%)")
    ax.set_title("ASV EER per scenario and gender (pooled over splits)")
    ax.legend(title="trials", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_privacy_utility(results_list: Sequence[dict], labels: Sequence[str], path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ylabel = None
    for results, label in zip(results_list, labels):
        ylabel, points = privacy_utility_points(results)
        for name, x, y in points:
            if x is None or y is None:
                continue
            ax.scatter(100 * x, y, marker="o" if name == "anonymized" else "s")
            ax.annotate(label if name == "anonymized" else "original", (100 * x, y), fontsize=8,
                        xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("semi-informed EER (%)  [higher = more private]")
    ax.set_ylabel(ylabel or "utility")
    ax.set_title("privacy-utility")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def markdown(results: dict) -> str:
    cfg = results["config"]
    lines = [f"# Anonymization evaluation", "",
             f"original `{cfg['original']}`, anonymized `{cfg['anonymized']}`; ASV attackers "
             f"{', '.join(cfg['attackers'])} (trained from scratch) x back-ends {', '.join(cfg['backends'])}; each "
             f"scenario shows its strongest attacker (lowest EER); seed {cfg['seed']}.", "",
             "## Privacy (EER %, higher = more private; linkability D_sys, lower = more private)", "",
             "| scenario | enroll | trials | ASV trained on | strongest attacker | EER all | EER F | EER M | linkability |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, sc in results["privacy"].items():
        pooled = sc["pooled"]
        link = pooled["all"]["linkability"] if pooled.get("all") else None
        lines.append(f"| {name} | {sc['enroll']} | {sc['trial']} | {sc['asv']} | {sc.get('attacker', '')} | "
                     f"{_pct(_eer(pooled))} | "
                     f"{_pct(_eer(pooled, 'F'))} | {_pct(_eer(pooled, 'M'))} | "
                     f"{'n/a' if link is None else f'{link:.3f}'} |")
    lines += ["", "Per split (EER % all / F / M):", ""]
    for name, sc in results["privacy"].items():
        parts = [f"{s}: {_pct(_eer(b))} / {_pct(_eer(b, 'F'))} / {_pct(_eer(b, 'M'))}" for s, b in sc["by_split"].items()]
        lines.append(f"- {name}: " + "; ".join(parts))
    util = results["utility"]
    asr = util["asr"]
    asr_text = (f"WER original {100 * asr['original']['wer']:.2f}% -> anonymized {100 * asr['anonymized']['wer']:.2f}%"
                f" (CER {100 * asr['original']['cer']:.2f}% -> {100 * asr['anonymized']['cer']:.2f}%)"
                if "original" in asr else f"not computed: {asr['reason']}")
    if "anonymized_retrained" in asr:
        asr_text += f"; ASR retrained on anonymized data: WER {100 * asr['anonymized_retrained']['wer']:.2f}%"
    rho = util["rho_f0"]["rho_f0"]
    gvd = util["gvd"]["gvd_db"]
    lines += ["", "## Utility", "", f"- ASR: {asr_text}",
              f"- rho_F0: {'n/a' if rho is None else f'{rho:.3f}'} over {util['rho_f0']['n_utterances']} utterances",
              f"- G_VD: {'n/a' if gvd is None else f'{gvd:.2f} dB'}", "", "## Trials", "",
              "| split | utterances | speakers | enroll utts | target | non-target | lists |", "|---|---|---|---|---|---|---|"]
    for s, c in results["corpora"].items():
        lines.append(f"| {s} | {c['utterances']} | {c['speakers']} | {c['enroll_utterances']} | {c['target']} | "
                     f"{c['nontarget']} | {c['trials_source']} |")
    lines += ["", f"Total {results['seconds']['total']:.1f} s (ASV {results['seconds']['asv']:.1f} s).", "",
              "![EER by gender](eer_by_gender.png)", "", "![privacy-utility](privacy_utility.png)", ""]
    return "\n".join(lines)


def _md_to_html(md: str, figures: Dict[str, Path]) -> str:
    """The Markdown report (headings, paragraphs, list items, pipe tables) as HTML, figures embedded."""
    body: List[str] = []
    in_table = False
    for line in md.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            if not in_table:
                body.append("<table border=1 cellspacing=0 cellpadding=3>")
                in_table = True
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if line.startswith("|---"):
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("![") or not line:
            continue
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        else:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    for title, png in figures.items():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        body.append(f"<h2>{html.escape(title)}</h2><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>")
    text = "\n".join(body)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Anonymization evaluation</title></head>"
            f"<body>{text}</body></html>\n")


def write_report(results: dict, out_dir) -> Dict[str, Path]:
    """Write ``report.md``, ``report.html`` and the two PNGs into ``out_dir``; returns their paths."""
    from speechfl.io import atomic_write_text

    out = Path(out_dir)
    figures = {"EER by gender": plot_eer_bars(results, out / "eer_by_gender.png"),
               "privacy-utility": plot_privacy_utility([results], [results["config"]["anonymized"].rstrip("/").split("/")[-1]],
                                                       out / "privacy_utility.png")}
    md = markdown(results)
    files = {"md": atomic_write_text(out / "report.md", md),
             "html": atomic_write_text(out / "report.html", _md_to_html(md, figures))}
    return {**files, **{k: v for k, v in figures.items()}}
