"""Anonymizers: McAdams identity and pole maths (hand-computed), determinism, duration, registry errors."""

import numpy as np
import pytest
from scipy.signal import lfilter

from speechfl.anonymization.anonymizers import ANONYMIZERS, WaveformTransform, build_anonymizer
from speechfl.anonymization.lpc import autocorrelation, lpc, roots
from speechfl.anonymization.mcadams import mcadams, mcadams_poles
from speechfl.registry import RegistryError

SR = 16000
# two formants at 700 Hz and 2200 Hz: angles 2*pi*f/SR
THETA = (2 * np.pi * 700 / SR, 2 * np.pi * 2200 / SR)  # 0.274889, 0.863938 rad
# by hand: 0.274889 ** 0.8 = exp(0.8 * ln 0.274889) = exp(0.8 * -1.291388) = exp(-1.033110) = 0.355899
#          0.863938 ** 0.8 = exp(0.8 * -0.146253) = exp(-0.117002) = 0.889582
MOVED_08 = (0.355899, 0.889582)


def two_formant_poly(radius=0.97):
    poles = [radius * np.exp(1j * t) for t in THETA]
    return np.real(np.poly(poles + [np.conj(p) for p in poles]))


def two_formant_signal(seconds=2.0):
    excitation = np.zeros(int(SR * seconds))
    excitation[::100] = 1.0  # 160 Hz pulse train
    return lfilter([1.0], two_formant_poly(), excitation)


def test_lpc_matches_toeplitz_solve():
    from scipy.linalg import solve_toeplitz

    x = np.random.default_rng(0).standard_normal((2, 320)) * np.hanning(320)
    a = lpc(x, 20)
    for f in range(2):
        r = autocorrelation(x[f : f + 1], 20)[0]
        np.testing.assert_allclose(a[f, 1:], solve_toeplitz(r[:-1], -r[1:]), rtol=1e-7, atol=1e-9)


def test_mcadams_alpha_one_is_identity():
    x = np.random.default_rng(1).standard_normal(SR) * 0.1
    np.testing.assert_allclose(mcadams(x, SR, 1.0), x, atol=1e-9)
    y = two_formant_signal(0.5)
    np.testing.assert_allclose(mcadams(y, SR, 1.0), y, atol=1e-9 * np.abs(y).max())


def test_mcadams_pole_angles_follow_formula():
    new = mcadams_poles(two_formant_poly()[None], 0.8)
    r = roots(new)[0]
    angles = sorted(a for a in np.angle(r) if a > 0)
    np.testing.assert_allclose(angles, MOVED_08, atol=1e-5)
    np.testing.assert_allclose(np.abs(r), 0.97, atol=1e-9)  # magnitudes (bandwidths) kept


def test_mcadams_moves_formants_of_a_signal():
    y = mcadams(two_formant_signal(), SR, 0.8)
    seg = y[1000:-1000] * np.hanning(y.size - 2000)
    angles = sorted({round(abs(a), 6) for a in np.angle(roots(lpc(seg[None], 4))[0])})
    np.testing.assert_allclose(angles, MOVED_08, atol=0.03)
    assert abs(angles[0] - THETA[0]) > 0.07  # far from the original 700 Hz formant


@pytest.mark.parametrize("name", ["mcadams", "pitch_shift", "vtln", "speed"])
def test_anonymizers_deterministic_and_duration(name):
    x = np.random.default_rng(2).standard_normal(SR // 2) * 0.1
    a = ANONYMIZERS.build(name, seed=7)
    y1 = a(x, SR, utt_id="s1-c-0001", spk_id="s1")
    y2 = ANONYMIZERS.build(name, seed=7)(x, SR, utt_id="s1-c-0001", spk_id="s1")
    np.testing.assert_array_equal(y1, y2)
    assert np.isfinite(y1).all()
    if a.preserves_duration:
        assert y1.shape == x.shape
    else:
        assert y1.size == int(np.ceil(x.size / a.value("s1-c-0001", "s1")))
    other = ANONYMIZERS.build(name, seed=8)
    assert other.value("s1-c-0001", "s1") != a.value("s1-c-0001", "s1")
    n = min(y1.size, x.size)
    assert not np.allclose(y1[:n], x[:n])


def test_per_speaker_vs_per_utterance_draws():
    spk = ANONYMIZERS.build("mcadams", seed=3, per="speaker")
    utt = ANONYMIZERS.build("mcadams", seed=3, per="utterance")
    assert spk.value("a", "s1") == spk.value("b", "s1") != spk.value("a", "s2")
    assert utt.value("a", "s1") != utt.value("b", "s1")
    values = [utt.value(f"u{i}", "s") for i in range(200)]
    assert 0.5 <= min(values) and max(values) <= 0.9


def test_pitch_shift_moves_a_tone():
    t = np.arange(SR) / SR
    y = ANONYMIZERS.build("pitch_shift", semitones_min=3, semitones_max=3, random_sign=False)(
        0.3 * np.sin(2 * np.pi * 200 * t), SR, utt_id="u", spk_id="s")
    spec = np.abs(np.fft.rfft(y[2000:-2000]))
    peak = np.fft.rfftfreq(y.size - 4000, 1 / SR)[spec.argmax()]
    assert abs(peak - 200 * 2 ** (3 / 12)) < 3  # 237.8 Hz


def test_waveform_transform_and_registry_errors():
    import torch

    a = build_anonymizer({"name": "vtln", "seed": 1})
    hook = WaveformTransform(a, "u", "s", SR)
    out = hook(torch.randn(4000))
    assert out.shape == (4000,) and hook.cache_tag.startswith("anon:vtln:")
    with pytest.raises(RegistryError, match="valid anonymizers: mcadams, pitch_shift, speed, vtln"):
        build_anonymizer("nope")
    with pytest.raises(RegistryError, match="valid parameters"):
        build_anonymizer({"name": "mcadams", "alpha": 0.8})
    with pytest.raises(ValueError, match="per must be"):
        build_anonymizer({"name": "mcadams", "per": "chapter"})
