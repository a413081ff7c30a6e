"""The imbalanced synthetic corpus: requested gender fraction in train, balanced dev/test, determinism."""

import argparse
import hashlib

import pytest

from data_prep.speakers import read_speakers_txt
from data_prep.synthetic import (LANGUAGES, gender_sequence, generate_corpus, plan_speakers, read_accents,
                                 split_sizes)
from speechfl.cli_prepare import register


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.25, 0.5, 0.8, 1.0])
def test_train_split_has_the_requested_fraction_and_eval_splits_stay_balanced(fraction):
    speakers = plan_speakers(48, seed=0, female_fraction=fraction)
    train = [s for s in speakers if s.split == "train"]
    assert len(train) == 32
    n_female = sum(s.gender == "F" for s in train)
    assert n_female == round(fraction * 32)  # 0.2 * 32 = 6.4 -> 6
    for split in ("dev", "test"):
        members = [s for s in speakers if s.split == split]
        assert sum(s.gender == "F" for s in members) == len(members) // 2
    assert len({s.voice for s in speakers}) == 48


def test_female_speakers_are_spread_through_train():
    # 4 of 10: floor((i+1)*4/10) > floor(i*4/10) at i = 2, 4, 7, 9
    genders = gender_sequence((10, 2, 2), 0.4)
    assert genders[:10] == ["M", "M", "F", "M", "F", "M", "M", "F", "M", "F"]
    assert genders[10:] == ["F", "M", "F", "M"]


def test_default_is_unchanged_and_deterministic():
    assert gender_sequence(split_sizes(48)) == ["F", "M"] * 24
    assert plan_speakers(48, seed=0, female_fraction=None) == plan_speakers(48, seed=0)
    assert plan_speakers(48, seed=3, female_fraction=0.2) == plan_speakers(48, seed=3, female_fraction=0.2)
    assert plan_speakers(48, seed=3, female_fraction=0.2) != plan_speakers(48, seed=3, female_fraction=0.8)


@pytest.mark.parametrize("bad", [-0.1, 1.5, "0.2", True])
def test_bad_fraction_is_refused(bad):
    with pytest.raises(ValueError, match="female_fraction"):
        plan_speakers(12, female_fraction=bad)


def _hashes(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_generated_corpus_counts_accents_and_bytes(tmp_path):
    kwargs = dict(n_speakers=6, n_utterances=1, seed=5, progress=False, female_fraction=0.25,
                  utterances_female=2, utterances_male=1)
    out = generate_corpus(tmp_path / "a", **kwargs)
    speakers = read_speakers_txt(out / "SPEAKERS.TXT")
    train = {k: v for k, v in speakers.items() if v.subset == "train"}
    assert sorted(v.gender for v in train.values()) == ["F", "M", "M", "M"]  # round(0.25 * 4) = 1
    for spk, info in speakers.items():
        n = len(list((out / info.subset / spk).rglob("*.flac")))
        assert n == (2 if info.subset == "train" and info.gender == "F" else 1)
    accents = read_accents(out / "SPEAKERS.TXT")
    assert set(accents) == set(speakers) and set(accents.values()) <= set(LANGUAGES)
    planned = {s.spk_id: s.voice.language for s in plan_speakers(6, seed=5, female_fraction=0.25)}
    assert accents == planned
    again = generate_corpus(tmp_path / "b", **kwargs)
    assert _hashes(again) == _hashes(out)
    with pytest.raises(ValueError, match="another configuration"):
        generate_corpus(out, **{**kwargs, "female_fraction": 0.5})


def test_cli_flags(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr("data_prep.synthetic.generate_corpus", lambda out_dir, **kw: seen.update(kw) or out_dir)
    parser = argparse.ArgumentParser(prog="speechfl")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prepare", "synthetic", str(tmp_path / "c"), "--female-fraction", "0.2",
                              "--utterances-female", "7", "--no-progress"])
    assert args.func(args) == 0
    assert seen["female_fraction"] == 0.2 and seen["utterances_female"] == 7 and "utterances_male" not in seen
    with pytest.raises(SystemExit):
        parser.parse_args(["prepare", "synthetic", str(tmp_path / "d"), "--female-fraction", "1.5"])
