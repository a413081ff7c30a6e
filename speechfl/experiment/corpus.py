"""Make sure an experiment's corpus and manifests exist, then build its datasets.

If the hparams name a ``synthetic`` corpus config and ``data_folder`` does not
hold it yet, the embedded espeak-ng corpus is generated there first. Either way
the manifests are written by the *LibriSpeech* preparation code, so the real
LibriSpeech path is the one exercised.

A corpus without the ``valid_split`` folder (many real corpora ship only train
and test) gets a speaker-disjoint, deterministic, gender-balanced dev split
carved out of the training split (:mod:`data_prep.dev_split`), said in the log
and recorded in ``save_folder/dev_carved.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

from speechfl.data.features import DEFAULT_MEMORY_MB, FeatureCache, FeatureConfig
from speechfl.data.tokenizer import CharTokenizer


@dataclass
class Corpus:
    manifests: Dict[str, Path]  # split role (train/valid/test) -> csv
    tokenizer: CharTokenizer
    cache: FeatureCache
    dev_carved: bool = False  # the valid manifest was carved out of the train split


def check_data_keys(hparams: dict) -> None:
    """Validate the data keys before anything is generated or read; raises ``ConfigError`` naming the key.

    ``skip_bad`` (bool), ``speakers_file`` (an existing file, parsed), ``carve_dev_speakers``
    (positive int or null), ``feature_cache_memory_mb`` (number >= 0 or null).
    """
    from speechfl.config.errors import ConfigError

    skip_bad = hparams.get("skip_bad", False)
    if not isinstance(skip_bad, bool):
        raise ConfigError("skip_bad", f"must be true or false, got {skip_bad!r}")
    n_dev = hparams.get("carve_dev_speakers")
    if n_dev is not None and (isinstance(n_dev, bool) or not isinstance(n_dev, int) or n_dev < 1):
        raise ConfigError("carve_dev_speakers", f"must be a positive integer or null, got {n_dev!r}")
    memory = hparams.get("feature_cache_memory_mb")
    if memory is not None and (isinstance(memory, bool) or not isinstance(memory, (int, float)) or memory < 0):
        raise ConfigError("feature_cache_memory_mb", f"must be a number of MiB >= 0, got {memory!r}")
    speakers = hparams.get("speakers_file")
    if speakers:
        from data_prep.manifest import DataPrepError
        from data_prep.speakers import read_speakers_file

        try:
            read_speakers_file(speakers)
        except DataPrepError as exc:
            raise ConfigError("speakers_file", str(exc)) from None


def prepare_corpus(hparams: dict, progress: bool = True) -> Corpus:
    """Generate (if configured) and prepare the corpus named by ``hparams``.

    Keys used: ``data_folder``, ``save_folder`` (manifests), ``train_splits``,
    ``valid_split``, ``test_split``, optional ``synthetic`` ({speakers, utterances,
    seed, female_fraction, utterances_female, utterances_male}), optional ``feature_cache`` (folder), ``feature_cache_memory_mb`` (bound of
    the in-memory feature cache, default 2048), ``n_mels``, ``skip_bad`` (skip bad
    files with a report instead of failing), ``speakers_file`` (SPEAKERS.TXT-format or
    Kaldi spk2gender file), ``carve_dev_speakers`` (dev speakers carved when there is no
    ``valid_split`` folder; default 10%), ``tokenizer`` (a CharTokenizer; default A-Z).
    """
    from data_prep.librispeech import prepare_librispeech

    check_data_keys(hparams)
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
            female_fraction=syn.get("female_fraction"),
            utterances_female=syn.get("utterances_female"),
            utterances_male=syn.get("utterances_male"),
        )
    elif not data_folder.is_dir():
        raise FileNotFoundError(f"data_folder {data_folder} does not exist")
    if len(hparams["train_splits"]) != 1:
        raise ValueError("exactly one train split is supported; merge splits at preparation time")
    train, valid, test = hparams["train_splits"][0], hparams["valid_split"], hparams["test_split"]
    carve = valid not in (train, test) and not (data_folder / valid).is_dir()
    splits = [train, test] if carve else [train, valid, test]
    csvs = prepare_librispeech(data_folder, hparams["save_folder"], splits=list(dict.fromkeys(splits)),
                               progress=progress, skip_bad=hparams.get("skip_bad", False),
                               speakers_file=hparams.get("speakers_file") or None)
    manifests = {"train": Path(csvs[train]), "test": Path(csvs[test])}
    if carve:
        from data_prep.dev_split import carve_dev_split

        carved = carve_dev_split(csvs[train], n_dev=hparams.get("carve_dev_speakers"),
                                 seed=int(hparams.get("seed", 0)))
        manifests.update(train=carved.train_csv, valid=carved.dev_csv)
    else:
        manifests["valid"] = Path(csvs[valid])
    memory_mb = hparams.get("feature_cache_memory_mb", DEFAULT_MEMORY_MB)
    cache = FeatureCache(FeatureConfig(n_mels=int(hparams.get("n_mels", 80))), hparams.get("feature_cache"),
                         memory_mb=DEFAULT_MEMORY_MB if memory_mb is None else memory_mb)
    tokenizer = hparams.get("tokenizer") or CharTokenizer()
    if not isinstance(tokenizer, CharTokenizer):
        raise ValueError(f"hparams key tokenizer must be a speechfl.data.tokenizer.CharTokenizer, got "
                         f"{type(tokenizer).__name__}")
    return Corpus(manifests={k: manifests[k] for k in ("train", "valid", "test")}, tokenizer=tokenizer, cache=cache,
                  dev_carved=carve)
