"""Shared by the trade-off benchmarks: run one federated configuration on the synthetic corpus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

ROOT = Path(__file__).resolve().parents[1]
HPARAMS = ROOT / "recipes" / "LibriSpeech" / "ASR" / "federated" / "hparams" / "synthetic_fedavg.yaml"


def base_argv(corpus: Path, out: Path, rounds: int, extra: List[str]) -> List[str]:
    return [f"--data_folder={corpus}", f"--feature_cache={corpus.parent / 'feature_cache'}", f"--output_folder={out}",
            f"--rounds={rounds}", "--eval_every=0", *extra]


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


def add_common_args(p, rounds: int = 6) -> None:
    p.add_argument("--rounds", type=int, default=rounds)
    p.add_argument("--corpus", type=Path, default=ROOT / "corpora" / "synthetic")
    p.add_argument("--model", default="--hidden=128 --layers=2 --proj=128",
                   help="model-size overrides (default: a 0.8M-parameter encoder, for time)")
