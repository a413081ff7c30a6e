"""Federated (one speaker per client) vs centralized test CER at equal total client compute.

Usage::

    python benchmarks/bench_federated.py                     # the trade-off benchmarks' setting, 8 rounds
    python benchmarks/bench_federated.py --recipe-defaults   # the recipe's own: every client, 1 local epoch

Both runs use the federated recipe; ``--engine=centralized`` pools every training speaker into
one client trained with the same loop and optimizer. By default both use ``_runner.BENCH_CONFIG``
(8 of 32 clients x 40 local steps per round) and the pooled client runs 8 x 40 steps per round:
the same total client compute. With ``--recipe-defaults`` both use the recipe's hparams
(every client, one local epoch; the pooled client one epoch of the pooled data). Target from
the issue: federated CER within 1.2x of centralized.
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


def engine_overrides(engine: str, recipe_defaults: bool) -> list:
    """BENCH_CONFIG, or CENTRALIZED_CONFIG for the pooled run (same total client steps)."""
    if recipe_defaults:
        return []
    from _runner import BENCH_CONFIG, CENTRALIZED_CONFIG

    return list(CENTRALIZED_CONFIG if engine == "centralized" else BENCH_CONFIG)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    p.add_argument("--recipe-defaults", action="store_true", help="the recipe's hparams instead of BENCH_CONFIG")
    args, extra = p.parse_known_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_federated_"))
    rows = {}
    for engine in ("centralized", "inprocess"):
        start = time.perf_counter()
        res = run(engine, args, work / engine, engine_overrides(engine, args.recipe_defaults) + extra)
        rows[engine] = res
        print(f"{engine:11s}: test CER {res['test']['cer']:6.2f}%  WER {res['test']['wer']:6.2f}%  "
              f"clients/round {len(res['rounds'][-1]['clients'])}  wall {time.perf_counter() - start:6.1f} s", flush=True)
    ratio = rows["inprocess"]["test"]["cer"] / max(rows["centralized"]["test"]["cer"], 1e-9)
    print(f"federated / centralized CER: {ratio:.2f}x  (target <= 1.2x)")


if __name__ == "__main__":
    main()
