"""Anonymization as a client-side defense in federated training (the ``anonymize:`` hparams key).

Every client anonymizes its own audio before features are computed: the anonymizer becomes the
per-utterance waveform hook of :class:`speechfl.data.dataset.DataTransforms` (its ``cache_tag``
is part of the feature-cache key, so anonymized and clean features never mix). The spec is a
name or ``{name: ..., **params}`` of :data:`speechfl.anonymization.anonymizers.ANONYMIZERS`;
its ``seed`` defaults to the run seed. Speakers for ``per: speaker`` draws come from the
client's manifest rows.

Composition with a data-level attack: the anonymizer is part of the client software, and a
malicious client controls its own last step, so its audio transform (e.g. a backdoor trigger)
is applied *after* anonymization: ``trigger(anonymize(wav))``. Text transforms are unchanged.
Evaluation data (valid/test) stays clean: the defense protects what leaves the clients.
"""

from __future__ import annotations

from typing import List, Mapping, Optional

from speechfl.anonymization.anonymizers import Anonymizer, WaveformTransform, build_anonymizer


def build_client_anonymizer(spec, seed: int) -> Optional[Anonymizer]:
    """The configured anonymizer (``None`` when ``spec`` is null); unknown names/params raise."""
    if spec is None or spec is False:
        return None
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    spec.setdefault("seed", int(seed))
    anonymizer = build_anonymizer(spec)
    if not anonymizer.preserves_duration:
        raise ValueError(f"anonymize: {anonymizer.name!r} changes duration; as a training-time defense the "
                         "transcript alignment is kept, but feature lengths change, so use a duration-preserving "
                         "anonymizer (mcadams, pitch_shift, vtln)")
    return anonymizer


class _Chain:
    """``second(first(wav))`` with both cache tags."""

    def __init__(self, first, second):
        self.first, self.second = first, second
        self.cache_tag = f"{first.cache_tag}+{second.cache_tag}"

    def __call__(self, wav):
        return self.second(self.first(wav))


def with_anonymizer(spec, transforms, *, rows: List[Mapping[str, str]], seed: int, sample_rate: int):
    """``transforms`` (or clean data when ``None``) with every utterance anonymized first."""
    from speechfl.data.dataset import DataTransforms

    anonymizer = build_client_anonymizer(spec, seed)
    if anonymizer is None:
        return transforms
    spk_of = {r["ID"]: r["spk_id"] for r in rows}
    base = transforms or DataTransforms()

    def audio(uid):
        anon = WaveformTransform(anonymizer, uid, spk_of[uid], sample_rate)
        attack = base.audio(uid) if base.audio is not None else None
        return anon if attack is None else _Chain(anon, attack)

    return DataTransforms(audio=audio, text=base.text)
