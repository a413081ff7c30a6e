"""``engine: gossip-dist``: the gossip engine on torch.distributed (gloo point-to-point), started with torchrun.

Two ways to run it (docs/decentralized.md):

- ``speechfl train hparams.yaml --engine=gossip-dist``: this process builds the run, then starts
  ``torchrun --standalone --nproc-per-node=<gossip.processes>`` on :mod:`speechfl.decentralized.dist_worker`
  and waits; rank 0 hands back the history and the honest nodes' average, which this process tests
  and writes to results.json like every engine.
- ``torchrun ... -m speechfl.decentralized.dist_worker hparams.yaml --engine=gossip-dist [--k=v]``
  directly (several machines: ``--nnodes``, ``--rdzv-endpoint``): rank 0 writes results.json itself.

Node ``i`` is hosted by rank ``i % world``; every rank trains its nodes with the same client step
and seeds as the in-process engine and mixes in the same order, so the models are bitwise equal
to ``engine: gossip`` on the same seed (with one torch thread per process in both). A rank that
dies is reported with its rank and nodes, and the others stop (timeouts on every wait); torchrun
then ends the run with a non-zero status. There is no resume for ``gossip-dist`` (rerun it; the
in-process engine resumes bit-identically).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from speechfl.federated.engines import register_engine

RESULT = "gossip_dist_result.pt"
ORIGIN = "gossip_dist_origin.json"
PARENT_ENV = "SPEECHFL_GOSSIP_PARENT"


def torchrun_command(processes: int, hparams_file: str, overrides) -> list:
    """The command line that starts the ranks on this machine (loopback rendezvous)."""
    if isinstance(overrides, str):
        import yaml

        mapping = yaml.safe_load(overrides) or {}
        overrides = [f"--{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
                     for k, v in mapping.items()]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "speechfl.decentralized.dist_worker", str(hparams_file), *list(overrides)]


def failure_summary(stderr_lines) -> str:
    """One line from torchrun's stderr: which rank failed first and how, and what the survivors reported."""
    import re

    text = "".join(stderr_lines)
    parts = []
    root = text.split("Root Cause", 1)
    if len(root) == 2:
        rank = re.search(r"rank\s*:\s*(\d+)", root[1])
        code = re.search(r"exitcode\s*:\s*(-?\d+)", root[1])
        if rank:
            parts.append(f"rank {rank.group(1)} failed first" + (f" (exit code {code.group(1)})" if code else ""))
    parts += sorted({m.strip() for m in re.findall(r"gossip-dist: (rank \d+: .*)", text)})
    if not parts:
        tail = [ln.strip() for ln in stderr_lines if ln.strip()][-3:]
        parts.append(" | ".join(tail) or "no output")
    return "; ".join(parts)


@register_engine("gossip-dist")
def run_gossip_dist(setup, out: Path, progress: bool):
    """Start the ranks with torchrun on this machine, wait, and return rank 0's history and average model."""
    from speechfl.decentralized.config import GossipConfig, check_composition

    cfg = GossipConfig.from_hparams(setup.hparams)
    check_composition(setup, cfg, distributed=True)
    if setup.origin is None:
        raise ValueError("engine gossip-dist rebuilds the run in every rank and needs the hparams file it came from")
    out = Path(out)
    result = out / RESULT
    if result.exists():
        result.unlink()
    cmd = torchrun_command(int(cfg.processes), setup.origin.hparams_file, setup.origin.overrides)
    env = dict(os.environ, OMP_NUM_THREADS="1", **{PARENT_ENV: "1"})
    proc = subprocess.Popen(cmd, env=env, stdout=None if progress else subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    lines = []
    for line in proc.stderr:  # stream the ranks' logs through, keep them for the failure summary
        lines.append(line)
        if progress:
            sys.stderr.write(line)
    status = proc.wait()
    if status != 0 or not result.exists():
        raise RuntimeError(f"gossip-dist: torchrun exited with status {status}: {failure_summary(lines)} "
                           f"(command: {' '.join(cmd)})")
    saved = torch.load(result, weights_only=True)
    return saved["history"], saved["mean"], saved["sections"]
