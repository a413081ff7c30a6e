"""A real Flower deployment on loopback: SuperLink + two SuperNodes as subprocesses, 2 rounds via `flwr run`."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tests.integration.helpers import FED_HPARAMS, RECIPES, TINY_MODEL

pytest.importorskip("flwr", reason="Flower is not installed: pip install 'speechfl[flower]'")

FLOWER_APP = RECIPES / "federated" / "flower_app"
BIN = Path(sys.executable).parent
# The tiny corpus' four training speakers in two clients of two speakers, one client per SuperNode:
# every round's two clients train in parallel (a ClientApp is a fresh process per message).
NODES = {"a": ["client000"], "b": ["client001"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"flower-superlink exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"flower-superlink did not listen on {port} within {timeout} s")


def _descendants(pids: set) -> set:
    """Processes Flower detached from our process groups (SuperExec, ServerApp, ClientApps): they
    carry ``--parent-pid <pid>`` of their parent; follow the chain."""
    found, grew = set(pids), True
    while grew:
        grew = False
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in found:
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            for i, arg in enumerate(argv[:-1]):
                if arg == b"--parent-pid" and argv[i + 1].decode().isdigit() and int(argv[i + 1]) in found:
                    found.add(int(entry.name))
                    grew = True
    return found - set(pids)


def _stop(procs) -> None:
    children = _descendants({p.pid for p in procs})
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def flower_deployment(tmp_path):
    """A SuperLink and two SuperNodes on 127.0.0.1 (free ports); always shut down, even on failure."""
    home = tmp_path / "flwr_home"
    home.mkdir()
    link = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "speechfl-test"\n\n[superlink.speechfl-test]\n'
        f'address = "127.0.0.1:{link}"\ninsecure = true\n')
    env = {**os.environ, "FLWR_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1"}
    procs, logs = [], {}

    def start(name, argv):
        logs[name] = tmp_path / f"{name}.log"
        procs.append(subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=logs[name].open("wb"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
        return procs[-1]

    try:
        superlink = start("superlink", [str(BIN / "flower-superlink"), "--insecure", "--host", "127.0.0.1",
                                        "--port", str(link), "--disable-runtime-dependency-installation"])
        _wait_for_port(link, superlink, logs["superlink"])
        for name, clients in NODES.items():
            node_config = (f'partition-ids="{",".join(clients)}" threads=1 '
                           f'save-folder="{tmp_path / ("node_" + name) / "save"}" '
                           f'state-dir="{tmp_path / ("node_" + name) / "state"}"')
            start(f"supernode_{name}", [str(BIN / "flower-supernode"), "--insecure", "--superlink",
                                        f"127.0.0.1:{link}", "--port", str(_free_port()),
                                        "--node-config", node_config])
        yield {"env": env, "logs": logs, "cwd": tmp_path}
    finally:
        _stop(procs)


def test_two_rounds_on_superlink_and_two_supernodes(flower_deployment, tiny_hparams_overrides, tmp_path):
    out = tmp_path / "run"
    overrides = [*tiny_hparams_overrides, f"--output_folder={out}", *TINY_MODEL, "--rounds=2",
                 "--speakers_per_client=2", "--clients_per_round=2", "--eval_every=0",
                 "--uplink={name: ef, inner: {name: topk, fraction: 0.1}}",
                 "--client={local_epochs: null, local_steps: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}"]
    run_config = tmp_path / "run_config.toml"
    run_config.write_text(f"hparams-file = {json.dumps(str(FED_HPARAMS))}\n"
                          f"overrides = {json.dumps(shlex.join(overrides))}\n")
    env, logs = flower_deployment["env"], flower_deployment["logs"]
    cmd = [str(BIN / "flwr"), "run", str(FLOWER_APP), "speechfl-test", "--run-config", str(run_config), "--stream"]
    proc = subprocess.run(cmd, cwd=flower_deployment["cwd"], env=env, capture_output=True, text=True, timeout=240)
    results_file = out / "results.json"
    if not results_file.exists():
        tails = "\n".join(f"--- {n}\n{p.read_text()[-2000:]}" for n, p in logs.items())
        pytest.fail(f"no results.json; flwr run said:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}\n{tails}")
    res = json.loads(results_file.read_text())

    assert res["engine"] == "flower"
    assert [r["round"] for r in res["rounds"]] == [1, 2]
    assert all(r["clients"] == ["client000", "client001"] for r in res["rounds"])
    assert all(r["bytes_up"] > 0 and not r["rejected"] for r in res["rounds"])
    assert res["test"]["n_utts"] > 0 and (out / "model.pt").exists()
    # each node kept the error-feedback state of its own clients only
    for name, clients in NODES.items():
        held = sorted(p.stem for p in (tmp_path / f"node_{name}" / "state").rglob("*.pt"))
        assert held == clients, (name, held)

    # Oracle: the in-process engine on the same hparams (1 torch thread, like the nodes' threads=1)
    # ends with the same parameters, to the bit.
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.run import run_federated

    argv = [*overrides, f"--output_folder={tmp_path / 'inprocess'}"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = run_federated(load_hparams(FED_HPARAMS, argv), str(FED_HPARAMS), argv, progress=False)
    finally:
        torch.set_num_threads(threads)
    expected = torch.load(tmp_path / "inprocess" / "model.pt", weights_only=True)
    got = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [r["bytes_up"] for r in ref["rounds"]] == [r["bytes_up"] for r in res["rounds"]]
