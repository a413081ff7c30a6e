"""Fairness figures: what is drawn is what was given."""

import pytest

from speechfl.experiment import fairness_plots as fp


def test_group_bars_draw_the_given_heights(tmp_path, monkeypatch):
    heights = []
    plt = fp._pyplot()
    real = plt.Axes.bar

    def spy(self, x, h, *args, **kwargs):
        heights.append((kwargs.get("label"), list(h)))
        return real(self, x, h, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "bar", spy)
    path = fp.plot_group_bars({"fedavg": {"F": 40.0, "M": 20.0}, "afl": {"F": 30.0, "M": 22.0}}, tmp_path / "b.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert heights == [("F", [40.0, 30.0]), ("M", [20.0, 22.0])]
    with pytest.raises(ValueError, match="groups"):
        fp.plot_group_bars({"a": {"F": 1.0}, "b": {"M": 1.0}}, tmp_path / "x.png")


def test_plot_fairness_writes_bars_and_one_scatter_per_individual_cell(tmp_path):
    ind = {"who_pays": {"points": {"1": {"wer": 10.0, "risk": 0.9}, "2": {"wer": 30.0, "risk": 0.2}},
                        "pearson": -1.0}, "genders": {"1": "F", "2": "M"}}
    paths = fp.plot_fairness({"fedavg": {"gender": {"F": 40.0, "M": 20.0, "gap": 20.0, "mean": 30.0},
                                         "individual": ind},
                              "afl": {"gender": {"F": 30.0, "M": 22.0, "gap": 8.0, "mean": 26.0}}}, tmp_path)
    assert [p.name for p in paths] == ["group_cer.png", "speakers_fedavg.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
    with pytest.raises(ValueError, match="no group"):
        fp.plot_speaker_scatter({"3": {"wer": 1.0, "risk": 0.1}}, {}, tmp_path / "s.png")


def test_sweep_fairness_figures_read_every_cell(tmp_path):
    import json

    cells = {"a": {"F": 40.0, "M": 20.0}, "b": {"M": 30.0}}  # b has one gender: left out of the bars
    (tmp_path / "sweep.json").write_text(json.dumps({"cells": [{"name": c, "dir": c} for c in cells]}))
    for c, groups in cells.items():
        (tmp_path / c).mkdir()
        res = {"test": {"by_group": {"gender": {g: {"wer": v} for g, v in groups.items()}}}}
        if c == "a":
            res["fairness"] = {"individual_privacy": {"who_pays": {"points": {"1": {"wer": 5.0, "risk": 0.5}},
                                                                   "pearson": None}, "genders": {"1": "F"}}}
        (tmp_path / c / "results.json").write_text(json.dumps(res))
    figures = fp.sweep_fairness_figures(tmp_path, ["a", "b", "missing"], tmp_path / "out")
    assert [t for t, _, _ in figures] == ["Per-gender WER", "Per-speaker WER vs privacy risk: a"]
    assert all(p.exists() for _, p, _ in figures)
