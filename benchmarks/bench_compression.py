"""Encode + decode time and wire size of every compressor on one CPU vector.

Usage::

    python benchmarks/bench_compression.py                  # d = 1e7 (the issue's size), best of 3
    python benchmarks/bench_compression.py --dim 1000000    # quicker
    python benchmarks/bench_compression.py --only topk,sign --repeats 5

Prints, per compressor: best encode and decode wall time (ms) over ``--repeats``
runs after one warm-up, their sum, the payload size in bytes (``len(payload)``,
the serialized bytes), the ratio to float32 (``bytes / 4d``), the relative error
``||D(C(x)) - x|| / ||x||`` and, where the issue sets one, the time target at
d = 1e7. The vector is N(0, 1) float32; PowerSGD sees a layout of ten square
matrices plus a bias vector. Timings are CPU wall time and depend on load.
"""

from __future__ import annotations

import argparse
import math
import os
import time

# (label, spec, target ms at d = 1e7 from the issue, or None)
CASES = [
    ("identity", "identity", None),
    ("fp16", "fp16", None),
    ("bf16", "bf16", None),
    ("topk", {"name": "topk", "fraction": 0.01}, 60.0),
    ("randk", {"name": "randk", "fraction": 0.01}, 20.0),
    ("qsgd", {"name": "qsgd", "levels": 127, "bucket_size": 512}, 100.0),
    ("qsgd-s7", {"name": "qsgd", "levels": 7, "bucket_size": 512}, None),
    ("sign", "sign", 30.0),
    ("topk_q8", {"name": "topk_q8", "fraction": 0.01}, None),
    ("randk+qsgd", {"name": "compose", "stages": [{"name": "randk", "fraction": 0.01}, {"name": "qsgd"}]}, None),
    ("powersgd-r4", {"name": "powersgd", "rank": 4}, None),
    ("ef(topk)", {"name": "ef", "inner": {"name": "topk", "fraction": 0.01}}, None),
]


def layout_for(dim: int) -> list:
    """Ten square matrices filling most of ``dim`` plus one vector with the rest."""
    side = int(math.isqrt(dim // 10))
    layout = [(f"w{i}", (side, side)) for i in range(10)]
    rest = dim - 10 * side * side
    return layout + [("bias", (rest,))] if rest else layout


def best_ms(fn, repeats: int):
    """Best wall time and best CPU time (all threads) in ms, and the last result."""
    out = fn()  # warm-up
    wall = cpu = math.inf
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        c1, t1 = time.process_time(), time.perf_counter()
        wall, cpu = min(wall, t1 - t0), min(cpu, c1 - c0)
    return 1e3 * wall, 1e3 * cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dim", type=float, default=1e7, help="vector length d (default 1e7)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per compressor (best is reported)")
    ap.add_argument("--only", default="", help="comma-separated labels to run (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = leave the default)")
    ap.add_argument(
        "--blas-threads", type=int, default=0,
        help="OpenBLAS threads for numpy matmul/QR (PowerSGD); 0 = leave the default. On an oversubscribed "
        "CPU, 1 is much faster",
    )
    args = ap.parse_args()
    if args.blas_threads:  # must be set before numpy loads OpenBLAS
        os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)
    import torch

    from speechfl.compression import CompressionContext, build_compressor

    dim = int(args.dim)
    if args.threads:
        torch.set_num_threads(args.threads)
    wanted = {s for s in args.only.split(",") if s}
    unknown = wanted - {label for label, _, _ in CASES}
    if unknown:
        raise SystemExit(f"unknown --only labels {sorted(unknown)}; valid: {[c[0] for c in CASES]}")

    x = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    ctx = CompressionContext(round=1, seed=0, layout=layout_for(dim), dim=dim)
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "default")
    print(f"d = {dim:,}  float32 = {4 * dim:,} bytes  torch threads = {torch.get_num_threads()}  "
          f"OpenBLAS threads = {blas}  best of {args.repeats}")
    header = (
        f"{'compressor':<12} {'enc ms':>7} {'dec ms':>7} {'total':>7} {'cpu ms':>7} "
        f"{'bytes':>11} {'ratio':>7} {'rel err':>8}  target (on total wall ms)"
    )
    print(header)
    print("-" * len(header))
    for label, spec, target in CASES:
        if wanted and label not in wanted:
            continue
        comp = build_compressor(spec)
        state = {"client_seed": 1}
        enc_ms, enc_cpu, payload = best_ms(lambda: comp.encode(x, state, ctx), args.repeats)
        dec_ms, dec_cpu, y = best_ms(lambda: comp.decode(payload, ctx), args.repeats)
        total, total_cpu = enc_ms + dec_ms, enc_cpu + dec_cpu
        err = float((y - x).norm() / x.norm())
        if target is None:
            verdict = ""
        else:
            verdict = f"<= {target:.0f} ms: " + ("met" if total <= target else "MISSED")
            if dim != 10_000_000:
                verdict += " (target is for d = 1e7)"
        print(
            f"{label:<12} {enc_ms:7.1f} {dec_ms:7.1f} {total:7.1f} {total_cpu:7.1f} "
            f"{len(payload):11,d} {len(payload) / (4 * dim):7.4f} {err:8.4f}  {verdict}"
        )


if __name__ == "__main__":
    main()
