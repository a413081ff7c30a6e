"""Engine adapter for data-level attacks: a malicious client's poisoned data pipeline, and backdoor success.

The poisoners (:mod:`speechfl.robustness.data_poisoners`) choose utterances by a hash
of ``(seed, utt_id)``; here they become the per-utterance audio and text transforms of
:class:`speechfl.data.dataset.DataTransforms`, so the malicious client runs the real
feature pipeline and local training on poisoned examples.
"""

from __future__ import annotations

from typing import Dict, List

from speechfl.data.dataset import DataTransforms
from speechfl.data.tokenizer import CharTokenizer
from speechfl.robustness.data_poisoners import AudioBackdoor, TranscriptFlip, utterance_draw


class _Trigger:
    """Waveform transform adding a backdoor trigger (cache-keyed by the trigger's settings)."""

    def __init__(self, backdoor: AudioBackdoor):
        self.backdoor = backdoor
        self.cache_tag = (f"backdoor:{backdoor.seed}:{backdoor.snr_db}:{backdoor.position}:"
                          f"{backdoor.trigger.numel()}")

    def __call__(self, wav):
        return self.backdoor.apply_trigger(wav)


def build_poisoner(spec: Dict, seed: int):
    """The configured poisoner; its seed defaults to the run seed."""
    from speechfl.robustness import get_data_attack

    spec = dict(spec)
    name = spec.pop("name")
    spec.setdefault("seed", seed)
    if name == "audio_backdoor" and "target_text" in spec:
        spec["target_text"] = CharTokenizer.normalize(spec["target_text"])
        CharTokenizer().encode(spec["target_text"])  # a target the model cannot emit is a config error
    return get_data_attack(name, **spec)


def build_data_transforms(spec: Dict, *, client_id: str, seed: int, rows: List[dict]) -> DataTransforms:
    """Per-utterance transforms of one malicious client's training data."""
    poisoner = build_poisoner(spec, seed)

    def drawn(uid: str) -> bool:
        return utterance_draw(poisoner.seed, uid) < poisoner.fraction

    if isinstance(poisoner, TranscriptFlip):
        return DataTransforms(text=lambda uid, text: poisoner(None, text, uid)[1])
    if isinstance(poisoner, AudioBackdoor):
        trigger = _Trigger(poisoner)
        return DataTransforms(audio=lambda uid: trigger if drawn(uid) else None,
                              text=lambda uid, text: poisoner.target_text if drawn(uid) else text)
    raise ValueError(f"no data pipeline adapter for data attack {type(poisoner).__name__}")


def backdoor_success(setup) -> Dict[str, float]:
    """Share of triggered test utterances transcribed exactly as the target, and their mean CER to it.

    Test utterances whose own transcript is the target are left out.
    """
    from speechfl.metrics.asr import pooled_rates, score, transcribe

    poisoner = build_poisoner(setup.data_attack, setup.seed)
    if not isinstance(poisoner, AudioBackdoor):
        raise ValueError("backdoor_success needs an audio_backdoor data attack")
    trigger = _Trigger(poisoner)
    loader = setup.eval_loader("test", DataTransforms(audio=lambda uid: trigger))
    records = [r for r in transcribe(setup.model, loader, setup.corpus.tokenizer, setup.device)
               if r.ref != poisoner.target_text]
    if not records:
        raise ValueError("no test utterance left to trigger")
    hits = sum(r.hyp == poisoner.target_text for r in records)
    to_target = score([r.utt_id for r in records], [r.spk_id for r in records], [r.gender for r in records],
                      [poisoner.target_text] * len(records), [r.hyp for r in records])
    return {"success_rate": hits / len(records), "cer_to_target": pooled_rates(to_target)["cer"],
            "n_triggered": len(records), "target_text": poisoner.target_text}
