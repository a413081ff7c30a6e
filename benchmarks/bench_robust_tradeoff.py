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

from _runner import add_common_args, extra_overrides, run_cell

ATTACKS = {
    "sign_flip": "{fraction: 0.2, attack: {name: sign_flip, scale: 4.0}}",
    "alie": "{fraction: 0.2, attack: {name: alie}}",
    "ipm": "{fraction: 0.2, attack: {name: ipm, eps: 4.0}}",
    "transcript_flip": "{fraction: 0.2, data_attack: {name: transcript_flip}}",
    "backdoor": "{fraction: 0.2, data_attack: {name: audio_backdoor, target_text: OPEN THE DOOR, fraction: 0.5}}",
    # the same backdoored training, then model replacement (Bagdasaryan et al.): the update boosted by n
    "backdoor_boosted": "{fraction: 0.2, data_attack: {name: audio_backdoor, target_text: OPEN THE DOOR, "
                        "fraction: 0.5}, attack: {name: scaling}}",
}
# 8 clients per round, drawn from 32 of which 20 % (6) are malicious: a round holds 0-5 of them
# (1.5 on average, 3 or more in about a fifth of the rounds), so the rules assume f = 3 where they can.
AGGREGATORS = {
    "mean": "weighted_mean",
    "median": "median",
    "trimmed_mean": "{name: trimmed_mean, f: 3}",
    "centered_clipping": "{name: centered_clipping, tau: 5.0, iters: 3}",
    "geometric_median": "geometric_median",
    "multi_krum": "{name: multi_krum, f: 2, m: 4}",
}
DEFAULT_AGGREGATORS = "mean,median,trimmed_mean,centered_clipping"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--attacks", default=",".join(ATTACKS))
    p.add_argument("--aggregators", default=DEFAULT_AGGREGATORS, help="comma-separated subset of " + ",".join(AGGREGATORS))
    p.add_argument("--clean-cer", type=float, default=None,
                   help="reuse the clean CER (mean, no attack) of an identical earlier run, e.g. the fp32 "
                        "row of bench_compression_tradeoff, instead of training it again")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench_robust_"))
    model = extra_overrides(args)
    clean = args.clean_cer
    if clean is None:
        clean = run_cell(args.corpus, work / "clean", args.rounds, model)["test"]["cer"]
    print(f"clean (mean, no attack): test CER {clean:.2f}%" + (" (given)" if args.clean_cer else ""), flush=True)
    verdict = {}
    for attack in args.attacks.split(","):
        row, ratios = [], {}
        for agg in args.aggregators.split(","):
            res = run_cell(args.corpus, work / f"{attack}_{agg}", args.rounds,
                           [*model, f"--malicious={ATTACKS[attack]}", f"--aggregator={AGGREGATORS[agg]}"])
            extra = ""
            bd = res.get("attack", {}).get("backdoor_success")
            if bd:
                extra = f" backdoor {100 * bd['success_rate']:.0f}% (CER to target {bd['cer_to_target']:.0f}%)"
            ratios[agg] = res["test"]["cer"] / max(clean, 1e-9)
            row.append(f"{agg} {res['test']['cer']:.1f}% ({ratios[agg]:.2f}x){extra} [{res['wall']:.0f} s]")
        print(f"{attack:15s}: " + " | ".join(row), flush=True)
        robust = {a: r for a, r in ratios.items() if a != "mean"}
        if robust:
            best = min(robust, key=robust.get)
            verdict[attack] = (best, robust[best], ratios.get("mean"))
    print("\nbest defense per attack (target: within 1.2x of clean while mean fails):")
    for attack, (best, r, mean_r) in verdict.items():
        mean_txt = "n/a" if mean_r is None else f"{mean_r:.2f}x"
        print(f"  {attack:15s} {best} {r:.2f}x ({'met' if r <= 1.2 else 'NOT met'}); mean {mean_txt}")


if __name__ == "__main__":
    main()
