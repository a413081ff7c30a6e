"""Building small federated experiments on the tiny corpus for integration tests."""

from __future__ import annotations

from pathlib import Path

from speechfl.experiment.hparams import load_hparams

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "LibriSpeech" / "ASR"
FED_HPARAMS = RECIPES / "federated" / "hparams" / "synthetic_fedavg.yaml"
CTC_HPARAMS = RECIPES / "CTC" / "hparams" / "synthetic.yaml"
TINY_MODEL = ["--encoder=conv_rnn", "--channels=16", "--proj=96", "--hidden=96", "--layers=2"]  # the small conv + BiGRU


def fed_hparams(base_overrides, out: Path, *extra: str) -> dict:
    return load_hparams(FED_HPARAMS, [*base_overrides, f"--output_folder={out}", *TINY_MODEL, *extra])
