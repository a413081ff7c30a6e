"""Audio loading, Fbank features and a feature cache.

Features are computed once per (audio file, feature config) and reused across
epochs, clients, rounds and runs. The cache key covers the absolute path, the
file's size and modification time, and the feature configuration, so editing
the audio or changing ``n_mels`` invalidates the entry. Disk entries are
written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Optional

from speechfl.io import atomic_torch_save

import soundfile as sf
import torch
import torchaudio.functional as AF

SAMPLE_RATE = 16000


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


class FeatureCache:
    """Memory (and optionally disk) cache of Fbank features keyed by file and config.

    Parameters
    ----------
    config : FeatureConfig
    cache_dir : path or None
        If given, features are also stored as ``<cache_dir>/<config digest>/<key>.pt``
        so later runs (sweep cells, evaluation) reuse them.
    """

    def __init__(self, config: FeatureConfig = FeatureConfig(), cache_dir: Optional[str] = None):
        self.config = config
        self.extractor = FeatureExtractor(config)
        self.cache_dir = Path(cache_dir) / config.digest() if cache_dir else None
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._mem: Dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(self, path: str, tag: str = "") -> str:
        st = os.stat(path)
        raw = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{self.config.digest()}|{tag}"
        return hashlib.sha1(raw.encode()).hexdigest()

    def get(self, path: str, transform=None) -> torch.Tensor:
        """Features [T, n_mels] of the audio at ``path`` (computed at most once).

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
            return hit
        feats = None
        disk = self.cache_dir / f"{k}.pt" if self.cache_dir else None
        if disk is not None and disk.exists():
            try:
                feats = torch.load(disk, weights_only=True)
            except Exception:  # a torn or stale file is recomputed, never trusted
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
            self._mem[k] = feats
        return feats
