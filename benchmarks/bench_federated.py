"""Federated (one speaker per client) vs centralized test CER at equal total client compute.

Usage::

    python benchmarks/bench_federated.py                 # default corpus, 8 rounds x 1 local epoch
    python benchmarks/bench_federated.py --rounds 4

Both runs use the federated recipe and its hparams; ``--engine=centralized`` pools every training
speaker into one client trained with the same loop, optimizer and batches per epoch, for the same
number of rounds x local epochs: the same total client compute. Target from the issue: federated
CER within 1.2x of centralized.
"""

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = ROOT / "recipes" / "LibriSpeech" / "ASR" / "federated" / "hparams" / "synthetic_fedavg.yaml"


def run(engine: str, args, out: Path, extra) -> dict:
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.run import run_federated

    argv = [f"--data_folder={args.corpus}", f"--feature_cache={args.corpus.parent / 'feature_cache'}",
            f"--output_folder={out}", f"--rounds={args.rounds}", f"--engine={engine}", "--eval_every=0", *extra]
    return run_federated(load_hparams(HPARAMS, argv), str(HPARAMS), argv, progress=False)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    args, extra = p.parse_known_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_federated_"))
    rows = {}
    for engine in ("centralized", "inprocess"):
        start = time.perf_counter()
        res = run(engine, args, work / engine, extra)
        rows[engine] = res
        print(f"{engine:11s}: test CER {res['test']['cer']:6.2f}%  WER {res['test']['wer']:6.2f}%  "
              f"clients/round {len(res['rounds'][-1]['clients'])}  wall {time.perf_counter() - start:6.1f} s", flush=True)
    ratio = rows["inprocess"]["test"]["cer"] / max(rows["centralized"]["test"]["cer"], 1e-9)
    print(f"federated / centralized CER: {ratio:.2f}x  (target <= 1.2x)")


if __name__ == "__main__":
    main()
