"""The same federated workload on the in-process engine and on Flower's simulation engine (Ray).

Usage::

    python benchmarks/bench_flower.py                          # 20 speaker-clients x 3 rounds, small model
    python benchmarks/bench_flower.py --clients 10 --rounds 2 --local-steps 1
    python benchmarks/bench_flower.py --flower-cpus 2          # 2 CPUs (and torch threads) per ClientApp
    python benchmarks/bench_flower.py --ray-cpus 1             # Flower runs one client at a time too

Both runs use the federated recipe's hparams with ``clients_per_round = --clients``, a small
model and ``--local-steps`` local steps per client. The in-process engine trains clients one
after another with ``--threads`` torch threads (default 1); Flower runs ``--ray-cpus /
--flower-cpus`` ClientApps at a time in Ray actors (default: every usable CPU, 1 CPU per
client). Printed: wall time of each run and their ratio (target: in-process at least 3x
faster on one machine), per-round times, Flower's fixed start cost (Ray, actors, each node's
setup: the handshake is in round 1) and its steady per-round overhead (rounds 2+: round wall
time minus the clients' training time, per engine), i.e. what each round of scale-out costs
before parallel clients pay it back. Also the largest parameter difference between the two
final models.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
HPARAMS = ROOT / "recipes" / "LibriSpeech" / "ASR" / "federated" / "hparams" / "synthetic_fedavg.yaml"
SMALL_MODEL = ["--encoder=conv_rnn", "--channels=16", "--proj=96", "--hidden=96", "--layers=2"]


def run(engine: str, args, out: Path) -> dict:
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.run import run_federated

    argv = [f"--data_folder={args.corpus}", f"--feature_cache={args.corpus.parent / 'feature_cache'}",
            f"--output_folder={out}", f"--rounds={args.rounds}", f"--clients_per_round={args.clients}",
            f"--engine={engine}", "--eval_every=0", *SMALL_MODEL,
            f"--client={{local_epochs: null, local_steps: {args.local_steps}, batch_size: 8}}"]
    hparams = load_hparams(HPARAMS, argv)
    # Flower placement is server-side only (not part of what clients compute); set it here so the
    # benchmark works whether or not the recipe's hparams file has a `flower:` block to override.
    hparams["flower"] = {**(hparams.get("flower") or {}), "client_cpus": args.flower_cpus, "ray_cpus": args.ray_cpus}
    start = time.perf_counter()
    res = run_federated(hparams, str(HPARAMS), argv, progress=False)
    res["wall"] = time.perf_counter() - start
    return res


def main(argv=None):
    from speechfl.federated.flower.config import usable_cpus

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=20, help="clients per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--local-steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of the in-process run (default 1, as each Flower ClientApp)")
    p.add_argument("--flower-cpus", type=float, default=1.0, help="CPUs (and threads) per Flower ClientApp")
    p.add_argument("--ray-cpus", type=int, default=None,
                   help="CPUs of Flower's Ray instance (default: every usable CPU); --ray-cpus 1 runs one client at "
                        "a time like the in-process engine, isolating Flower's per-message overhead")
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_flower_"))
    torch.set_num_threads(args.threads)
    rows = {}
    for engine in ("inprocess", "flower-sim"):
        rows[engine] = res = run(engine, args, work / engine)
        secs = [r["seconds"] for r in res["rounds"]]
        print(f"{engine:10s}: wall {res['wall']:7.1f} s   rounds " + " ".join(f"{s:6.1f}" for s in secs)
              + f" s   client compute/round {res['client_seconds_per_round']:6.1f} s"
              + f"   test CER {res['test']['cer']:.2f}%", flush=True)
    a, b = rows["inprocess"], rows["flower-sim"]
    ra, rb = [r["seconds"] for r in a["rounds"]], [r["seconds"] for r in b["rounds"]]
    fixed = (b["wall"] - sum(rb)) - (a["wall"] - sum(ra)) + (rb[0] - ra[0])
    print(f"workload: {args.clients} clients x {args.rounds} rounds x {args.local_steps} local steps, "
          f"{usable_cpus()} usable CPUs, in-process {args.threads} thread(s), Flower {args.flower_cpus:g} CPU/client "
          f"on {args.ray_cpus or usable_cpus()} Ray CPU(s)")
    print(f"flower-sim / in-process wall time: {b['wall'] / a['wall']:.2f}x  (target: in-process >= 3x faster)")
    print(f"Flower fixed start cost (Ray, actors, node setups, handshake): {fixed:.1f} s")
    if len(ra) > 1:
        steady = sum(y - x for x, y in zip(ra[1:], rb[1:])) / (len(ra) - 1)
        print(f"Flower - in-process round wall time (rounds 2+): {steady:+.2f} s/round")
        # Engine overhead = round wall time - the clients' own training time; independent of how much
        # CPU each process gets on a shared host. Comparable when Flower runs one client at a time.
        over = {k: sum(r["seconds"] - r["client_seconds"] for r in v["rounds"][1:]) / (len(ra) - 1)
                for k, v in rows.items()}
        extra = over["flower-sim"] - over["inprocess"]
        print(f"engine overhead (round wall - client compute, rounds 2+): in-process {over['inprocess']:.2f} s, "
              f"Flower {over['flower-sim']:.2f} s/round -> Flower adds {extra:+.2f} s/round, "
              f"{extra / args.clients * 1000:+.0f} ms per client message"
              + ("" if args.ray_cpus == 1 else "  (parallel clients: rerun with --ray-cpus 1 for this figure)"))
    ma = torch.load(work / "inprocess" / "model.pt", weights_only=True)
    mb = torch.load(work / "flower-sim" / "model.pt", weights_only=True)
    diff = max(float((ma[k] - mb[k]).abs().max()) for k in ma)
    print(f"max |parameter difference| between the two final models: {diff:.3g}"
          + ("  (bitwise identical)" if diff == 0 else "  (different thread counts reduce in another order)"))


if __name__ == "__main__":
    main()
