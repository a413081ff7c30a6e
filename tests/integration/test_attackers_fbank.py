"""Every attacker breaks raw Fbank features of a tiny synthetic corpus (nothing protects them)."""

import pytest
import soundfile as sf
import torch

from data_prep.speakers import read_speakers_txt
from data_prep.synthetic import generate_corpus
from speechfl.attackers import SPEAKER_ATTACKERS, gender_attack, speaker_attacks
from speechfl.attackers.types import UtteranceSet

pytestmark = pytest.mark.slow

N_SPEAKERS, N_UTTS = 12, 16


pytestmark = pytest.mark.usefixtures("one_thread")  # small MLPs: threads only add overhead


@pytest.fixture(scope="session")
def fbank_set(tmp_path_factory) -> UtteranceSet:
    """80-dim SpeechBrain Fbank of every utterance of a 12-speaker synthetic corpus (all splits)."""
    from speechbrain.lobes.features import Fbank

    root = generate_corpus(tmp_path_factory.mktemp("attack_corpus"), n_speakers=N_SPEAKERS, n_utterances=N_UTTS,
                           seed=0, progress=False)
    speakers = read_speakers_txt(root / "SPEAKERS.TXT")
    fbank = Fbank(n_mels=80)
    frames, spk, gen, utt = [], [], [], []
    for path in sorted(root.glob("*/*/*/*.flac")):
        wav, sr = sf.read(str(path), dtype="float32")
        assert sr == 16000
        with torch.no_grad():
            frames.append(fbank(torch.from_numpy(wav).unsqueeze(0)).squeeze(0))
        s = path.stem.split("-")[0]
        spk.append(s)
        gen.append(speakers[s].gender)
        utt.append(path.stem)
    data = UtteranceSet(frames, spk, gen, utt)
    data.validate()
    assert len(data) == N_SPEAKERS * N_UTTS and data.dim == 80
    return data


def test_every_speaker_attacker_breaks_raw_fbank(fbank_set):
    rep = speaker_attacks(fbank_set, families=("linear", "mlp", "xvector"), progress=False)
    assert rep.n_heldout_speakers == 4 and rep.chance == pytest.approx(1 / 8)
    for name, fr in rep.families.items():  # chance is 0.125 and 0.5
        assert fr.top1 >= 0.85, (name, fr.top1)
        assert fr.eer <= 0.1, (name, fr.eer)
        for g, gs in fr.per_gender.items():
            assert gs.top1 >= 0.7 and gs.eer is not None and gs.eer <= 0.15, (name, g, gs)
    assert rep.best_top1 >= 0.95 and rep.best_eer <= 0.05


def test_ecapa_family_also_learns(fbank_set):
    rep = speaker_attacks(fbank_set, families=("ecapa",), progress=False)
    assert rep.families["ecapa"].top1 >= 0.8, rep.families["ecapa"].top1
    assert "ecapa" in SPEAKER_ATTACKERS


def test_gender_leaks_from_raw_fbank(fbank_set):
    rep = gender_attack(fbank_set)
    assert rep.accuracy >= 0.9 and rep.auc >= 0.95, rep.to_dict()
