"""Feature pipeline without tokens, for privacy-only corpora (no transcripts).

:func:`speechfl.data.dataset.make_dataset` encodes ``wrd`` into CTC tokens, which a corpus
without transcripts cannot give. :func:`feature_dataset` is the same SpeechBrain
``DynamicItemDataset`` over a manifest, providing ``id, spk_id, gender, feats`` only (features
from the shared :class:`~speechfl.data.features.FeatureCache`, with the optional per-utterance
waveform hook, e.g. an anonymizer). :func:`write_split_manifest` writes any evaluation split
(LibriSpeech layout with or without transcripts, Kaldi dir) as a manifest marked privacy-only
when it has no transcripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.data_pipeline import provides, takes

from speechfl.data.features import FeatureCache

OUTPUT_KEYS = ["id", "spk_id", "gender", "feats"]


def feature_dataset(csv_path, cache: FeatureCache, audio: Optional[Callable[[str], object]] = None
                    ) -> DynamicItemDataset:
    """``id, spk_id, gender, feats`` for every manifest row; ``audio(utt_id)`` is an optional waveform hook."""
    from speechfl.data.dataset import read_manifest

    read_manifest(csv_path)  # clear error for a missing or malformed manifest
    ds = DynamicItemDataset.from_csv(str(csv_path))

    @takes("id", "wav")
    @provides("feats")
    def audio_pipeline(uid, wav):
        return cache.get(wav, audio(uid) if audio is not None else None)

    ds.add_dynamic_item(audio_pipeline)
    ds.set_output_keys(OUTPUT_KEYS)
    return ds


def write_split_manifest(root, split: str, save_folder) -> Path:
    """``save_folder/<split>.csv`` (+ ``.meta.json``, privacy-only without transcripts) for a split of ``root``."""
    from data_prep.kaldi import write_manifest
    from speechfl.anonymization.corpus import load_split

    data = load_split(root, split)
    return write_manifest(list(data.rows), Path(save_folder) / f"{split}.csv", source=Path(root) / split,
                          has_text=data.has_text)
