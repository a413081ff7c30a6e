"""Greedy CTC transcription and WER/CER, overall, by group and by speaker.

Word and character edit counts come from SpeechBrain's ``ErrorRateStats``
(CER with ``split_tokens=True``, spaces counted as tokens, as SpeechBrain's
LibriSpeech recipes do). Rates are pooled (total edits / total reference
tokens), never averages of per-utterance rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, List

import torch
from speechbrain.decoders import ctc_greedy_decode
from speechbrain.utils.metric_stats import ErrorRateStats

from speechfl.data.tokenizer import CharTokenizer


@dataclass
class UttRecord:
    utt_id: str
    spk_id: str
    gender: str
    ref: str
    hyp: str
    word_errors: int
    n_words: int
    char_errors: int
    n_chars: int


@torch.no_grad()
def transcribe(model, loader, tokenizer: CharTokenizer, device="cpu") -> List[UttRecord]:
    """Decode every utterance of ``loader`` greedily and score it against its reference."""
    was_training = model.training
    model.eval()
    records: List[UttRecord] = []
    try:
        for batch in loader:
            out = model(batch.feats.data.to(device), batch.feats.lengths.to(device))
            seqs = ctc_greedy_decode(out.log_probs, out.lengths, blank_id=tokenizer.blank_id)
            hyps = [" ".join(tokenizer.decode(s).split()) for s in seqs]
            records.extend(score(batch.id, batch.spk_id, batch.gender, batch.wrd, hyps))
    finally:
        model.train(was_training)
    return records


def score(ids, spks, genders, refs, hyps) -> List[UttRecord]:
    wer_stats = ErrorRateStats()
    cer_stats = ErrorRateStats(split_tokens=True)
    refs_w = [r.split() for r in refs]
    hyps_w = [h.split() for h in hyps]
    wer_stats.append(list(ids), hyps_w, refs_w)
    cer_stats.append(list(ids), hyps_w, refs_w)
    out = []
    for i, uid in enumerate(ids):
        w, c = wer_stats.scores[i], cer_stats.scores[i]
        out.append(
            UttRecord(
                utt_id=uid,
                spk_id=spks[i],
                gender=genders[i],
                ref=refs[i],
                hyp=hyps[i],
                word_errors=int(w["num_edits"]),
                n_words=int(w["num_ref_tokens"]),
                char_errors=int(c["num_edits"]),
                n_chars=int(c["num_ref_tokens"]),
            )
        )
    return out


def pooled_rates(records: Iterable[UttRecord]) -> Dict[str, float]:
    records = list(records)
    if not records:
        raise ValueError("no utterances to score")
    nw = sum(r.n_words for r in records)
    nc = sum(r.n_chars for r in records)
    return {
        "wer": 100.0 * sum(r.word_errors for r in records) / max(nw, 1),
        "cer": 100.0 * sum(r.char_errors for r in records) / max(nc, 1),
        "n_utts": len(records),
    }


def rates_by(records: List[UttRecord], key: Callable[[UttRecord], str]) -> Dict[str, Dict[str, float]]:
    groups: Dict[str, List[UttRecord]] = {}
    for r in records:
        groups.setdefault(key(r), []).append(r)
    return {g: pooled_rates(rs) for g, rs in sorted(groups.items())}


def summarize(records: List[UttRecord]) -> Dict:
    """The ``test`` section of results.json: overall, by gender, by speaker (percent)."""
    out = pooled_rates(records)
    out["by_group"] = {"gender": rates_by(records, lambda r: r.gender)}
    out["by_speaker"] = rates_by(records, lambda r: r.spk_id)
    return out


def records_to_dicts(records: List[UttRecord]) -> List[Dict]:
    return [asdict(r) for r in records]


@torch.no_grad()
def mean_loss(model, loader, device="cpu") -> float:
    """Mean CTC loss over ``loader`` (utterance-weighted), in eval mode."""
    from speechfl.models.objective import ctc_objective

    was_training = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        for batch in loader:
            out = model(batch.feats.data.to(device), batch.feats.lengths.to(device))
            loss = ctc_objective(out, batch.tokens.data.to(device), batch.tokens.lengths.to(device))
            total += float(loss) * len(batch.id)
            n += len(batch.id)
    finally:
        model.train(was_training)
    return total / max(n, 1)
