"""Shared by the trade-off benchmarks: run one federated configuration on the synthetic corpus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = ROOT / "recipes" / "LibriSpeech" / "ASR" / "federated" / "hparams" / "synthetic_fedavg.yaml"


# The trade-off benchmarks' federated setting (issue 14): the default synthetic corpus (32 training
# speakers = 32 clients), the "tiny" SpeechBrain Conformer preset (0.47M parameters at 40 mel bands;
# per CPU-second it trains ~2x faster than the old 0.23M conv + BiGRU, whose packed recurrence is
# sequential), no SpecAugment (it has to learn in minutes), 8 clients per round, each running 5 Adam
# steps of 4 utterances, 64 rounds (2,560 client steps, ~145 CPU s). At the same client steps, short
# local runs and many rounds beat long ones (bench_federated, 2026-11-30: 40 steps x 8 rounds 39.4 %
# CER, 10 x 32 35.7 %, 5 x 64 34.2 %): one speaker's long local run drifts towards that speaker.
CLIENTS_PER_ROUND, LOCAL_STEPS, ROUNDS = 8, 5, 64
LOCAL_LR = 0.002


def client_override(local_steps: int, lr: float = LOCAL_LR, more: str = "") -> str:
    """The ``--client`` override of the setting; ``more`` adds keys (e.g. ``"group_dro: afl"``)."""
    return (f"--client={{local_epochs: null, local_steps: {local_steps}, batch_size: 4, "
            f"optimizer: {{name: adam, lr: {lr}}}, max_grad_norm: 5.0{', ' + more if more else ''}}}")


BENCH_CONFIG = [
    "--encoder=conformer", "--conformer_preset=tiny", "--n_mels=40", "--dropout=0.05", "--augment=null",
    f"--clients_per_round={CLIENTS_PER_ROUND}", client_override(LOCAL_STEPS),
]
# The pooled reference with the same total client compute: one client doing every sampled client's steps.
CENTRALIZED_CONFIG = [*BENCH_CONFIG, "--engine=centralized", "--clients_per_round=1",
                      client_override(CLIENTS_PER_ROUND * LOCAL_STEPS)]


def machine_info(threads: int) -> dict:
    """Where and how a benchmark ran (for the committed results under ``benchmarks/results/``)."""
    import datetime
    import os
    import platform

    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {platform.processor() or platform.system()}, {os.cpu_count()} cpus",
            "torch": torch.__version__, "threads": threads, "load_average_1min_at_start": load}


def base_argv(corpus: Path, out: Path, rounds: int, extra: List[str]) -> List[str]:
    """Overrides of one cell: paths, rounds, :data:`BENCH_CONFIG`, then ``extra`` (later keys win)."""
    return [f"--data_folder={corpus}", f"--feature_cache={corpus.parent / 'feature_cache'}", f"--output_folder={out}",
            f"--rounds={rounds}", "--eval_every=0", *BENCH_CONFIG, *extra]


def run_cell(corpus: Path, out: Path, rounds: int, extra: List[str], evaluate: Optional[dict] = None) -> dict:
    """Train (and optionally evaluate) one configuration; returns results.json plus ``wall``."""
    from speechfl.experiment.hparams import load_hparams
    from speechfl.experiment.run import run_federated

    argv = base_argv(corpus, out, rounds, extra)
    start = time.perf_counter()
    res = run_federated(load_hparams(HPARAMS, argv), str(HPARAMS), argv, progress=False)
    if evaluate is not None:
        from speechfl.experiment.evaluate import evaluate_run

        res = evaluate_run(out, progress=False, **evaluate)
    res["wall"] = time.perf_counter() - start
    return res


def add_common_args(p, rounds: int = ROUNDS) -> None:
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic",
                   help="synthetic corpus folder (the default 48 x 50 corpus is generated there if absent)")
    p.add_argument("--extra", default="", help="more overrides for every cell, ';'-separated "
                   "(e.g. '--hidden=256;--layers=2'), applied after the benchmark config")


def extra_overrides(args) -> List[str]:
    return [a.strip() for a in args.extra.split(";") if a.strip()]
