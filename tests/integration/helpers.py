"""Building small federated experiments on the tiny corpus for integration tests."""

from __future__ import annotations

from pathlib import Path

from speechfl.experiment.hparams import load_hparams

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "LibriSpeech" / "ASR"
FED_HPARAMS = RECIPES / "federated" / "hparams" / "synthetic_fedavg.yaml"
CTC_HPARAMS = RECIPES / "CTC" / "hparams" / "synthetic.yaml"
TINY_MODEL = ["--encoder=conv_rnn", "--channels=16", "--proj=96", "--hidden=96", "--layers=2"]  # the small conv + BiGRU


def fed_hparams(base_overrides, out: Path, *extra: str) -> dict:
    return load_hparams(FED_HPARAMS, [*base_overrides, f"--output_folder={out}", *TINY_MODEL, *extra])


def fresh_probe_top1(reps) -> float:
    """Closed-set speaker identification by a fresh linear probe: trained on each speaker's even utterances,
    tested on the odd ones (``reps``: an attacker ``UtteranceSet`` of the training speakers)."""
    import torch

    from speechfl.attackers.probes import LinearProbe

    speakers = sorted(set(reps.spk_ids))
    y = torch.tensor([speakers.index(s) for s in reps.spk_ids])
    train = [i for i in range(len(y)) if i % 2 == 0]
    test = [i for i in range(len(y)) if i % 2 == 1]
    probe = LinearProbe().fit([reps.frames[i] for i in train], y[train], len(speakers), seed=0)
    pred = probe.logits([reps.frames[i] for i in test]).argmax(-1)
    return float((pred == y[test]).float().mean())


def straight_and_resumed(base_overrides, tmp_path: Path, stop_after: int, *extra: str):
    """The same run twice: straight through in ``tmp_path/a``, and in ``tmp_path/b`` stopped after
    ``stop_after`` rounds and resumed by a new Simulation (a new process would see the same checkpoint).
    Returns ``(full, resumed)`` after both ran to the end; ``resumed`` was checked to start at ``stop_after``."""
    from speechfl.federated.setup import build_setup
    from speechfl.federated.simulation import Simulation

    def sim(folder):
        return Simulation(build_setup(fed_hparams(base_overrides, tmp_path / folder, *extra), progress=False),
                          tmp_path / folder, progress=False)

    full = sim("a")
    full.run()
    part = sim("b")
    for _ in range(stop_after):
        part.run_round()
    del part  # "killed": only the checkpoint survives
    resumed = sim("b")
    assert resumed.round == stop_after
    resumed.run()
    return full, resumed
