"""Audio loading, Fbank features and a feature cache.

Features are computed once per (audio file, feature config) and reused across
epochs, clients, rounds and runs. The cache key covers the absolute path, the
file's size and modification time, and the feature configuration, so editing
the audio or changing ``n_mels`` invalidates the entry. Disk entries are
written atomically.

The in-memory layer is bounded: a least-recently-used cache of at most
``memory_mb`` MiB of feature tensors (LibriSpeech train-clean-100 holds about
11 GB of 80-mel features, more than a laptop's memory); evicted entries are
reloaded from the disk cache, or recomputed when there is none. Callers always
receive a private copy, so nothing they do (in-place augmentation, padding) can
write into the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

from speechfl.io import atomic_torch_save

import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16000
DEFAULT_MEMORY_MB = 2048


class AudioError(ValueError):
    """Unreadable, empty or corrupt audio; the message names the file."""


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read a mono waveform at ``sample_rate`` (resampling if needed) as float32 [N]."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"cannot read audio {path}: {exc}") from exc
    if data.shape[0] == 0:
        raise AudioError(f"audio file {path} is empty")
    wav = torch.from_numpy(data).mean(dim=1)
    if sr != sample_rate:
        wav = AF.resample(wav, sr, sample_rate)
    return wav


@dataclass(frozen=True)
class FeatureConfig:
    """Fbank settings (SpeechBrain ``Fbank``) that determine the cached features."""

    n_mels: int = 80
    sample_rate: int = SAMPLE_RATE
    win_length: int = 25
    hop_length: int = 10
    n_fft: int = 400

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


class FeatureExtractor:
    """Waveform [N] -> log-mel filterbank [T, n_mels] (SpeechBrain ``Fbank``)."""

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        from speechbrain.lobes.features import Fbank

        self.config = config
        self.fbank = Fbank(
            sample_rate=config.sample_rate,
            n_mels=config.n_mels,
            win_length=config.win_length,
            hop_length=config.hop_length,
            n_fft=config.n_fft,
        )

    @torch.no_grad()
    def __call__(self, wav: torch.Tensor) -> torch.Tensor:
        return self.fbank(wav.unsqueeze(0)).squeeze(0).contiguous()


class LRUTensorCache:
    """A least-recently-used map of tensors bounded by their total size in bytes.

    The size of an entry is ``numel * element_size`` (its data, not Python overhead).
    Inserting beyond ``max_bytes`` evicts the least recently used entries (a ``get`` counts
    as a use) until the total fits; an entry larger than ``max_bytes`` on its own is not kept.

    Parameters
    ----------
    max_bytes : int
        Bound on the summed bytes of the stored tensors (>= 0; 0 keeps nothing).
    """

    def __init__(self, max_bytes: int):
        if int(max_bytes) < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._data: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    @staticmethod
    def nbytes(tensor: torch.Tensor) -> int:
        return tensor.numel() * tensor.element_size()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def keys(self):
        """Keys from least to most recently used."""
        return list(self._data)

    def get(self, key: str) -> Optional[torch.Tensor]:
        hit = self._data.get(key)
        if hit is not None:
            self._data.move_to_end(key)
        return hit

    def put(self, key: str, tensor: torch.Tensor) -> None:
        old = self._data.pop(key, None)
        if old is not None:
            self.bytes -= self.nbytes(old)
        size = self.nbytes(tensor)
        if size > self.max_bytes:
            return
        self._data[key] = tensor
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, evicted = self._data.popitem(last=False)
            self.bytes -= self.nbytes(evicted)
            self.evictions += 1


class FeatureCache:
    """Memory (bounded, LRU) and optionally disk cache of Fbank features keyed by file and config.

    Parameters
    ----------
    config : FeatureConfig
    cache_dir : path or None
        If given, features are also stored as ``<cache_dir>/<config digest>/<key>.pt``
        so later runs (sweep cells, evaluation) reuse them and evicted entries are reloaded.
    memory_mb : float
        Bound of the in-memory layer in MiB (hparams key ``feature_cache_memory_mb``,
        default 2048). 0 disables the memory layer.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig(), cache_dir: Optional[str] = None,
                 memory_mb: float = DEFAULT_MEMORY_MB):
        if isinstance(memory_mb, bool) or not isinstance(memory_mb, (int, float)) or memory_mb < 0:
            raise ValueError(f"feature_cache_memory_mb must be a number >= 0 (MiB), got {memory_mb!r}")
        self.config = config
        self.extractor = FeatureExtractor(config)
        self.cache_dir = Path(cache_dir) / config.digest() if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._mem = LRUTensorCache(int(memory_mb * 2**20))
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, path: str, tag: str = "") -> str:
        st = os.stat(path)
        raw = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self.config.digest()}|{tag}"
        return hashlib.sha1(raw.encode()).hexdigest()

    def get(self, path: str, transform=None) -> torch.Tensor:
        """Features [T, n_mels] of the audio at ``path`` (a private copy the caller may modify).

        ``transform`` optionally changes the waveform before extraction (e.g. an
        audio backdoor trigger); its ``cache_tag`` attribute is part of the key.
        """
        try:
            tag = getattr(transform, "cache_tag", "") if transform is not None else ""
            k = self.key(path, tag)
        except FileNotFoundError as exc:
            raise AudioError(f"audio file {path} does not exist") from exc
        with self._lock:
            hit = self._mem.get(k)
        if hit is not None:
            self.hits += 1
            return hit.clone()
        feats = None
        disk = self.cache_dir / f"{k}.pt" if self.cache_dir else None
        if disk is not None and disk.exists():
            try:
                feats = torch.load(disk, weights_only=True)
            except Exception:  # a torn or stale file is recomputed, never trusted
                feats = None
            if feats is not None and not isinstance(feats, torch.Tensor):
                feats = None
        if feats is None:
            self.misses += 1
            wav = load_audio(path, self.config.sample_rate)
            if transform is not None:
                wav = transform(wav)
            feats = self.extractor(wav)
            if disk is not None:
                atomic_torch_save(feats, disk)
        else:
            self.hits += 1
        with self._lock:
            self._mem.put(k, feats)
        return feats.clone()
