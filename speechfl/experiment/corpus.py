"""Make sure an experiment's corpus and manifests exist, then build its datasets.

If the hparams name a ``synthetic`` corpus config and ``data_folder`` does not
hold it yet, the embedded espeak-ng corpus is generated there first. Either way
the manifests are written by the *LibriSpeech* preparation code, so the real
LibriSpeech path is the one exercised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from speechfl.data.features import FeatureCache, FeatureConfig
from speechfl.data.tokenizer import CharTokenizer


@dataclass
class Corpus:
    manifests: Dict[str, Path]  # split role (train/valid/test) -> csv
    tokenizer: CharTokenizer
    cache: FeatureCache


def prepare_corpus(hparams: dict, progress: bool = True) -> Corpus:
    """Generate (if configured) and prepare the corpus named by ``hparams``.

    Keys used: ``data_folder``, ``save_folder`` (manifests), ``train_splits``,
    ``valid_split``, ``test_split``, optional ``synthetic`` ({speakers, utterances,
    seed}), optional ``feature_cache`` (folder), ``n_mels``.
    """
    from data_prep.librispeech import prepare_librispeech

    data_folder = Path(hparams["data_folder"])
    syn: Optional[dict] = hparams.get("synthetic")
    if syn:
        from data_prep.synthetic import generate_corpus

        generate_corpus(
            data_folder,
            n_speakers=int(syn["speakers"]),
            n_utterances=int(syn["utterances"]),
            seed=int(syn.get("seed", 0)),
            progress=progress,
        )
    elif not data_folder.is_dir():
        raise FileNotFoundError(f"data_folder {data_folder} does not exist")
    splits = list(hparams["train_splits"]) + [hparams["valid_split"], hparams["test_split"]]
    csvs = prepare_librispeech(data_folder, hparams["save_folder"], splits=list(dict.fromkeys(splits)),
                               progress=progress)
    if len(hparams["train_splits"]) != 1:
        raise ValueError("exactly one train split is supported; merge splits at preparation time")
    manifests = {
        "train": Path(csvs[hparams["train_splits"][0]]),
        "valid": Path(csvs[hparams["valid_split"]]),
        "test": Path(csvs[hparams["test_split"]]),
    }
    cache = FeatureCache(FeatureConfig(n_mels=int(hparams.get("n_mels", 80))), hparams.get("feature_cache"))
    return Corpus(manifests=manifests, tokenizer=CharTokenizer(), cache=cache)
