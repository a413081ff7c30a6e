"""Test CER with 0 % and 20 % malicious clients for mean vs robust aggregators, plus backdoor success.

Usage::

    python benchmarks/bench_robust_tradeoff.py
    python benchmarks/bench_robust_tradeoff.py --attacks sign_flip,alie --aggregators mean,trimmed_mean

Target from the issue: the best defense within 1.2x of clean CER under every attack while
mean fails.
"""

import argparse
import tempfile
from pathlib import Path

from _runner import add_common_args, run_cell

ATTACKS = {
    "sign_flip": "{fraction: 0.2, attack: {name: sign_flip, scale: 4.0}}",
    "alie": "{fraction: 0.2, attack: {name: alie}}",
    "ipm": "{fraction: 0.2, attack: {name: ipm, eps: 0.5}}",
    "transcript_flip": "{fraction: 0.2, data_attack: {name: transcript_flip}}",
    "backdoor": "{fraction: 0.2, data_attack: {name: audio_backdoor, target_text: OPEN THE DOOR, fraction: 0.5}}",
}
AGGREGATORS = {
    "mean": "weighted_mean",
    "median": "median",
    "trimmed_mean": "{name: trimmed_mean, f: 7}",
    "centered_clipping": "{name: centered_clipping, tau: 1.0, iters: 3}",
    "geometric_median": "geometric_median",
    "multi_krum": "{name: multi_krum, f: 7, m: 16}",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--aggregators", default=",".join(AGGREGATORS))
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_robust_"))
    model = args.model.split()
    clean = run_cell(args.corpus, work / "clean", args.rounds, model)["test"]["cer"]
    print(f"clean (mean, no attack): test CER {clean:.2f}%", flush=True)
    for attack in args.attacks.split(","):
        row = []
        for agg in args.aggregators.split(","):
            res = run_cell(args.corpus, work / f"{attack}_{agg}", args.rounds,
                           [*model, f"--malicious={ATTACKS[attack]}", f"--aggregator={AGGREGATORS[agg]}"])
            extra = ""
            bd = res.get("attack", {}).get("backdoor_success")
            if bd:
                extra = f" backdoor {100 * bd['success_rate']:.0f}%"
            row.append(f"{agg} {res['test']['cer']:.1f}% ({res['test']['cer'] / max(clean, 1e-9):.2f}x){extra}")
        print(f"{attack:15s}: " + " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
