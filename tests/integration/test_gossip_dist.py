"""gossip-dist: two torchrun ranks (gloo on loopback) give bitwise the in-process gossip models, and a dying
rank stops the run with its rank named instead of hanging it."""

import time

import pytest
import torch

from speechfl.experiment.hparams import load_hparams
from speechfl.experiment.run import run_federated
from tests.integration.helpers import RECIPES, TINY_MODEL

pytestmark = pytest.mark.slow  # integration tests that train a model
GOSSIP_HPARAMS = RECIPES / "decentralized" / "hparams" / "synthetic_gossip.yaml"
EXTRA = ("--rounds=2", "--eval_every=0",
         "--client={local_epochs: null, local_steps: 2, batch_size: 4, optimizer: {name: adam, lr: 0.003}}")


def run(base, out, *extra):
    argv = [*base, f"--output_folder={out}", *TINY_MODEL, *EXTRA, *extra]
    return run_federated(load_hparams(GOSSIP_HPARAMS, argv), str(GOSSIP_HPARAMS), argv, progress=False)


def test_two_ranks_equal_the_inprocess_engine_bitwise(tiny_hparams_overrides, tmp_path):
    # each rank runs torch with one thread (dist_worker); so must the in-process reference
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    gossip = "--gossip={topology: ring, algorithm: choco, gamma: 0.5, processes: 2, timeout_s: 60, eval_nodes: 1}"
    try:
        ref = run(tiny_hparams_overrides, tmp_path / "inprocess", gossip, "--uplink={name: qsgd, levels: 4}")
        res = run(tiny_hparams_overrides, tmp_path / "dist", gossip, "--uplink={name: qsgd, levels: 4}",
                  "--engine=gossip-dist")
    finally:
        torch.set_num_threads(threads)
    a = torch.load(tmp_path / "inprocess" / "nodes.pt", weights_only=True)
    b = torch.load(tmp_path / "dist" / "nodes.pt", weights_only=True)
    assert a.keys() == b.keys() and len(a) == 4
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["1001"], a["1002"])  # a ring after 2 rounds: nodes still differ
    assert res["engine"] == "gossip-dist" and ref["engine"] == "gossip"
    for x, y in zip(ref["rounds"], res["rounds"]):
        assert x["bytes_up"] == y["bytes_up"] and x["train_loss"] == pytest.approx(y["train_loss"], abs=1e-12)
        assert x["consensus_distance"] == pytest.approx(y["consensus_distance"], rel=1e-9)
    assert res["test"]["cer"] == ref["test"]["cer"]


def test_a_dying_rank_is_reported_and_the_run_stops(tiny_hparams_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHFL_GOSSIP_FAIL", "1:2")  # rank 1 exits abruptly at the start of round 2
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="torchrun exited with status") as err:
        run(tiny_hparams_overrides, tmp_path / "dead", "--engine=gossip-dist",
            "--gossip={topology: ring, processes: 2, timeout_s: 30, eval_nodes: 1}")
    assert time.monotonic() - start < 150  # well under the hang a missing timeout would cause
    assert "rank 1 failed first (exit code 17)" in str(err.value)
    assert not (tmp_path / "dead" / "gossip_dist_result.pt").exists()


def test_a_silent_rank_times_out_and_no_rank_hangs(tiny_hparams_overrides, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHFL_GOSSIP_FAIL", "1:2:hang")  # rank 1 stops answering in round 2
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="torchrun exited with status") as err:
        run(tiny_hparams_overrides, tmp_path / "silent", "--engine=gossip-dist",
            "--gossip={topology: ring, processes: 2, timeout_s: 10, eval_nodes: 1}")
    assert time.monotonic() - start < 150  # the 10 s timeout fired; torchrun then ended the silent rank
    assert "rank 0: rank 1 (nodes [1, 3]) sent nothing for 10 s in round 2" in str(err.value)
