"""Time, peak memory and agreement of our robust rules versus ByzFL's, on CPU float32.

Every (implementation, rule, size) runs in a fresh subprocess that builds the
``[n, d]`` input (``N(0, 1)``, the first ``f`` rows scaled by 10), resets the
kernel's peak-RSS counter (``/proc/self/clear_refs``), runs the rule ``--repeats``
times and reports the best wall time and the peak resident memory above the
input ("extra"; includes the output). Outputs of the first run are compared with
ByzFL's where the formulas coincide (ours configured to ByzFL's conventions:
Krum/Multi-Krum with ``convention="byzfl"``, GM with ``init="zeros", iters=3,
tol=0, nu=0.1``, CC with ``tau=100, iters=1``). Each subprocess has an
address-space limit so an oversized ByzFL run fails alone instead of exhausting
the machine; it is then reported as skipped/failed with the reason.

ByzFL (``pip install --no-deps byzfl``) is imported without its top-level package
(which pulls torchvision for its training framework): only its ``aggregators``,
``preaggregators`` and ``utils`` modules run. It is not a dependency of speechfl.

Usage::

    python benchmarks/bench_aggregators.py                # n=20, f=4, d=1e6 (about 2-4 minutes)
    python benchmarks/bench_aggregators.py --full         # also n=100, f=20, d=1e7 (4 GB input)
    python benchmarks/bench_aggregators.py --sizes 20:4:100000 --rules krum,nnm
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types

RULES = [
    "mean", "weighted_mean", "median", "trimmed_mean", "krum", "multi_krum", "geometric_median",
    "centered_clipping", "meamed", "sign_vote", "nnm", "bucketing", "clipping", "arc",
]
PREAGGREGATORS = {"nnm", "bucketing", "clipping", "arc"}
# Rules whose output must equal ByzFL's (bucketing draws a different permutation).
COMPARABLE = {"mean", "median", "trimmed_mean", "krum", "multi_krum", "geometric_median",
              "centered_clipping", "meamed", "nnm", "clipping", "arc"}
CLIP_TAU = 500.0  # rows have norm ~sqrt(d) = 1000 (or 10x): some are clipped at d = 1e6


def ours(rule: str, f: int):
    import speechfl.robustness as R

    params = {
        "trimmed_mean": {"f": f}, "meamed": {"f": f},
        "krum": {"f": f, "convention": "byzfl"}, "multi_krum": {"f": f, "convention": "byzfl"},
        "geometric_median": {"nu": 0.1, "iters": 3, "tol": 0.0, "init": "zeros"},
        "centered_clipping": {"tau": 100.0, "iters": 1},
        "nnm": {"f": f}, "arc": {"f": f}, "bucketing": {"s": 2}, "clipping": {"tau": CLIP_TAU},
    }.get(rule, {})
    if rule in PREAGGREGATORS:
        return R.get_preaggregator(rule, **params), False
    agg = R.get_aggregator(rule, **params)
    if rule == "weighted_mean":
        import torch

        return (lambda x, _w=None: agg(x, torch.arange(1, x.shape[0] + 1, dtype=torch.float32))), False
    return agg, False


def load_byzfl():
    """ByzFL's rule modules without its top-level ``__init__`` (which needs torchvision)."""
    spec = importlib.util.find_spec("byzfl")
    if spec is None:
        return None
    for key in [k for k in sys.modules if k == "byzfl" or k.startswith("byzfl.")]:
        del sys.modules[key]
    pkg = types.ModuleType("byzfl")
    pkg.__path__ = list(spec.submodule_search_locations)
    sys.modules["byzfl"] = pkg
    return types.SimpleNamespace(
        agg=importlib.import_module("byzfl.aggregators.aggregators"),
        pre=importlib.import_module("byzfl.aggregators.preaggregators"),
    )


def byzfl(rule: str, f: int):
    """(callable, mutates_input) for ByzFL's version of ``rule``, or None."""
    b = load_byzfl()
    if b is None:
        return None
    table = {
        "mean": lambda: b.agg.Average(), "median": lambda: b.agg.Median(),
        "trimmed_mean": lambda: b.agg.TrMean(f=f), "krum": lambda: b.agg.Krum(f=f),
        "multi_krum": lambda: b.agg.MultiKrum(f=f), "geometric_median": lambda: b.agg.GeometricMedian(nu=0.1, T=3),
        "centered_clipping": lambda: b.agg.CenteredClipping(tau=100.0, L=1), "meamed": lambda: b.agg.Meamed(f=f),
        "nnm": lambda: b.pre.NNM(f=f), "bucketing": lambda: b.pre.Bucketing(s=2),
        "clipping": lambda: b.pre.Clipping(c=CLIP_TAU), "arc": lambda: b.pre.ARC(f=f),
    }
    if rule not in table:
        return None
    return table[rule](), rule in ("clipping", "arc")  # these two clip their input in place


def reference(rule: str, f: int):
    """Slow, obvious float64 versions (row by row) of the norm-based rules, or None."""
    import torch

    if rule not in ("mean", "clipping", "arc", "geometric_median", "centered_clipping"):
        return None

    def norms(x):
        return torch.tensor([float(torch.linalg.vector_norm(row.double())) for row in x], dtype=torch.float64)

    def scaled(x, scales):
        return torch.stack([(row.double() * float(s)).float() for row, s in zip(x, scales)])

    def clipping(x):
        return scaled(x, [min(1.0, CLIP_TAU / v) for v in norms(x).tolist()])

    def arc(x):
        nrm = norms(x).tolist()
        n = len(nrm)
        k = (2 * f * (n - f)) // n
        order = sorted(range(n), key=lambda i: -nrm[i])
        scales = [1.0] * n
        for i in order[:k]:
            scales[i] = min(1.0, nrm[order[k]] / nrm[i])
        return scaled(x, scales)

    def mean(x):
        acc = torch.zeros(x.shape[1], dtype=torch.float64)
        for row in x:
            acc += row.double()
        return (acc / x.shape[0]).float()

    def weighted(x, coef):
        acc = torch.zeros(x.shape[1], dtype=torch.float64)
        for row, c in zip(x, coef):
            acc += float(c) * row.double()
        return acc

    def geometric_median(x):  # ByzFL's setting: from 0, 3 steps, nu = 0.1
        z = torch.zeros(x.shape[1], dtype=torch.float64)
        for _ in range(3):
            beta = [1.0 / max(0.1, float(torch.linalg.vector_norm(row.double() - z))) for row in x]
            z = weighted(x, beta) / sum(beta)
        return z.float()

    def centered_clipping(x):  # from 0, one step, tau = 100
        coef = [min(1.0, 100.0 / v) / x.shape[0] for v in norms(x).tolist()]
        return weighted(x, coef).float()

    table = {"mean": mean, "clipping": clipping, "arc": arc, "geometric_median": geometric_median,
             "centered_clipping": centered_clipping}
    return table[rule], False


def rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(args) -> None:
    import numpy as np
    import torch

    impl, rule, n, f, d = args.worker, args.rule, args.n, args.f, args.d
    built = {"ours": ours, "byzfl": byzfl, "f64": reference}[impl](rule, f)
    if built is None:
        print(json.dumps({"status": "n/a"}))
        return
    fn, mutates = built
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(n, d, generator=g)
    x[:f] *= 10.0
    times, peaks, first = [], [], None
    for _ in range(args.repeats):
        arg = x.clone() if mutates else x  # ByzFL clips in place: give it a fresh copy (not timed)
        torch.manual_seed(args.seed)
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        base = rss_kib("VmRSS")
        t0 = time.perf_counter()
        out = fn(arg)
        times.append(time.perf_counter() - t0)
        peaks.append(max(0, rss_kib("VmHWM") - base) * 1024)
        if first is None:
            first = out if out.dim() == 1 else out[:, :: max(1, (out.shape[0] * d) // (1 << 20))]
            first = first.detach().clone()
        del out, arg
    np.save(args.out, first.numpy())
    print(json.dumps({"status": "ok", "seconds": min(times), "peak_extra": max(peaks)}))


def run_worker(impl: str, rule: str, n: int, f: int, d: int, repeats: int, out: str, mem_cap: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--rule", rule, "--n", str(n), "--f", str(f),
           "--d", str(d), "--repeats", str(repeats), "--out", out]

    def limit() -> None:  # address-space cap for the child only
        resource.setrlimit(resource.RLIMIT_AS, (mem_cap, mem_cap))

    proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        err = (proc.stderr.strip().splitlines() or ["killed"])[-1]
        return {"status": "failed", "reason": err[:90]}
    return json.loads(lines[-1])


def mem_available() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable not in /proc/meminfo")


def max_diff(path_a: str, path_b: str) -> float:
    import numpy as np

    x, y = np.load(path_a).astype(np.float64), np.load(path_b).astype(np.float64)
    return float(np.abs(x - y).max())


def agreement(ours_path: str, byzfl_path: str) -> str:
    """``max|ours - byzfl|``; OK within ``1e-5 * max(1, max|byzfl|)``, else how many values differ."""
    import numpy as np

    x, y = np.load(ours_path).astype(np.float64), np.load(byzfl_path).astype(np.float64)
    diff = np.abs(x - y)
    tol = 1e-5 * max(1.0, float(np.abs(y).max()))
    bad = int((diff > tol).sum())
    verdict = "OK" if bad == 0 else f"DIFFERS at {bad} of {diff.size}"
    return f"max|diff|={float(diff.max()):.1e} {verdict}"


def fmt_time(r: dict) -> str:
    return f"{r['seconds']:8.3f}" if r.get("status") == "ok" else f"{r.get('status', '-'):>8s}"


def fmt_mem(r: dict, input_bytes: int) -> str:
    return f"{r['peak_extra'] / input_bytes:6.2f}x" if r.get("status") == "ok" else "      -"


def bench_size(n: int, f: int, d: int, rules: list, repeats: int, use_byzfl: bool) -> None:
    input_bytes = 4 * n * d
    # Virtual-address cap per child: input + what is free now, minus a margin for the other users.
    base_vm = 6 << 30  # torch's libraries map a few GiB of address space
    cap = base_vm + input_bytes + max(0, int(0.75 * mem_available()) - input_bytes)
    print(f"\n== n={n} f={f} d={d:.0e} float32: input {input_bytes / 2**30:.2f} GiB, "
          f"best of {repeats}, threads={os.cpu_count()} cpus ==")
    print(f"{'rule':18s} {'ours s':>8s} {'byzfl s':>8s} {'speedup':>8s} {'ours mem':>8s} {'byzfl mem':>9s}  agreement")
    with tempfile.TemporaryDirectory() as tmp:
        for rule in rules:
            a = run_worker("ours", rule, n, f, d, repeats, f"{tmp}/ours.npy", cap)
            b = {"status": "n/a"}
            if use_byzfl:
                b = run_worker("byzfl", rule, n, f, d, repeats, f"{tmp}/byzfl.npy", cap)
                if b.get("status") == "failed" and "alloc" in b.get("reason", "").lower():
                    b = {"status": "OOM", "reason": b["reason"]}
            speed = f"{b['seconds'] / a['seconds']:7.1f}x" if a.get("status") == b.get("status") == "ok" else "       -"
            agree = "-"
            if a.get("status") == b.get("status") == "ok":
                if rule in COMPARABLE:
                    agree = agreement(f"{tmp}/ours.npy", f"{tmp}/byzfl.npy")
                    if reference(rule, f) is not None:
                        r = run_worker("f64", rule, n, f, d, 1, f"{tmp}/f64.npy", cap)
                        if r.get("status") == "ok":
                            agree += (f"; vs float64: ours {max_diff(f'{tmp}/ours.npy', f'{tmp}/f64.npy'):.1e},"
                                      f" byzfl {max_diff(f'{tmp}/byzfl.npy', f'{tmp}/f64.npy'):.1e}")
                else:
                    agree = "n/a (random permutation)"
            elif b.get("status") not in ("ok", "n/a"):
                agree = f"byzfl {b.get('status')}: {b.get('reason', '')}"
            elif a.get("status") != "ok":
                agree = f"ours failed: {a.get('reason', '')}"
            print(f"{rule:18s} {fmt_time(a)} {fmt_time(b)} {speed:>8s} {fmt_mem(a, input_bytes):>8s} "
                  f"{fmt_mem(b, input_bytes):>9s}  {agree}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="also run n=100, f=20, d=1e7")
    p.add_argument("--sizes", default=None, help="comma list of n:f:d (overrides the defaults)")
    p.add_argument("--rules", default=",".join(RULES), help="comma list of rules")
    p.add_argument("--repeats", type=int, default=2, help="runs per measurement (best time is reported)")
    p.add_argument("--no-byzfl", action="store_true", help="time ours only")
    p.add_argument("--worker", choices=["ours", "byzfl", "f64"], help=argparse.SUPPRESS)
    p.add_argument("--rule", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    p.add_argument("--f", type=int, help=argparse.SUPPRESS)
    p.add_argument("--d", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    rules = [r for r in args.rules.split(",") if r]
    unknown = sorted(set(rules) - set(RULES))
    if unknown:
        p.error(f"unknown rules {unknown}; valid: {', '.join(RULES)}")
    if args.sizes:
        sizes = [tuple(int(float(v)) for v in s.split(":")) for s in args.sizes.split(",")]
    else:
        sizes = [(20, 4, 1_000_000)] + ([(100, 20, 10_000_000)] if args.full else [])
    use_byzfl = not args.no_byzfl and importlib.util.find_spec("byzfl") is not None
    if not args.no_byzfl and not use_byzfl:
        print("byzfl is not installed (pip install --no-deps byzfl): timing ours only")
    for n, f, d in sizes:
        bench_size(n, f, d, rules, args.repeats, use_byzfl)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
