"""Test CER vs total uplink bytes on the synthetic corpus for each compressor.

Usage::

    python benchmarks/bench_compression_tradeoff.py                 # 64 rounds, the default rows
    python benchmarks/bench_compression_tradeoff.py --only sign_ef,randk25_sign_ef@96

Every run uses the same data, model, seed and client training (``_runner.BENCH_CONFIG``); only
the uplink compressor changes, and a ``name@R`` row trains that compressor for R rounds instead
(a later point on its CER-vs-bytes curve). Target from the issue: at least 100x fewer uplink bytes than fp32 FedAvg
with at most 10 % relative CER increase.
"""

import argparse
import tempfile
from pathlib import Path

from _runner import add_common_args, extra_overrides, run_cell

COMPRESSORS = {
    "fp32": "null",
    "fp16": "fp16",
    "qsgd8": "{name: qsgd, levels: 127}",
    "sign_ef": "{name: ef, inner: {name: sign}}",
    "powersgd4_ef": "{name: ef, inner: {name: powersgd, rank: 4}}",
    "powersgd1_ef": "{name: ef, inner: {name: powersgd, rank: 1, fallback: {name: sign}}}",
    "topk1_q8_ef": "{name: ef, inner: {name: topk_q8, fraction: 0.01}}",
    "randk25_sign_ef": "{name: ef, inner: {name: compose, stages: [{name: randk, fraction: 0.25, unbiased: false}, "
                       "{name: sign}]}}",
    "randk1_shared": "{name: randk, fraction: 0.01, unbiased: false}",
}
DEFAULT = "fp32,fp16,qsgd8,sign_ef,powersgd1_ef,topk1_q8_ef,randk25_sign_ef,randk25_sign_ef@96,randk1_shared"


def parse_row(spec: str, rounds: int):
    """``name`` or ``name@R`` (the same compressor trained for R rounds: CER vs bytes along a longer run)."""
    name, _, r = spec.partition("@")
    if name not in COMPRESSORS:
        raise SystemExit(f"unknown compressor {name!r}; valid: {', '.join(COMPRESSORS)}")
    return name, int(r) if r else rounds


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--only", default=DEFAULT, help="comma-separated rows, each a name or name@ROUNDS, from "
                   + ",".join(COMPRESSORS) + " (fp32 at --rounds is always the first row: the reference)")
    args = p.parse_args(argv)
    rows = [parse_row(s, args.rounds) for s in args.only.split(",")]
    rows = [("fp32", args.rounds)] + [r for r in rows if r != ("fp32", args.rounds)]
    work = Path(tempfile.mkdtemp(prefix="bench_comp_"))
    base = None
    print(f"{'compressor':20s} {'rounds':>6s} {'test CER':>9s} {'WER':>7s} {'uplink MB':>10s} {'x fewer':>8s} "
          f"{'rel CER':>8s} {'wall s':>7s}")
    best = None
    for name, rounds in rows:
        res = run_cell(args.corpus, work / f"{name}_{rounds}", rounds,
                       [*extra_overrides(args), f"--uplink={COMPRESSORS[name]}"])
        up = res["communication"]["bytes_up_total"]
        if base is None:
            base = res
        ratio = base["communication"]["bytes_up_total"] / up
        rel = res["test"]["cer"] / max(base["test"]["cer"], 1e-9) - 1
        if ratio >= 100 and (best is None or rel < best[2]):
            best = (name, rounds, rel, ratio)
        print(f"{name:20s} {rounds:6d} {res['test']['cer']:8.2f}% {res['test']['wer']:6.2f}% {up / 1e6:10.3f} "
              f"{ratio:8.1f} {100 * rel:+7.1f}% {res['wall']:7.1f}", flush=True)
    if best is None:
        print("no row reached 100x fewer uplink bytes")
    else:
        print(f"best row with >= 100x fewer bytes: {best[0]} ({best[1]} rounds), {best[3]:.0f}x fewer, CER "
              f"{100 * best[2]:+.1f}% relative (target <= +10%: {'met' if best[2] <= 0.10 else 'NOT met'})")


if __name__ == "__main__":
    main()
