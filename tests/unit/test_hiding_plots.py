"""Speaker-hiding curves of the sweep report: figures read from hand-built results, table and PNG written."""

import json

from speechfl.experiment.hiding_plots import defense_family, hiding_markdown, hiding_point, hiding_points, sweep_hiding_figures
from speechfl.experiment.table import Row, Table


def _family(top1, eer, eer_f, eer_m):
    return {"top1": top1, "eer": eer, "per_gender": {"F": {"eer": eer_f}, "M": {"eer": eer_m}},
            "top1_ci": {"low": top1 - 0.05, "high": top1 + 0.04}, "eer_ci": {"low": eer - 0.02, "high": eer + 0.03},
            "n_id_test": 160, "n_target_trials": 300, "n_nontarget_trials": 2500}


def _results(cer, families, strongest_id, strongest_ver, scenarios=None):
    speaker = {"families": families, "strongest_id": strongest_id, "strongest_verification": strongest_ver,
               "best_top1": families[strongest_id]["top1"], "best_eer": families[strongest_ver]["eer"],
               "chance": 0.05, "n_attack_speakers": 20, "n_heldout_speakers": 8}
    fbank = {"families": {"linear": _family(0.9, 0.02, 0.03, 0.01)}, "best_top1": 0.9, "best_eer": 0.02}
    return {"test": {"cer": cer}, "privacy": {"reports": {"speaker": speaker, "fbank_speaker": fbank,
                                                           "scenarios": scenarios}}}


def test_hiding_point_takes_the_strongest_families_and_their_per_gender_eer():
    fams = {"linear": _family(0.6, 0.20, 0.25, 0.15), "xvector": _family(0.4, 0.10, 0.12, 0.08)}
    scen = {"ignorant": {"families": {"linear": {"eer": 0.45}, "xvector": {"eer": 0.40}}},
            "lazy_informed": {"families": {"linear": {"eer": 0.35}}}, "semi_informed": {"families": fams}}
    p = hiding_point("c", {"engine": "federated", "defense": "vq48"}, _results(30.0, fams, "linear", "xvector", scen))
    assert (p["group"], p["label"], p["cer"], p["top1"], p["top1_family"]) == ("federated", "vq48", 30.0, 0.6, "linear")
    assert (p["eer"], p["eer_family"], p["eer_F"], p["eer_M"]) == (0.10, "xvector", 0.12, 0.08)
    assert (p["eer_ignorant"], p["eer_lazy_informed"]) == (0.40, 0.35)  # strongest = lowest EER per scenario
    assert (p["fbank_top1"], p["fbank_eer"]) == (0.9, 0.02)
    assert hiding_point("c", {}, {"test": {"cer": 1.0}, "privacy": {}}) is None
    row = hiding_markdown([p]).splitlines()[-1]
    assert (p["top1_ci"], p["eer_ci"]) == ((0.6 - 0.05, 0.6 + 0.04), (0.10 - 0.02, 0.10 + 0.03))  # of those families
    assert row == ("| federated | vq48 | 30.0 | 0.600 [0.550, 0.640] (12.0x, linear) | 0.100 [0.080, 0.130] (xvector) | "
                   "0.120 / 0.080 (0.040) | 0.400 / 0.350 |")


def test_sweep_figures_only_for_a_defense_axis_and_write_the_png(tmp_path):
    fams = {"linear": _family(0.6, 0.20, 0.25, 0.15)}
    cells = {"defense-none": ("none", 25.0), "defense-norm": ("norm", 26.0)}
    index = {"cells": []}
    for name, (label, cer) in cells.items():
        d = tmp_path / "cells" / name
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(_results(cer, fams, "linear", "linear")))
        index["cells"].append({"name": name, "dir": f"cells/{name}", "axes": {"defense": label}})
    (tmp_path / "sweep.json").write_text(json.dumps(index))
    assert [p["label"] for p in hiding_points(tmp_path, list(cells))] == ["none", "norm"]
    rows = [Row(cell=c, axes={"defense": v[0]}, kind="federated", status="done", values={}) for c, v in cells.items()]
    (title, png, text), = sweep_hiding_figures(tmp_path, Table(axes=["defense"], rows=rows), tmp_path)
    assert png.exists() and png.stat().st_size > 1000 and "| - | norm | 26.0 |" in text
    assert "on 160 test utterances, chance 0.050" in text and "300 target / 2500 non-target trials" in text
    assert sweep_hiding_figures(tmp_path, Table(axes=["compression"], rows=rows), tmp_path) == []


def test_defense_family_drops_the_strength():
    assert defense_family("white16") == defense_family("white8") == "white"
    assert defense_family("vq48_init") == defense_family("vq256_init") == "vq_init"
    assert defense_family("pool_confusion_w0.5") == defense_family("pool_confusion_w2") == "pool_confusion_w"
    assert defense_family("inner_white16") != defense_family("white16")
    assert defense_family("none") == "none"
