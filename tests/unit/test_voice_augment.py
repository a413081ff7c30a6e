"""VTLP frequency warping and tempo perturbation of log-mel features, against hand-computed oracles."""

import pytest
import torch
from speechbrain.processing.features import Filterbank

from speechfl.data.voice_augment import VoicePerturb, change_tempo, hz_to_mel, mel_centres, warp_frequency


def test_mel_centres_are_speechbrains_filterbank_centres():
    fb = Filterbank(n_mels=40, sample_rate=16000, n_fft=400)
    assert torch.allclose(mel_centres(40, 16000).float(), fb.f_central, rtol=1e-4)


def test_warp_moves_a_band_to_the_scaled_frequency():
    n = 40
    centres = mel_centres(n)
    feats = torch.zeros(2, 3, n)
    feats[:, :, 10] = 1.0  # one lit band at centres[10]
    out = warp_frequency(feats, torch.tensor([1.0, 1.2]))
    assert torch.allclose(out[0], feats[0], atol=1e-6)  # alpha = 1 is the identity
    # out(f) = in(f / 1.2): the energy now sits around 1.2 * centres[10], read by bins whose source mel
    # is within one bin of band 10; the weighted mean position is the mel of 1.2 * f10
    step = float(hz_to_mel(centres[1]) - hz_to_mel(centres[0]))
    w = out[1, 0]
    pos = float((w * torch.arange(n)).sum() / w.sum())
    want = float((hz_to_mel(1.2 * centres[10]) - hz_to_mel(centres[0])) / step)
    assert pos == pytest.approx(want, abs=0.35)
    assert int(w.argmax()) != 10


def test_tempo_change_keeps_relative_lengths_and_resamples_linearly():
    ramp = torch.arange(100, dtype=torch.float32)
    feats = torch.zeros(2, 100, 3)
    feats[0, :, :] = ramp[:, None]
    feats[1, :50, :] = ramp[:50, None]  # half-length utterance padded with zeros
    out = change_tempo(feats, 1.25)
    assert out.shape == (2, 80, 3)
    assert torch.allclose(out[0, :, 0], torch.linspace(0, 99, 80), atol=1e-4)  # a ramp stays a ramp
    nonzero = int((out[1, :, 0] != 0).sum())
    assert abs(nonzero / 80 - 0.5) <= 2 / 80  # the valid part keeps its relative length


def test_voice_perturb_draws_per_utterance_and_never_writes_its_input():
    torch.manual_seed(0)
    feats = torch.randn(4, 60, 40)
    before = feats.clone()
    out = VoicePerturb(alpha_low=0.8, alpha_high=1.2, rate_low=1.0, rate_high=1.0)(feats)
    assert torch.equal(feats, before) and out.shape == feats.shape
    # different warps per utterance: the same input in every row comes out different
    same = feats[:1].repeat(4, 1, 1)
    out = VoicePerturb(alpha_low=0.8, alpha_high=1.2, rate_low=1.0, rate_high=1.0)(same)
    assert not torch.allclose(out[0], out[1])
    off = VoicePerturb(alpha_low=1.0, alpha_high=1.0, rate_low=1.0, rate_high=1.0)(feats)
    assert torch.allclose(off, feats, atol=1e-5)
    with pytest.raises(ValueError, match="rate range"):
        VoicePerturb(rate_low=1.2, rate_high=1.1)
    with pytest.raises(ValueError, match=r"\[B, T, F\]"):
        VoicePerturb()(torch.zeros(3, 4))
