"""Engine overhead of one federated round: wall time / the same clients' pure local-training compute.

Usage::

    python benchmarks/bench_round.py                    # 40 clients per round (60-speaker corpus, 40 train)
    python benchmarks/bench_round.py --clients 10 --speakers 16

A warm-up round runs first (kernel warm-up, feature cache). Then round 2 is timed end to end
(sampling, broadcast payload, local training, uplink encoding, validation of every update,
aggregation, server step, atomic checkpoint). "Pure compute" re-runs each of those clients'
forward/backward/optimizer steps on the very same pre-collated batches with nothing else.
Target from the issue: overhead <= 1.10. Also prints clients per second and peak RSS.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = ROOT / "recipes" / "LibriSpeech" / "ASR" / "federated" / "hparams" / "synthetic_fedavg.yaml"


def pure_compute(setup, sampled, client_view, round_) -> float:
    """Seconds of forward/backward/step of each client on its round's batches, nothing else."""
    from speechfl.data.dataset import make_loader
    from speechfl.federated.client import build_local_optimizer, client_seed
    from speechfl.federated.update import load_flat_params
    from speechfl.models.objective import training_loss

    total = 0.0
    cfg = setup.client_config
    for cid in sampled:
        cseed = client_seed(setup.seed, round_, cid)
        batches = list(make_loader(setup.client_dataset(cid), cfg.batch_size, shuffle=True, seed=cseed))
        load_flat_params(setup.model, setup.layout, client_view)
        setup.model.train()
        opt = build_local_optimizer(cfg.optimizer, setup.model.parameters())
        torch.manual_seed(cseed)
        start = time.perf_counter()
        for _ in range(cfg.local_epochs):
            for batch in batches:
                opt.zero_grad(set_to_none=True)
                training_loss(setup.model, batch, step=0).loss.backward()
                if cfg.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(setup.model.parameters(), cfg.max_grad_norm)
                opt.step()
        total += time.perf_counter() - start
    return total


def main(argv=None):
    from speechfl.experiment.hparams import load_hparams
    from speechfl.federated.setup import build_setup
    from speechfl.federated.simulation import Simulation

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=40)
    p.add_argument("--speakers", type=int, default=60)
    p.add_argument("--utterances", type=int, default=20)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--uplink", default="null", help="uplink compressor spec (YAML)")
    p.add_argument("--corpus", type=Path, default=None, help="default: corpora/synthetic_<speakers>x<utterances>")
    args = p.parse_args(argv)
    if args.corpus is None:
        args.corpus = ROOT / "corpora" / f"synthetic_{args.speakers}x{args.utterances}"
    out = Path(tempfile.mkdtemp(prefix="bench_round_"))
    hp = load_hparams(HPARAMS, [
        f"--data_folder={args.corpus}", f"--synthetic={{speakers: {args.speakers}, utterances: {args.utterances}, seed: 0}}",
        f"--feature_cache={args.corpus.parent / 'feature_cache'}", f"--output_folder={out}",
        f"--clients_per_round={args.clients}", "--rounds=2", "--eval_every=0", f"--hidden={args.hidden}", "--layers=2",
        "--augment=null", "--dropout=0.0", f"--uplink={args.uplink}"])
    setup = build_setup(hp, progress=False)
    sim = Simulation(setup, out, progress=False)
    sim.run_round()  # warm-up: kernels, feature cache
    view = sim.server.global_flat.clone()
    start = time.perf_counter()
    rec = sim.run_round()
    wall = time.perf_counter() - start
    pure = pure_compute(setup, rec["clients"], view, 2)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(rec["clients"])
    print(f"{n} clients/round, model {setup.layout.dim / 1e6:.2f}M params, uplink {args.uplink}")
    print(f"round wall time      : {wall:.2f} s")
    print(f"pure local compute   : {pure:.2f} s (sum over clients, same batches)")
    print(f"engine overhead      : {wall / pure:.3f}x  (target <= 1.10)")
    print(f"clients per second   : {n / wall:.2f}")
    print(f"peak RSS             : {rss:.0f} MiB")


if __name__ == "__main__":
    main()
