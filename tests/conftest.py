"""Shared fixtures: a tiny synthetic corpus in the LibriSpeech layout, generated once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# CI runs alone on 2 cores; on a shared machine set SPEECHFL_TEST_THREADS=1 (oversubscribed
# threads make recurrent layers ~10x slower).
torch.set_num_threads(int(os.environ.get("SPEECHFL_TEST_THREADS", max(1, min(2, os.cpu_count() or 1)))))

@pytest.fixture
def one_thread():
    """Run a test with one torch thread (small attacker models: more threads only add overhead)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


TINY = {"speakers": 6, "utterances": 12, "seed": 3}


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """6 speakers (gender-balanced, speaker-disjoint train/dev/test) x 12 utterances."""
    from data_prep.synthetic import generate_corpus

    root = tmp_path_factory.mktemp("tiny_corpus")
    generate_corpus(root / "synthetic", n_speakers=TINY["speakers"], n_utterances=TINY["utterances"],
                    seed=TINY["seed"], progress=False)
    return root / "synthetic"


@pytest.fixture(scope="session")
def tiny_hparams_overrides(tiny_corpus, tmp_path_factory):
    """Overrides that point a synthetic recipe at the tiny corpus with a small, fast model."""
    cache = tmp_path_factory.mktemp("feature_cache")
    return [
        f"--data_folder={tiny_corpus}",
        f"--synthetic={{speakers: {TINY['speakers']}, utterances: {TINY['utterances']}, seed: {TINY['seed']}}}",
        f"--feature_cache={cache}",
    ]
