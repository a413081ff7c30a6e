"""The VoicePrivacy attack scenarios and trial scoring (which model scores which data).

Notation ``XY``: enrollment data X, trial data Y, each Original or Anonymized; the ASV model is
trained on original (``asv="original"``) or anonymized (``asv="anonymized"``) training speech.

==============  ======  ======  ==========  ============================================
scenario        enroll  trials  ASV trained  attacker
==============  ======  ======  ==========  ============================================
original        O       O       O           reference: no anonymization (OO)
ignorant        O       A       O           does not know speech was anonymized (OA)
lazy_informed   A       A       O           anonymizes its enrollment, original ASV (AA)
semi_informed   A       A       A           also retrains the ASV on anonymized speech (AA)
==============  ======  ======  ==========  ============================================

(Srivastava et al. 2020, "Design choices for x-vector based speaker anonymization"; VPC 2024
evaluation plan.) Scores: embeddings go through the ASV's back-end (centring, optional LDA,
length normalisation; :class:`speechfl.attackers.verification.CosineBackend`, fitted on the
ASV's own training embeddings); a speaker's enrollment model is the length-normalised mean of
its enrollment embeddings; a trial's score is the cosine between that model and the test
utterance (VPC averages enrollment x-vectors too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import torch

from speechfl.anonymization.trials import TrialList


@dataclass(frozen=True)
class Scenario:
    name: str
    enroll: str  # "original" | "anonymized"
    trial: str
    asv: str


SCENARIOS = (
    Scenario("original", "original", "original", "original"),
    Scenario("ignorant", "original", "anonymized", "original"),
    Scenario("lazy_informed", "anonymized", "anonymized", "original"),
    Scenario("semi_informed", "anonymized", "anonymized", "anonymized"),
)


@dataclass(frozen=True)
class ScoredTrials:
    """Scores of a trial list, in trial order, with the enrolled speaker's gender."""

    scores: np.ndarray
    target: np.ndarray
    gender: np.ndarray


def score_trials(trials: TrialList, enroll_emb: Mapping[str, torch.Tensor], test_emb: Mapping[str, torch.Tensor],
                 utt2spk: Mapping[str, str], spk2gender: Mapping[str, str]) -> ScoredTrials:
    """Cosine scores of every trial; embeddings are already back-end normalised ``[E]`` per utterance id."""
    models: Dict[str, torch.Tensor] = {}
    by_spk: Dict[str, List[torch.Tensor]] = {}
    for utt in trials.enrolls:
        by_spk.setdefault(utt2spk[utt], []).append(enroll_emb[utt])
    for spk, embs in by_spk.items():
        models[spk] = torch.nn.functional.normalize(torch.stack(embs).double().mean(0), dim=0)
    scores = np.array([float(models[t.speaker] @ torch.nn.functional.normalize(test_emb[t.utt].double(), dim=0))
                       for t in trials.trials])
    return ScoredTrials(scores=scores, target=np.array([t.target for t in trials.trials], dtype=bool),
                        gender=np.array([spk2gender[t.speaker] for t in trials.trials]))


def scenario_inputs(scenario: Scenario, embeddings: Mapping[Tuple[str, str], Mapping[str, torch.Tensor]],
                    ) -> Tuple[Mapping[str, torch.Tensor], Mapping[str, torch.Tensor]]:
    """(enrollment, test) embeddings of a scenario from ``embeddings[(asv, data)]`` (the wiring, in one place)."""
    return embeddings[(scenario.asv, scenario.enroll)], embeddings[(scenario.asv, scenario.trial)]


def eer_breakdown(scored: ScoredTrials) -> Dict[str, object]:
    """EER overall and per gender of the enrolled speaker, plus linkability and trial counts."""
    from speechfl.anonymization.metrics import linkability
    from speechfl.metrics.privacy import eer

    def block(mask):
        t, n = scored.scores[mask & scored.target], scored.scores[mask & ~scored.target]
        if t.size == 0 or n.size == 0:
            return None
        return {"eer": eer(t, n), "linkability": linkability(t, n), "n_target": int(t.size),
                "n_nontarget": int(n.size)}

    everything = np.ones(scored.scores.size, dtype=bool)
    out = {"all": block(everything)}
    for g in sorted(set(scored.gender.tolist())):
        out[g] = block(scored.gender == g)
    return out


def pool(scored: Sequence[ScoredTrials]) -> ScoredTrials:
    return ScoredTrials(np.concatenate([s.scores for s in scored]), np.concatenate([s.target for s in scored]),
                        np.concatenate([s.gender for s in scored]))
