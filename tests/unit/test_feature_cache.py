"""The bounded feature cache (LRU by bytes), private copies, out-of-place SpecAugment, sample rates."""

import numpy as np
import pytest
import soundfile as sf
import torch

from speechfl.data.augment import SpecAugment
from speechfl.data.features import FeatureCache, FeatureConfig, LRUTensorCache


def _t(n_floats):
    return torch.zeros(n_floats, dtype=torch.float32)  # 4 bytes each


def test_lru_byte_accounting_and_eviction_order():
    lru = LRUTensorCache(max_bytes=100)
    lru.put("a", _t(10))  # 40 B
    lru.put("b", _t(10))  # 80 B
    assert lru.bytes == 80 and lru.keys() == ["a", "b"]
    assert lru.get("a") is not None  # a is now the most recently used
    assert lru.keys() == ["b", "a"]
    lru.put("c", _t(5))  # 100 B: exactly at the bound, nothing evicted
    assert lru.bytes == 100 and lru.evictions == 0
    lru.put("d", _t(6))  # 124 B -> evict b (least recent): 84 B
    assert lru.keys() == ["a", "c", "d"] and lru.bytes == 84 and lru.evictions == 1
    lru.put("e", _t(20))  # 164 B -> evict a (40) then c (20): 104 > 100 -> evict d (24): 80
    assert lru.keys() == ["e"] and lru.bytes == 80 and lru.evictions == 4
    lru.put("e", _t(2))  # replacing an entry replaces its bytes
    assert lru.bytes == 8 and len(lru) == 1
    lru.put("huge", _t(26))  # 104 B alone exceeds the bound: not kept, nothing else evicted
    assert "huge" not in lru and lru.keys() == ["e"] and lru.bytes == 8
    assert lru.get("missing") is None


def test_lru_counts_element_size():
    lru = LRUTensorCache(max_bytes=1000)
    lru.put("half", torch.zeros(3, 4, dtype=torch.float16))
    lru.put("long", torch.zeros(5, dtype=torch.int64))
    assert lru.bytes == 3 * 4 * 2 + 5 * 8


def test_lru_rejects_negative_bound():
    with pytest.raises(ValueError, match="max_bytes"):
        LRUTensorCache(-1)


def _write_wav(path, seconds=0.5, rate=16000, freq=440.0):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return str(path)


def test_cache_is_bounded_and_reloads_evicted_entries_from_disk(tmp_path):
    wavs = [_write_wav(tmp_path / f"{i}.wav", freq=300.0 + 100 * i) for i in range(3)]
    one = FeatureCache(FeatureConfig(n_mels=20), memory_mb=0).get(wavs[0])
    size_mb = one.numel() * one.element_size() / 2**20
    cache = FeatureCache(FeatureConfig(n_mels=20), cache_dir=str(tmp_path / "disk"), memory_mb=2.5 * size_mb)
    first = [cache.get(w) for w in wavs]
    assert len(cache._mem) == 2 and cache._mem.bytes <= cache._mem.max_bytes and cache.misses == 3
    again = cache.get(wavs[0])  # evicted from memory, read back from disk: not recomputed
    assert cache.misses == 3 and torch.equal(again, first[0])


def test_cache_hands_out_private_copies(tmp_path):
    wav = _write_wav(tmp_path / "a.wav")
    cache = FeatureCache(FeatureConfig(n_mels=20))
    a = cache.get(wav)
    reference = a.clone()
    a.zero_()  # a caller writing into what it got ...
    assert torch.equal(cache.get(wav), reference)  # ... cannot reach the cache


def test_cache_rejects_bad_memory_bound():
    with pytest.raises(ValueError, match="feature_cache_memory_mb"):
        FeatureCache(FeatureConfig(n_mels=20), memory_mb=-5)


def test_specaugment_never_writes_its_input():
    torch.manual_seed(0)
    aug = SpecAugment(time_drops=4, time_width=10, freq_drops=4, freq_width=8)
    x = torch.randn(1, 50, 20) + 5.0
    before = x.clone()
    y = aug(x)
    assert torch.equal(x, before)
    assert (y == 0).any() and not (x == 0).any()  # the masks went to the copy


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_other_sample_rates_give_features_at_the_16k_frame_rate(tmp_path, rate):
    cache = FeatureCache(FeatureConfig(n_mels=20))
    ref = cache.get(_write_wav(tmp_path / "ref.wav", seconds=1.0, rate=16000))
    feats = cache.get(_write_wav(tmp_path / f"r{rate}.wav", seconds=1.0, rate=rate))
    assert feats.shape == ref.shape == (101, 20)  # 10 ms hop: 100 frames per second (+1 centred)
    # a 440 Hz tone lands in the same mel bin whatever the recording rate
    assert int(feats[10:90].mean(0).argmax()) == int(ref[10:90].mean(0).argmax())
