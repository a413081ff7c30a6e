"""Test CER vs total uplink bytes on the synthetic corpus for each compressor.

Usage::

    python benchmarks/bench_compression_tradeoff.py                 # 6 rounds, all compressors
    python benchmarks/bench_compression_tradeoff.py --only fp32,topk_ef

Every run uses the same data, model, seed, rounds and client training; only the uplink
compressor changes. Target from the issue: at least 100x fewer uplink bytes than fp32 FedAvg
with at most 10 % relative CER increase.
"""

import argparse
import tempfile
from pathlib import Path

from _runner import add_common_args, run_cell

COMPRESSORS = {
    "fp32": "null",
    "fp16": "fp16",
    "qsgd8": "{name: qsgd, levels: 127}",
    "sign_ef": "{name: ef, inner: {name: sign}}",
    "powersgd4_ef": "{name: ef, inner: {name: powersgd, rank: 4}}",
    "topk1_ef": "{name: ef, inner: {name: topk, fraction: 0.01}}",
    "topk1_q8_ef": "{name: ef, inner: {name: topk_q8, fraction: 0.01}}",
    "randk1_shared": "{name: randk, fraction: 0.01, unbiased: false}",
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--only", default=None, help="comma-separated subset of " + ",".join(COMPRESSORS))
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(COMPRESSORS)
    work = Path(tempfile.mkdtemp(prefix="bench_comp_"))
    base = None
    print(f"{'compressor':15s} {'test CER':>9s} {'WER':>7s} {'uplink MB':>10s} {'x fewer':>8s} {'rel CER':>8s} {'wall s':>7s}")
    for name in ["fp32"] + [n for n in names if n != "fp32"]:
        res = run_cell(args.corpus, work / name, args.rounds, [f"--uplink={COMPRESSORS[name]}", *args.model.split()])
        up = res["communication"]["bytes_up_total"]
        if base is None:
            base = res
        ratio = base["communication"]["bytes_up_total"] / up
        rel = res["test"]["cer"] / max(base["test"]["cer"], 1e-9) - 1
        print(f"{name:15s} {res['test']['cer']:8.2f}% {res['test']['wer']:6.2f}% {up / 1e6:10.2f} {ratio:8.1f} "
              f"{100 * rel:+7.1f}% {res['wall']:7.1f}", flush=True)


if __name__ == "__main__":
    main()
