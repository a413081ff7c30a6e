"""Federated (one speaker per client) vs centralized test CER at equal total client steps.

Usage::

    python benchmarks/bench_federated.py                     # the trade-off benchmarks' setting, 64 rounds
    python benchmarks/bench_federated.py --fed "--server_optimizer={name: scaffold}"   # federated run only
    python benchmarks/bench_federated.py --recipe-defaults   # the recipe's own: every client, 1 local epoch

Both runs use the federated recipe; ``--engine=centralized`` pools every training speaker into
one client trained with the same loop and optimizer. By default both use ``_runner.BENCH_CONFIG``
and the pooled client runs ``CLIENTS_PER_ROUND x LOCAL_STEPS`` steps per round: the same total
client steps. ``--fed`` adds ';'-separated overrides to the federated run only (server
optimizer, SCAFFOLD, ...); other unknown ``--key=value`` arguments go to both. ``--json`` writes
the figures with machine, threads and date. Targets from issue 14: fp32 FedAvg <= 20% CER and
federated/centralized <= 1.2x, each run <= 5 minutes at one thread.
"""

import argparse
import json
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
    from _runner import machine_info

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    from _runner import ROUNDS

    p.add_argument("--rounds", type=int, default=ROUNDS)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    p.add_argument("--recipe-defaults", action="store_true", help="the recipe's hparams instead of BENCH_CONFIG")
    p.add_argument("--fed", default="", help="';'-separated overrides for the federated run only")
    p.add_argument("--skip-centralized", action="store_true", help="only the federated run")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args, extra = p.parse_known_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    fed_extra = [a.strip() for a in args.fed.split(";") if a.strip()]
    work = Path(tempfile.mkdtemp(prefix="bench_federated_"))
    rows = {}
    engines = ("inprocess",) if args.skip_centralized else ("centralized", "inprocess")
    for engine in engines:
        start, cpu0 = time.perf_counter(), time.process_time()
        more = extra + (fed_extra if engine == "inprocess" else [])
        res = run(engine, args, work / engine, engine_overrides(engine, args.recipe_defaults) + more)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
        rows[engine] = {"test_cer": res["test"]["cer"], "test_wer": res["test"]["wer"], "wall_s": wall, "cpu_s": cpu,
                        "clients_per_round": len(res["rounds"][-1]["clients"]), "rounds": len(res["rounds"]),
                        "overrides": more}
        print(f"{engine:11s}: test CER {res['test']['cer']:6.2f}%  WER {res['test']['wer']:6.2f}%  "
              f"clients/round {len(res['rounds'][-1]['clients'])}  wall {wall:6.1f} s  CPU {cpu:6.1f} s", flush=True)
    out = {"benchmark": "bench_federated", **machine_info(args.threads), "rounds": args.rounds,
           "bench_config": engine_overrides("inprocess", args.recipe_defaults), "runs": rows}
    if len(rows) == 2:
        ratio = rows["inprocess"]["test_cer"] / max(rows["centralized"]["test_cer"], 1e-9)
        out["federated_over_centralized"] = ratio
        print(f"federated / centralized CER: {ratio:.2f}x  (target <= 1.2x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
