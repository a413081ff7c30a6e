"""One torchrun rank of ``engine: gossip-dist`` (see :mod:`speechfl.decentralized.dist_engine`).

    torchrun --standalone --nproc-per-node=4 -m speechfl.decentralized.dist_worker HPARAMS.yaml --engine=gossip-dist

Exit status: 0 on success, 3 when a peer rank failed (the message names it), 1 on any other error.
The environment variable ``SPEECHFL_GOSSIP_FAIL`` = ``"<rank>:<round>"`` makes that rank exit
abruptly at the start of that round, ``"<rank>:<round>:hang"`` makes it stop answering (fault
injection for the shutdown tests).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

logger = logging.getLogger("speechfl.gossip-dist")


def _inject_fault(rank: int, engine) -> None:
    spec = os.environ.get("SPEECHFL_GOSSIP_FAIL")
    if not spec:
        return
    parts = spec.split(":")
    bad_rank, bad_round, hang = int(parts[0]), int(parts[1]), parts[2:] == ["hang"]
    if bad_rank != rank:
        return
    original = engine.core.run_round

    def run_round(st):
        if st.round + 1 == bad_round:
            sys.stderr.write(f"rank {rank}: injected {'hang' if hang else 'failure'} at round {bad_round}\n")
            sys.stderr.flush()
            if hang:
                time.sleep(10 ** 6)
            os._exit(17)
        return original(st)

    engine.core.run_round = run_round


def main(argv) -> int:
    from speechfl.decentralized.config import GossipConfig
    from speechfl.decentralized.dist_engine import PARENT_ENV, RESULT
    from speechfl.decentralized.engine import GossipEngine
    from speechfl.decentralized.transport import DistTransport, PeerFailure
    from speechfl.experiment.hparams import load_hparams, split_argv
    from speechfl.experiment.results import capture_config
    from speechfl.federated.setup import RunOrigin, build_setup
    from speechfl.io import atomic_torch_save

    torch.set_num_threads(1)
    hparams_file, overrides = split_argv(argv)
    captured = capture_config(hparams_file, overrides)  # results.json records the file as it was run
    hparams = load_hparams(hparams_file, overrides)
    if hparams.get("engine") != "gossip-dist":
        raise SystemExit(f"{hparams_file}: engine is {hparams.get('engine')!r}; pass --engine=gossip-dist")
    cfg = GossipConfig.from_hparams(hparams)
    dist.init_process_group("gloo", timeout=timedelta(seconds=float(cfg.timeout_s)))
    rank = dist.get_rank()
    start = time.time()
    try:
        if rank == 0:  # rank 0 prepares the corpus and feature cache; the others then read them
            setup = build_setup(hparams, progress=False)
            dist.barrier()
        else:
            dist.barrier()
            setup = build_setup(hparams, progress=False)
        setup.origin = RunOrigin(hparams_file, tuple(overrides), config=captured)
        out = Path(hparams["output_folder"])
        transport = DistTransport(len(setup.partition.client_ids), cfg.timeout_s)
        engine = GossipEngine(setup, out, progress=(rank == 0), transport=transport, hosted=transport.hosted(),
                              distributed=True)
        _inject_fault(rank, engine)
        history, mean, sections = engine.run()
    except PeerFailure as exc:
        sys.stderr.write(f"gossip-dist: {exc}\n")
        return 3
    if rank == 0:
        if os.environ.get(PARENT_ENV):
            atomic_torch_save({"history": history, "mean": mean, "sections": sections}, out / RESULT)
        else:
            from speechfl.experiment.run import finalize

            finalize(setup, history, mean, hparams_file, overrides, out, time.time() - start, sections=sections)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    sys.exit(main(sys.argv[1:]))
