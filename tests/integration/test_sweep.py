"""`speechfl sweep` / `speechfl report` on the tiny corpus: table, resume, failed cells, plots."""

import csv
import json
import os

import pytest
import torch
import yaml

from speechfl.cli import main as cli_main
from speechfl.experiment.demo import ensure_corpus
from speechfl.experiment.report import write_report
from speechfl.experiment.sweep import GridError, load_grid, run_sweep
from speechfl.experiment.table import COLUMN_KEYS
from tests.integration.helpers import FED_HPARAMS, TINY_MODEL

FAST = ["--rounds=2", "--clients_per_round=4", "--eval_every=1", "--record_updates=[1, 2]", "--augment=null",
        "--client={local_epochs: null, local_steps: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}"]
TOPK = "--uplink={name: ef, inner: {name: topk, fraction: 0.05}}"


def write_grid(path, tiny_hparams_overrides, **extra):
    spec = {
        "base": str(FED_HPARAMS),
        "overrides": [*tiny_hparams_overrides, *TINY_MODEL, *FAST],
        "grid": {"compression": {"none": [], "topk_ef": [TOPK]}, "defense": {"none": []}},
        "cells": [{"name": "broken", "overrides": ["--aggregator=no_such_aggregator"]}],
        "evaluate": {"attackers": ["linear"], "max_per_speaker": 6},
    }
    spec.update(extra)
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def swept(tiny_hparams_overrides, tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    grid = write_grid(root / "grid.yaml", tiny_hparams_overrides)
    return grid, root / "out", run_sweep(grid, root / "out", progress=False)


def test_grid_cells_are_named_from_the_axes_and_run(swept):
    grid, out, result = swept
    names = [c.name for c in result.cells]
    assert names == ["compression-none__defense-none", "compression-topk_ef__defense-none", "broken"]
    assert [c.status for c in result.cells] == ["done", "done", "failed"]
    assert all(c.action == "ran" for c in result.cells)
    index = json.loads((out / "sweep.json").read_text())
    assert [c["status"] for c in index["cells"]] == ["done", "done", "failed"]


def test_table_has_every_column_filled_or_marked_not_applicable(swept):
    _, out, _ = swept
    rows = {r["cell"]: r for r in csv.DictReader((out / "table.csv").open())}
    assert set(rows) == {"compression-none__defense-none", "compression-topk_ef__defense-none", "broken"}
    for name in ("compression-none__defense-none", "compression-topk_ef__defense-none"):
        row = rows[name]
        for key in COLUMN_KEYS:
            value = row[key]
            assert value and (value.startswith("n/a: ") and len(value) > 5 or value == value.strip()), (key, value)
        for key in ("test_wer", "test_cer", "spk_wer_std", "attacker_top1", "attacker_eer", "membership_auc",
                    "uplink_mb", "client_s_per_round"):
            assert not row[key].startswith("n/a"), (name, key, row[key])
        assert row["epsilon_user"] == "n/a: no user-level DP" and row["wer_under_attack"] == "n/a: no attack"
        assert 0.0 <= float(row["attacker_top1"]) <= 1.0
    # Top-5% with error feedback really sends fewer bytes than dense fp32.
    assert float(rows["compression-topk_ef__defense-none"]["uplink_mb"]) < \
        0.2 * float(rows["compression-none__defense-none"]["uplink_mb"])
    assert rows["broken"]["status"] == "failed" and rows["broken"]["test_wer"] == "n/a: run failed"
    md = (out / "table.md").read_text()
    assert sum(line.startswith("| ") for line in md.splitlines()) == 4 and "n/a[" in md


def test_failed_cell_keeps_its_traceback(swept):
    _, out, result = swept
    err = (out / "cells" / "broken" / "error.txt").read_text()
    assert "Traceback" in err and "no_such_aggregator" in err
    assert "no_such_aggregator" in result.cells[2].error


def test_report_writes_pngs_and_html_that_references_them(swept):
    _, out, _ = swept
    rep = write_report(out)
    # 3 Pareto views, learning curves, and the speaker-hiding curves (the grid has a 'defense' axis)
    assert len(rep.pngs) == 5 and rep.pngs[-1].name == "speaker_hiding.png"
    page = rep.html.read_text()
    md = rep.markdown.read_text()
    for png in rep.pngs:
        assert png.parent == rep.html.parent and png.stat().st_size > 5000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"href='{png.name}'" in page and f"({png.name})" in md
    assert page.count("data:image/png;base64,") == 5
    # both trained cells have WER and uplink: at least one is on that front, and the failed cell is listed as missing
    assert rep.optimal["wer_vs_uplink"]
    assert "broken (run failed)" in page
    # each trained cell's median-CER test utterance, reference beside hypothesis (not the failed cell)
    from speechfl.experiment.report import example_transcripts

    examples = example_transcripts(out, ["compression-none__defense-none", "compression-topk_ef__defense-none",
                                         "broken"])
    assert [e[0] for e in examples] == ["compression-none__defense-none", "compression-topk_ef__defense-none"]
    utts = json.loads((out / "cells" / "compression-none__defense-none" / "test_utterances.json").read_text())
    cers = sorted(100.0 * u["char_errors"] / u["n_chars"] for u in utts)
    assert examples[0][3] == cers[len(cers) // 2] and examples[0][1] in {u["ref"] for u in utts}
    assert "## Example transcripts" in md and f"| {examples[0][1]} |" in md and "Example transcripts" in page


def test_report_plots_decentralized_cells(swept, tmp_path):
    """A cell with a decentralized section gets the CER / consensus-distance figure; others are not plotted."""
    import shutil

    _, out, _ = swept
    copy = tmp_path / "sweep"
    shutil.copytree(out, copy)
    path = copy / "cells" / "compression-none__defense-none" / "results.json"
    res = json.loads(path.read_text())
    res["decentralized"] = {"topology": "ring", "algorithm": "dpsgd"}
    for i, r in enumerate(res["rounds"]):
        r.update(valid_cer=90.0 - i, consensus_distance=1.0 / (i + 1))
    path.write_text(json.dumps(res))
    rep = write_report(copy)
    dec = copy / "report" / "decentralized.png"
    assert dec in rep.pngs and dec.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Decentralized runs" in rep.markdown.read_text()
    assert not (out / "report" / "decentralized.png").exists()  # the plain sweep has no decentralized cell


def test_rerun_skips_finished_cells_and_retries_the_failed_one(swept, capsys):
    grid, out, _ = swept
    stamps = {p: os.stat(p).st_mtime_ns for p in out.glob("cells/*/results.json")}
    assert len(stamps) == 2
    threads = torch.get_num_threads()
    try:
        with pytest.raises(SystemExit) as exc:  # the broken cell still fails: non-zero exit, table printed
            cli_main(["sweep", str(grid), "--out", str(out), "--no-progress", "--threads", "1"])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert exc.value.code == 1
    printed = capsys.readouterr().out
    assert "2 already finished" in printed and "failed: broken" in printed and "| cell |" in printed
    assert {p: os.stat(p).st_mtime_ns for p in out.glob("cells/*/results.json")} == stamps
    cli_main(["report", str(out)])
    assert "report:" in capsys.readouterr().out


def test_changed_overrides_for_an_existing_cell_folder_are_refused(swept, tiny_hparams_overrides, tmp_path):
    _, out, _ = swept
    other = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides,
                       grid={"compression": {"none": ["--rounds=3"]}, "defense": {"none": []}})
    with pytest.raises(GridError, match="other overrides"):
        run_sweep(other, out, progress=False)


@pytest.mark.parametrize("change,message", [
    ({"colour": 1}, "unknown keys"),
    ({"overrides": ["--no_such_key=1"]}, "unknown override key"),
    ({"overrides": ["rounds=2"]}, "--key=value"),
    ({"base": "missing.yaml"}, "found neither"),
    ({"cells": [{"name": "compression-none__defense-none", "overrides": []}]}, "duplicate cell names"),
    ({"grid": {"compression": {}}}, "non-empty"),
    ({"evaluate": "yes"}, "'evaluate' is a mapping"),
])
def test_bad_grid_files_are_clear_errors(tmp_path, tiny_hparams_overrides, change, message):
    grid = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, **change)
    with pytest.raises(GridError, match=message):
        load_grid(grid)


def test_unknown_evaluate_argument_is_refused_before_anything_runs(tmp_path, tiny_hparams_overrides):
    grid = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, evaluate={"attackerz": ["linear"]})
    with pytest.raises(GridError, match="unknown evaluate argument"):
        run_sweep(grid, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "cells").exists()


def test_demo_command_reuses_finished_cells_and_prints_the_report_path(swept, capsys):
    grid, out, _ = swept
    with pytest.raises(SystemExit) as exc:  # the grid's broken cell fails again
        cli_main(["demo", "--out", str(out), "--grid", str(grid), "--no-progress"])
    assert exc.value.code == 1
    printed = capsys.readouterr().out
    assert "| compression-none__defense-none |" in printed and "report: " in printed
    assert (out / "report" / "report.html").exists()


def test_demo_generates_the_grid_corpus_when_absent(tmp_path, tiny_hparams_overrides):
    corpus = tmp_path / "fresh_corpus"
    grid = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, overrides=[
        f"--data_folder={corpus}", "--synthetic={speakers: 3, utterances: 2, seed: 5}"])
    assert ensure_corpus(load_grid(grid), progress=False) == corpus
    assert sorted(p.name for p in corpus.iterdir() if p.is_dir()) == ["dev", "test", "train"]
    assert len(list(corpus.rglob("*.flac"))) == 6


def test_cells_filter_runs_a_part_now_and_the_rest_later_in_the_same_folder(tmp_path, tiny_hparams_overrides):
    grid = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, cells=[], evaluate=None)
    with pytest.raises(GridError, match=r"--cells 'compression=zip' matches no cell"):
        run_sweep(grid, tmp_path / "out", progress=False, only=["compression=zip"])
    part = run_sweep(grid, tmp_path / "out", progress=False, only=["compression=topk_ef"])
    assert [(c.name, c.action) for c in part.cells] == [("compression-none__defense-none", "not selected"),
                                                         ("compression-topk_ef__defense-none", "ran")]
    assert not (tmp_path / "out" / "cells" / "compression-none__defense-none" / "results.json").exists()
    rest = run_sweep(grid, tmp_path / "out", progress=False)
    assert [c.action for c in rest.cells] == ["ran", "skipped"]
    assert [c.status for c in rest.cells] == ["trained", "trained"]  # no evaluate in this grid


def test_jobs_run_cells_in_worker_processes_with_the_same_results(swept, tiny_hparams_overrides, tmp_path):
    _, out1, sequential = swept
    seeds = {"values": [7], "cells": ["compression=topk_ef"]}
    grid = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, seeds=seeds)
    result = run_sweep(grid, tmp_path / "out", progress=False, jobs=2, threads=1)
    status = {c.name: c.status for c in result.cells}
    assert status == {"compression-none__defense-none": "done", "compression-topk_ef__defense-none": "done",
                      "broken": "failed", "compression-topk_ef__defense-none__seed-7": "done"}
    assert all(c.action == "ran" and c.seconds > 0 for c in result.cells)
    for name in ("compression-none__defense-none", "compression-topk_ef__defense-none"):
        a = json.loads((out1 / "cells" / name / "results.json").read_text())
        b = json.loads((tmp_path / "out" / "cells" / name / "results.json").read_text())
        assert b["test"] == a["test"] and b["privacy"]["representations"] == a["privacy"]["representations"]
    repeat_name = "compression-topk_ef__defense-none__seed-7"
    repeat = json.loads((tmp_path / "out" / "cells" / repeat_name / "results.json").read_text())
    assert repeat["config"]["argv"][-2:] == ["--seed=7", f"--output_folder={tmp_path / 'out' / 'cells' / repeat_name}"]
    rows = {r["cell"]: r for r in csv.DictReader((tmp_path / "out" / "table.csv").open())}
    assert rows["compression-topk_ef__defense-none__seed-7"]["seed"] == "7"
    assert rows["compression-topk_ef__defense-none"]["seed"] == rows["compression-none__defense-none"]["seed"] != "7"


def test_seeds_block_repeats_the_chosen_cells_and_bad_blocks_are_refused(tmp_path, tiny_hparams_overrides):
    seeds = {"values": [3, 4], "cells": ["compression-none__defense-none"]}
    grid = load_grid(write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, seeds=seeds))
    base_seed = int(next(line.split(":")[1] for line in FED_HPARAMS.read_text().splitlines()
                         if line.startswith("seed:")))
    assert grid.axes == ["compression", "defense", "seed"]
    cells = {c.name: c for c in grid.cells}
    assert list(cells) == ["compression-none__defense-none", "compression-topk_ef__defense-none", "broken",
                           "compression-none__defense-none__seed-3", "compression-none__defense-none__seed-4"]
    assert cells["compression-none__defense-none"].axes["seed"] == str(base_seed)
    assert cells["broken"].axes == {"seed": str(base_seed)}
    rep = cells["compression-none__defense-none__seed-4"]
    assert rep.axes == {"compression": "none", "defense": "none", "seed": "4"}
    assert rep.overrides == (*cells["compression-none__defense-none"].overrides, "--seed=4")
    for bad, message in [({"values": [3]}, r"'seeds' is \{values"),
                         ({"values": [3, 3], "cells": ["broken"]}, "distinct integers"),
                         ({"values": [True], "cells": ["broken"]}, "distinct integers"),
                         ({"values": [3], "cells": ["compression=zip"]}, "seeds.cells 'compression=zip' matches no"),
                         ({"values": [base_seed], "cells": ["broken"]}, "repeat a seed")]:
        with pytest.raises(GridError, match=message):
            load_grid(write_grid(tmp_path / "bad.yaml", tiny_hparams_overrides, seeds=bad))


@pytest.mark.parametrize("jobs", [1, 2])
def test_baseline_cell_is_trained_first_and_gives_the_voiceprivacy_scenarios(tmp_path, tiny_hparams_overrides, jobs):
    # the dependent cell comes first in grid order: its baseline must still be trained before it is evaluated
    grid = write_grid(tmp_path / "grid.yaml", tiny_hparams_overrides, cells=[],
                      grid={"compression": {"topk_ef": [TOPK], "none": []}, "defense": {"none": []}},
                      evaluate={"attackers": ["linear"], "max_per_speaker": 6,
                                "baseline_cell": "compression-none__defense-{defense}"})
    result = run_sweep(grid, tmp_path / "out", progress=False, jobs=jobs)
    assert [c.status for c in result.cells] == ["done", "done"]
    cells = tmp_path / "out" / "cells"
    dep = json.loads((cells / "compression-topk_ef__defense-none" / "results.json").read_text())
    base = json.loads((cells / "compression-none__defense-none" / "results.json").read_text())
    assert dep["evaluation"]["baseline"] == str(cells / "compression-none__defense-none")
    assert set(dep["privacy"]["reports"]["scenarios"]) == {"ignorant", "lazy_informed", "semi_informed"}
    assert base["evaluation"]["baseline"] is None and base["privacy"]["reports"]["scenarios"] is None
    # the baseline's results.json was written before the dependent's evaluation began
    assert (cells / "compression-none__defense-none" / "results.json").stat().st_mtime < \
        (cells / "compression-topk_ef__defense-none" / "results.json").stat().st_mtime


def test_bad_baseline_cell_templates_are_refused(tmp_path, tiny_hparams_overrides):
    ev = {"attackers": ["linear"]}
    for template, message in [("compression-{nope}__defense-none", "does not format"),
                              ("compression-zip__defense-{defense}", "'compression-zip__defense-none'.*no cell"),
                              ("compression-{compression}", "no cell")]:
        with pytest.raises(GridError, match=message):
            load_grid(write_grid(tmp_path / "g.yaml", tiny_hparams_overrides, cells=[],
                                 evaluate={**ev, "baseline_cell": template}))
    with pytest.raises(GridError, match="both 'baseline'"):
        load_grid(write_grid(tmp_path / "g.yaml", tiny_hparams_overrides, cells=[],
                             evaluate={**ev, "baseline": "x", "baseline_cell": "compression-none__defense-none"}))
    with pytest.raises(GridError, match="has a baseline of its own"):  # a-p__b-q -> a-q__b-p -> a-p__b-q
        load_grid(write_grid(tmp_path / "g.yaml", tiny_hparams_overrides, cells=[],
                             grid={"a": {"p": [], "q": []}, "b": {"p": [], "q": []}},
                             evaluate={**ev, "baseline_cell": "a-{b}__b-{a}"}))
