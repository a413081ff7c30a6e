"""checkpoint.pt: plain contents only, refused when tampered, truncated, or from another configuration."""

import errno
import os

import pytest
import torch

from speechfl.federated.checkpoint import (CheckpointError, check_fingerprint, check_plain, config_fingerprint,
                                           differing_keys, load_checkpoint, resume_mode, save_checkpoint)
from speechfl.io import WriteError, atomic_torch_save, atomic_write_json, atomic_write_text

MARKER = "speechfl-test-payload-ran"


class _Payload:
    """Unpickling this runs os.system-like code; here it only writes a marker file."""

    def __init__(self, marker_path):
        self.marker_path = marker_path

    def __reduce__(self):
        return (open, (self.marker_path, "w"))


def _state():
    return {"round": 2, "step_offset": 8, "server": {"global_flat": torch.arange(4.0), "optimizer": {"m": None}},
            "history": [{"round": 1, "train_loss": 3.5, "clients": ["a", "b"], "weights": [0.5, 0.5]}],
            "torch_rng": torch.get_rng_state(), "config_fingerprint": {"seed": 1}}


def test_plain_checkpoint_round_trips_with_weights_only(tmp_path):
    save_checkpoint(_state(), tmp_path / "checkpoint.pt")
    got = load_checkpoint(tmp_path / "checkpoint.pt")
    assert torch.equal(got["server"]["global_flat"], torch.arange(4.0)) and got["history"][0]["clients"] == ["a", "b"]


def test_numpy_scalars_are_stored_as_python_numbers(tmp_path):
    import numpy as np

    state = dict(_state(), history=[{"valid_cer": np.float64(12.5), "n": np.int64(3), "ok": np.bool_(True)}])
    save_checkpoint(state, tmp_path / "c.pt")
    got = load_checkpoint(tmp_path / "c.pt")["history"][0]
    assert got == {"valid_cer": 12.5, "n": 3, "ok": True} and type(got["n"]) is int


def test_check_plain_names_the_offending_value():
    with pytest.raises(TypeError, match=r"checkpoint\['server'\]\['opt'\] is a .*_Payload"):
        check_plain({"server": {"opt": _Payload("x")}})
    with pytest.raises(TypeError, match=r"checkpoint\['s'\] is a builtins.set"):
        check_plain({"s": {1, 2}})
    with pytest.raises(TypeError, match="key 1.5 is a float"):
        check_plain({1.5: 2})
    check_plain({"a": [1, 2.0, "x", None, True, (torch.ones(1),)], 3: {}})


def test_saving_an_object_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="weights_only"):
        save_checkpoint({"round": 1, "bad": _Payload(str(tmp_path / MARKER))}, tmp_path / "checkpoint.pt")
    assert not (tmp_path / "checkpoint.pt").exists()


def test_tampered_checkpoint_is_refused_not_executed(tmp_path):
    marker = tmp_path / MARKER
    path = tmp_path / "checkpoint.pt"
    state = _state()
    state["server"]["optimizer"] = _Payload(str(marker))
    torch.save(state, path)  # what an attacker with write access to the run folder could leave
    with pytest.raises(CheckpointError, match=r"checkpoint.pt holds Python objects.*not loaded.*--resume=fresh"):
        load_checkpoint(path)
    assert not marker.exists()
    with open(path, "rb") as fh:  # the payload is real: an unrestricted load runs it
        torch.load(fh, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("keep", [0, 10, 0.5])
def test_truncated_checkpoint_is_one_clear_line(tmp_path, keep):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(_state(), path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "truncated or corrupt" in msg and "--resume=fresh" in msg


def test_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.ones(2)}, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="not a speechfl checkpoint"):
        load_checkpoint(tmp_path / "checkpoint.pt")


def test_fingerprint_ignores_where_to_run_and_names_differences():
    base = {"seed": 1, "rounds": 3, "output_folder": "a", "device": "cpu", "__set_seed": None,
            "client": {"batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-3}},
            "model": torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.1))}
    same = dict(base, output_folder="b", device="cuda", model=torch.nn.Sequential(torch.nn.Linear(3, 4),
                                                                                 torch.nn.Dropout(0.1)))
    assert differing_keys(config_fingerprint(base), config_fingerprint(same)) == []
    other = dict(base, seed=2, client={"batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-2}},
                 model=torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.3)))
    assert differing_keys(config_fingerprint(base), config_fingerprint(other)) == ["client", "model", "seed"]
    wider = dict(base, model=torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Dropout(0.1)))
    assert differing_keys(config_fingerprint(base), config_fingerprint(wider)) == ["model"]
    check_plain(config_fingerprint(base))  # storable in a weights_only checkpoint


def test_check_fingerprint_messages(tmp_path):
    with pytest.raises(CheckpointError, match=r"differing hparams: lr, seed\)"):
        check_fingerprint({"config_fingerprint": {"seed": 1, "lr": 0.1}}, {"seed": 2, "lr": 0.2}, "ck.pt")
    with pytest.raises(CheckpointError, match="without a configuration fingerprint"):
        check_fingerprint({"round": 1}, {"seed": 2}, "ck.pt")
    check_fingerprint({"config_fingerprint": {"seed": 1}}, {"seed": 1}, "ck.pt")


def test_resume_mode_is_validated():
    assert resume_mode({}) == "auto" and resume_mode({"resume": "fresh"}) == "fresh"
    with pytest.raises(ValueError, match="resume='never' is not one of auto, fresh"):
        resume_mode({"resume": "never"})


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("writer", ["text", "json", "torch"])
def test_full_disk_is_one_clear_line_and_leaves_the_old_file(tmp_path, monkeypatch, writer):
    path = tmp_path / "results.json"
    path.write_text("old\n")
    monkeypatch.setattr(os, "fsync", _full_disk)  # the write fails mid-way, as on a full disk
    with pytest.raises(WriteError) as info:
        {"text": lambda: atomic_write_text(path, "new"), "json": lambda: atomic_write_json(path, {"a": 1}),
         "torch": lambda: atomic_torch_save({"a": torch.ones(3)}, path)}[writer]()
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg and "no space left" in msg and "free some space" in msg
    assert info.value.errno == errno.ENOSPC
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary file left behind


def test_torch_full_disk_runtime_error_is_translated(tmp_path, monkeypatch):
    def boom(obj, fh):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0: "
                           "No space left on device")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(WriteError, match=r"cannot write .*ckpt.pt: no space left on the device"):
        atomic_torch_save({}, tmp_path / "ckpt.pt")


_FINGERPRINT_SCRIPT = """
import json, sys
from speechfl.experiment.hparams import load_hparams
from speechfl.federated.checkpoint import config_fingerprint
from tests.integration.helpers import FED_HPARAMS
hp = load_hparams(FED_HPARAMS, ["--adversary={target: speaker, heads: [linear], weight: 1.0}"])
hp["extra_set"] = {"b", "a", "c"}
print(json.dumps(config_fingerprint(hp), sort_keys=True))
"""


def test_fingerprint_is_identical_across_processes():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    outs = [subprocess.run([sys.executable, "-c", _FINGERPRINT_SCRIPT], cwd=root, capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed, "OMP_NUM_THREADS": "1"}, check=True).stdout
            for seed in ("1", "2")]
    assert outs[0] == outs[1] and '"model"' in outs[0]
