"""SpeechBrain data pipelines over the CSV manifests.

A manifest row (``ID, duration, wav, spk_id, gender, wrd``) becomes a
``DynamicItemDataset`` item with cached Fbank ``feats`` and CTC ``tokens``.
Client-specific data transforms (an audio backdoor trigger, flipped transcripts)
are passed in, so a malicious client runs the very same pipeline on poisoned
data.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from speechfl.data.features import FeatureCache
from speechfl.data.tokenizer import CharTokenizer

REQUIRED_COLUMNS = ("ID", "duration", "wav", "spk_id", "gender", "wrd")
OUTPUT_KEYS = ["id", "spk_id", "gender", "wrd", "feats", "tokens"]


class ManifestError(ValueError):
    """A manifest is missing, empty or lacks required columns."""


def read_manifest(csv_path: str | Path) -> List[Dict[str, str]]:
    """Rows of a manifest as dicts, validated for the required columns."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ManifestError(f"manifest {csv_path} does not exist (run `speechfl prepare` first)")
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"manifest {csv_path} lacks columns {missing}")
        rows = list(reader)
    if not rows:
        raise ManifestError(f"manifest {csv_path} has no utterances")
    return rows


@dataclass
class DataTransforms:
    """Per-client data transforms; ``None`` means clean data.

    ``audio(utt_id)`` returns the waveform transform for that utterance (with a
    ``cache_tag`` attribute, part of the feature-cache key) or ``None`` to keep it
    clean; ``text(utt_id, transcript)`` returns the transcript to train on.
    """

    audio: Optional[Callable[[str], Optional[Callable[[torch.Tensor], torch.Tensor]]]] = None
    text: Optional[Callable[[str, str], str]] = None


def make_dataset(
    csv_path: str | Path,
    tokenizer: CharTokenizer,
    cache: FeatureCache,
    transforms: Optional[DataTransforms] = None,
    ids: Optional[Sequence[str]] = None,
) -> DynamicItemDataset:
    """A ``DynamicItemDataset`` providing ``feats`` [T, n_mels] and ``tokens``.

    Parameters
    ----------
    ids : sequence of str, optional
        Keep only these utterance ids (a client's data), in this order.
    """
    read_manifest(csv_path)  # clear error before SpeechBrain's generic one
    from data_prep.kaldi import is_privacy_only

    if is_privacy_only(csv_path):
        raise ManifestError(f"manifest {csv_path} has no transcripts (prepared for privacy evaluation only): "
                            "it cannot train or test an ASR model")
    ds = DynamicItemDataset.from_csv(str(csv_path))
    transforms = transforms or DataTransforms()

    @takes("id", "wav")
    @provides("feats")
    def audio_pipeline(uid, wav):
        return cache.get(wav, transforms.audio(uid) if transforms.audio is not None else None)

    @takes("id", "wrd")
    @provides("wrd", "tokens")
    def text_pipeline(uid, wrd):
        if transforms.text is not None:
            wrd = transforms.text(uid, wrd)
        yield wrd
        try:
            ids = tokenizer.encode(wrd)
        except ValueError as exc:  # name the utterance and manifest, not only the text
            raise ManifestError(f"{csv_path}: utterance {uid}: {exc}; prepare the corpus again (speechfl prepare "
                                "normalises transcripts) or fix the manifest") from None
        yield torch.LongTensor(ids)

    ds.add_dynamic_item(audio_pipeline)
    ds.add_dynamic_item(text_pipeline)
    ds.set_output_keys(OUTPUT_KEYS)
    if ids is not None:
        wanted = set(ids)
        unknown = wanted - set(ds.data_ids)
        if unknown:
            raise ManifestError(f"{len(unknown)} requested utterance ids are not in {csv_path}")
        ds = ds.filtered_sorted(key_test={"id": lambda u: u in wanted})
    return ds


def make_loader(ds, batch_size: int, shuffle: bool, seed: int = 0) -> torch.utils.data.DataLoader:
    """Deterministic loader: shuffling draws from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=gen if shuffle else None,
        collate_fn=PaddedBatch,
        num_workers=0,
    )


def speakers_of(rows: List[Dict[str, str]]) -> Dict[str, List[str]]:
    """spk_id -> utterance ids, in manifest order."""
    out: Dict[str, List[str]] = {}
    for r in rows:
        out.setdefault(r["spk_id"], []).append(r["ID"])
    return out
