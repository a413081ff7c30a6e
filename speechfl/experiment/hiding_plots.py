"""Privacy-utility curves of speaker-hiding defenses for the sweep report (issue 19).

For a sweep with a ``defense`` axis (e.g. ``recipes/grids/speaker_hiding.yaml``), one row of
plots per value of the ``engine`` axis (one row if there is none):

* test CER against the strongest fresh speaker attacker's top-1 (``speechfl evaluate``: the
  families retrained on the protected representation, i.e. the semi-informed scenario), with
  chance and the raw-Fbank attacker as references;
* test CER against the strongest verification EER, overall and for female and male held-out
  speakers (the EER of the same family on each gender's trials), and, where the cell was
  evaluated against a baseline cell (``evaluate.baseline_cell``), the ignorant and
  lazy-informed scenarios' EER (strongest family of each).

The undefended cell (``defense`` value ``none``) is drawn as a star. Points of one defense at several
strengths are joined into its curve: the strength is the number in the defense's name (``white16``,
``white8``; ``vq48_init``, ``vq256_init``; ``confusion_w0.5``, ``confusion_w2``), so :func:`defense_family`
of those names is the same. :func:`hiding_points` is
the table behind the plots; :func:`hiding_markdown` writes it for the report.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Optional

GENDERS = ("F", "M")
# the EER markers beside the overall one: (point key, marker, colour, legend)
EER_MARKERS = (("eer_F", "^", "tab:red", "female"), ("eer_M", "v", "tab:green", "male"),
               ("eer_ignorant", "x", "tab:gray", "ignorant"), ("eer_lazy_informed", "+", "tab:purple", "lazy-informed"))


def defense_family(label: str) -> str:
    """A defense name without its strength: the numbers removed (``white16`` -> ``white``, ``vq48_init`` ->
    ``vq_init``, ``pool_confusion_w0.5`` -> ``pool_confusion_w``)."""
    return re.sub(r"\d+(\.\d+)?", "", label)


def _strongest_eer(report: Optional[dict]) -> Optional[float]:
    if not report or not report.get("families"):
        return None
    return min(float(f["eer"]) for f in report["families"].values())


def hiding_point(cell: str, axes: Dict[str, str], res: dict) -> Optional[dict]:
    """The figures of one cell's results.json (None when it has no speaker attack on representations)."""
    reports = (res.get("privacy") or {}).get("reports") or {}
    spk = reports.get("speaker")
    test = res.get("test") or {}
    if not spk or not spk.get("families") or test.get("cer") is None:
        return None
    ver = spk["families"][spk["strongest_verification"]]
    ident = spk["families"][spk["strongest_id"]]
    per_gender = ver.get("per_gender") or {}
    fb = reports.get("fbank_speaker") or {}
    scen = reports.get("scenarios") or {}
    return {
        "cell": cell, "group": axes.get("engine", ""), "label": axes.get("defense", cell),
        "cer": float(test["cer"]), "top1": float(spk["best_top1"]), "top1_family": spk["strongest_id"],
        "chance": float(spk["chance"]), "eer": float(spk["best_eer"]), "eer_family": spk["strongest_verification"],
        **{f"eer_{g}": (float(per_gender[g]["eer"]) if g in per_gender and per_gender[g].get("eer") is not None
                        else None) for g in GENDERS},
        "fbank_top1": float(fb["best_top1"]) if fb.get("families") else None,
        "fbank_eer": float(fb["best_eer"]) if fb.get("families") else None,
        "eer_ignorant": _strongest_eer(scen.get("ignorant")),
        "eer_lazy_informed": _strongest_eer(scen.get("lazy_informed")),
        "n_id_speakers": spk.get("n_attack_speakers"), "n_eer_speakers": spk.get("n_heldout_speakers"),
        # 95 % speaker-bootstrap intervals of the strongest families' figures, and what they rest on
        "top1_ci": _interval(ident.get("top1_ci")), "eer_ci": _interval(ver.get("eer_ci")),
        "n_id_test": ident.get("n_id_test"), "n_target_trials": ver.get("n_target_trials"),
        "n_nontarget_trials": ver.get("n_nontarget_trials"), "n_boot": (ident.get("top1_ci") or {}).get("n_boot"),
    }


def _interval(ci: Optional[dict]) -> Optional[tuple]:
    return (float(ci["low"]), float(ci["high"])) if ci and ci.get("low") is not None else None


def hiding_points(sweep_dir, cells: List[str]) -> List[dict]:
    """:func:`hiding_point` of every listed cell that has one, in order."""
    from speechfl.experiment.sweep import INDEX
    from speechfl.io import read_json

    sweep_dir = Path(sweep_dir)
    index = {e["name"]: e for e in read_json(sweep_dir / INDEX)["cells"]}
    out = []
    for cell in cells:
        entry = index.get(cell)
        path = sweep_dir / entry["dir"] / "results.json" if entry else None
        if path is None or not path.exists():
            continue
        p = hiding_point(cell, entry.get("axes") or {}, read_json(path))
        if p is not None:
            out.append(p)
    return out


def _f(v, fmt=".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _ci(ci: Optional[tuple]) -> str:
    return "" if ci is None else f" [{ci[0]:.3f}, {ci[1]:.3f}]"


def hiding_markdown(points: List[dict]) -> str:
    """The figures behind the curves as a Markdown table (EER as fractions, CER in %)."""
    lines = ["| engine | defense | CER % | top-1 [95 % CI] (x chance, family) | EER [95 % CI] (family) | "
             "EER F / M (gap) | EER ignorant / lazy |", "|---|---|---|---|---|---|---|"]
    for p in points:
        gap = abs(p["eer_F"] - p["eer_M"]) if p["eer_F"] is not None and p["eer_M"] is not None else None
        lines.append(f"| {p['group'] or '-'} | {p['label']} | {p['cer']:.1f} | {p['top1']:.3f}{_ci(p.get('top1_ci'))} "
                     f"({p['top1'] / p['chance']:.1f}x, {p['top1_family']}) | {p['eer']:.3f}{_ci(p.get('eer_ci'))} "
                     f"({p['eer_family']}) | "
                     f"{_f(p['eer_F'])} / {_f(p['eer_M'])} ({_f(gap)}) | "
                     f"{_f(p['eer_ignorant'])} / {_f(p['eer_lazy_informed'])} |")
    return "\n".join(lines)


def plot_hiding_curves(points: List[dict], path: Path) -> Path:
    """Two panels per engine: CER vs top-1, CER vs EER (overall, per gender, other scenarios)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys(p["group"] for p in points))
    fig, axes = plt.subplots(len(groups), 2, figsize=(12, 4.5 * len(groups)), squeeze=False)
    for row, g in zip(axes, groups):
        pts = [p for p in points if p["group"] == g]
        ax_id, ax_v = row
        for p in pts:
            star = p["label"] == "none"
            for ax, key in ((ax_id, "top1"), (ax_v, "eer")):
                ax.scatter(p["cer"], p[key], marker="*" if star else "o", s=160 if star else 40,
                           color="black" if star else "tab:blue", zorder=3)
                ax.annotate(p["label"], (p["cer"], p[key]), fontsize=7, xytext=(3, 3), textcoords="offset points")
            for key, marker, color, _ in EER_MARKERS:
                if p[key] is not None:
                    ax_v.scatter(p["cer"], p[key], marker=marker, color=color, s=30, zorder=2)
        families: Dict[str, List[dict]] = {}
        for p in pts:
            families.setdefault(defense_family(p["label"]), []).append(p)
        for fam in families.values():  # one defense at several strengths: its privacy-utility curve
            if len(fam) > 1:
                fam = sorted(fam, key=lambda q: q["cer"])
                for ax, key in ((ax_id, "top1"), (ax_v, "eer")):
                    ax.plot([q["cer"] for q in fam], [q[key] for q in fam], color="tab:blue", lw=0.8, alpha=0.6)
        chance = pts[0]["chance"]
        ax_id.axhline(chance, color="gray", ls=":", label=f"chance ({chance:.3f})")
        ax_id.axhline(5 * chance, color="gray", ls="--", lw=0.8, label="5x chance")
        ax_v.axhline(0.5, color="gray", ls=":", label="chance (0.5)")
        ref = next((p for p in pts if p["label"] == "none"), None)
        if ref is not None:  # issue 19's CER budget: +15 % relative to the undefended model
            for ax in (ax_id, ax_v):
                ax.axvline(1.15 * ref["cer"], color="tab:red", ls=":", lw=0.8, label="+15 % CER")
        fb = next((p for p in pts if p["fbank_top1"] is not None), None)
        if fb is not None:
            ax_id.axhline(fb["fbank_top1"], color="tab:orange", ls="--", label="raw Fbank")
            ax_v.axhline(fb["fbank_eer"], color="tab:orange", ls="--", label="raw Fbank")
        for key, marker, color, name in EER_MARKERS:
            if any(p[key] is not None for p in pts):
                ax_v.scatter([], [], marker=marker, color=color, label=name)
        ax_id.set_xlabel("test CER (%)")
        ax_id.set_ylabel("strongest fresh attacker top-1")
        ax_v.set_xlabel("test CER (%)")
        ax_v.set_ylabel("verification EER (higher = more private)")
        title = f"{g}: " if g else ""
        ax_id.set_title(f"{title}speaker identification (semi-informed)")
        ax_v.set_title(f"{title}speaker verification")
        ax_id.legend(fontsize=7)
        ax_v.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def sweep_hiding_figures(sweep_dir, table, out_dir) -> list:
    """``[(title, png, text)]`` for the report: the curves, when the sweep has a ``defense`` axis and points."""
    if "defense" not in table.axes:
        return []
    points = hiding_points(sweep_dir, [r.cell for r in table.rows])
    if not points:
        return []
    png = plot_hiding_curves(points, Path(out_dir) / "speaker_hiding.png")
    n = points[0]
    text = (f"Each defense point: test CER against the strongest fresh speaker attacker (retrained on the protected "
            f"representation; identification among {n['n_id_speakers']} speakers on {n['n_id_test']} test utterances, "
            f"chance {n['chance']:.3f}; verification on {n['n_eer_speakers']} held-out speakers, "
            f"{n['n_target_trials']} target / {n['n_nontarget_trials']} non-target trials; 95 % intervals by "
            "bootstrap over speakers); star = no defense; a line joins one defense's strengths; the "
            "dotted red line is +15 % CER over no defense.\n\n" + hiding_markdown(points))
    return [("Speaker hiding: privacy-utility curves", png, text)]
