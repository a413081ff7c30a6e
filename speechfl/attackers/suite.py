"""The evaluation suite behind ``speechfl evaluate``: privacy and fairness sections of results.json.

:func:`run_privacy_suite` runs every attack whose inputs are given, always
attacks raw Fbank features too (the no-protection reference) when given, and
names the strongest attacker per threat. :func:`fairness_section` breaks
error rates, attacker success and robustness exclusions down by speaker
attribute. Both return fixed-shape, JSON-ready structures: a section whose
inputs are missing is ``None`` with the reason in ``notes``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import torch

from speechfl.attackers.gender import gender_attack, update_gender_attack
from speechfl.attackers.linkage import update_linkage_attack
from speechfl.attackers.membership import membership_inference
from speechfl.attackers.reports import GenderAttackReport, LinkageReport, MembershipReport, SourceInferenceReport, SpeakerAttackReport
from speechfl.attackers.scenarios import scenario_attacks
from speechfl.attackers.source_inference import source_inference
from speechfl.attackers.speaker_id import DEFAULT_FAMILIES, speaker_attacks
from speechfl.attackers.types import AttackPrecondition, UtteranceSet
from speechfl.metrics.fairness import UttResult, group_breakdown, group_fairness, individual_fairness

THREATS = (
    "speaker_identification", "speaker_verification", "gender_inference",
    "update_linkage", "update_gender", "source_inference", "membership",
)


@dataclass
class ThreatSummary:
    """The strongest attacker against one threat: ``value`` of ``metric`` (``chance`` for reference)."""

    attacker: str
    metric: str
    value: float
    chance: Optional[float]


@dataclass
class PrivacySuiteReport:
    speaker: Optional[SpeakerAttackReport]
    scenarios: Optional[Dict[str, SpeakerAttackReport]]
    gender: Optional[GenderAttackReport]
    fbank_speaker: Optional[SpeakerAttackReport]
    fbank_gender: Optional[GenderAttackReport]
    update_linkage: Optional[LinkageReport]
    update_gender: Optional[GenderAttackReport]
    source_inference: Optional[SourceInferenceReport]
    membership: Optional[MembershipReport]
    strongest: Dict[str, Optional[ThreatSummary]]
    notes: Dict[str, str] = field(default_factory=dict)
    seconds: Dict[str, float] = field(default_factory=dict)  # wall time of each attack that ran

    def to_dict(self) -> dict:
        out = {}
        for k, v in self.__dict__.items():
            if v is None or isinstance(v, (str, int, float)):
                out[k] = v
            elif k == "scenarios":
                out[k] = {s: r.to_dict() for s, r in v.items()}
            elif k == "strongest":
                out[k] = {t: (None if s is None else asdict(s)) for t, s in v.items()}
            elif k in ("notes", "seconds"):
                out[k] = dict(v)
            else:
                out[k] = v.to_dict()
        return out


def _speaker_reports(rep: Optional[SpeakerAttackReport], scen: Optional[Dict[str, SpeakerAttackReport]]):
    pool = {} if rep is None else {"": rep}
    for s, r in (scen or {}).items():
        pool[f"{s}/"] = r
    return pool


def _strongest(r: PrivacySuiteReport) -> Dict[str, Optional[ThreatSummary]]:
    out: Dict[str, Optional[ThreatSummary]] = {t: None for t in THREATS}
    pool = _speaker_reports(r.speaker, r.scenarios)
    if pool:
        rows = [(p + f, fr) for p, rep in pool.items() for f, fr in rep.families.items()]
        name, fr = max(rows, key=lambda x: x[1].top1)
        out["speaker_identification"] = ThreatSummary(name, "top1", fr.top1, fr.chance)
        name, fr = min(rows, key=lambda x: x[1].eer)
        out["speaker_verification"] = ThreatSummary(name, "eer", fr.eer, 0.5)
    if r.gender is not None:
        out["gender_inference"] = ThreatSummary(r.gender.strongest, "auc", r.gender.auc, 0.5)
    if r.update_linkage is not None:
        out["update_linkage"] = ThreatSummary(r.update_linkage.strongest, "accuracy", r.update_linkage.accuracy, r.update_linkage.chance)
    if r.update_gender is not None:
        out["update_gender"] = ThreatSummary(r.update_gender.strongest, "auc", r.update_gender.auc, 0.5)
    if r.source_inference is not None:
        s = r.source_inference
        out["source_inference"] = ThreatSummary("lowest_loss", "accuracy", s.accuracy, s.chance)
    if r.membership is not None:
        out["membership"] = ThreatSummary(r.membership.strongest, "auc", r.membership.best_auc, 0.5)
    return out


def run_privacy_suite(
    *,
    representations: Optional[UtteranceSet] = None,
    fbank: Optional[UtteranceSet] = None,
    baseline_representations: Optional[UtteranceSet] = None,
    linkage_enroll: Optional[Dict[str, torch.Tensor]] = None,
    linkage_probe: Optional[Dict[str, torch.Tensor]] = None,
    client_updates: Optional[Dict[str, torch.Tensor]] = None,
    client_genders: Optional[Dict[str, str]] = None,
    source_losses: Optional[torch.Tensor] = None,
    source_owner: Optional[torch.Tensor] = None,
    source_client_ids: Optional[Sequence[str]] = None,
    membership: Optional[Mapping] = None,
    families: Sequence[str] = DEFAULT_FAMILIES,
    family_params: Optional[Mapping[str, Mapping]] = None,
    seed: int = 0,
    progress: bool = True,
) -> PrivacySuiteReport:
    """Run every attack whose inputs are given.

    ``representations``: the evaluated model's encoder outputs (speaker and
    gender attacks); ``fbank``: raw features of the same or other utterances
    (reference); ``baseline_representations``: an unprotected model's outputs
    of the same utterances (adds the VoicePrivacy scenarios);
    ``linkage_enroll``/``linkage_probe``: updates of an earlier and a later
    round; ``client_updates`` + ``client_genders``: updates for gender
    inference; ``source_losses`` ``[n_utts, n_clients]`` + ``source_owner``;
    ``membership``: keyword arguments of :func:`membership_inference`.

    An attack the data cannot support (one gender, too few speakers or
    clients: :class:`speechfl.attackers.types.AttackPrecondition`) is skipped:
    its report is ``None`` and ``notes[name]`` starts with "skipped:". The
    other attacks still run.
    """
    notes: Dict[str, str] = {}
    seconds: Dict[str, float] = {}
    # a speaker with a single utterance cannot be split: it is left out and listed in the report, not fatal
    kw = dict(families=families, family_params=family_params, seed=seed, progress=progress, drop_singletons=True)

    def timed(name: str, fn, *args, **kwargs):
        """Run one attack; one the data cannot support is skipped with its reason (any other error is a bug)."""
        t0 = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
        except AttackPrecondition as exc:
            notes[name] = f"skipped: {exc}"
            return None
        seconds[name] = time.perf_counter() - t0
        return out

    def need(name: str, ok: bool, why: str) -> bool:
        if not ok:
            notes[name] = why
        return ok

    speaker = gender = fb_speaker = fb_gender = None
    if need("speaker", representations is not None, "no representations given"):
        speaker = timed("speaker", speaker_attacks, representations, **kw)
        gender = timed("gender", gender_attack, representations, seed=seed)
    else:
        notes["gender"] = "no representations given"
    scen = None
    if need("scenarios", representations is not None and baseline_representations is not None,
            "needs both baseline_representations and representations"):
        scen = timed("scenarios", scenario_attacks, baseline_representations, representations, **kw)
    if need("fbank_speaker", fbank is not None, "no Fbank features given"):
        fb_speaker = timed("fbank_speaker", speaker_attacks, fbank, **kw)
        fb_gender = timed("fbank_gender", gender_attack, fbank, seed=seed)
    else:
        notes["fbank_gender"] = "no Fbank features given"
    link = ug = src = mia = None
    if need("update_linkage", linkage_enroll is not None and linkage_probe is not None,
            "needs recorded client updates of two rounds (linkage_enroll, linkage_probe)"):
        link = timed("update_linkage", update_linkage_attack, linkage_enroll, linkage_probe, seed=seed)
    if need("update_gender", client_updates is not None and client_genders is not None,
            "needs recorded client updates and client genders"):
        ug = timed("update_gender", update_gender_attack, client_updates, client_genders, seed=seed)
    if need("source_inference", source_losses is not None and source_owner is not None,
            "needs per-client local-model losses of known training utterances"):
        src = timed("source_inference", source_inference, source_losses, source_owner, client_ids=source_client_ids)
    if need("membership", membership is not None, "needs member / non-member losses"):
        mia = timed("membership", membership_inference, **dict(membership))
    report = PrivacySuiteReport(speaker, scen, gender, fb_speaker, fb_gender, link, ug, src, mia, strongest={}, notes=notes,
                                seconds=seconds)
    report.strongest = _strongest(report)
    return report


def fairness_section(
    results: List[UttResult],
    *,
    attributes: Optional[Sequence[str]] = None,
    privacy: Optional[PrivacySuiteReport] = None,
    exclusions: Optional[Dict[str, float]] = None,
    exclusion_groups: Optional[Dict[str, str]] = None,
) -> dict:
    """Group and individual fairness of WER/CER, plus privacy and robustness breakdowns by attribute.

    ``attributes`` default to every attribute carried by all results (an
    attribute on only some results is listed in ``notes`` and skipped).
    Privacy: per-speaker top-1 of the strongest identification family on the
    model's representations, averaged per attribute value over speakers in
    both sets. Robustness: ``exclusions`` (client/speaker -> exclusion rate)
    grouped by ``exclusion_groups``.
    """
    if not results:
        raise ValueError("fairness_section needs utterance results")
    notes: Dict[str, str] = {}
    everywhere = set.intersection(*(set(r.attrs) for r in results))
    somewhere = set.union(*(set(r.attrs) for r in results))
    for a in sorted(somewhere - everywhere):
        notes[f"attribute/{a}"] = "present for only some utterances; skipped"
    attrs = sorted(everywhere) if attributes is None else list(attributes)
    out = {
        "groups": {a: group_fairness(results, a).to_dict() for a in attrs},
        "individual": individual_fairness(results).to_dict(),
        "privacy": None,
        "robustness": None,
        "notes": notes,
    }
    if privacy is not None and privacy.speaker is not None:
        rep = privacy.speaker
        fam = rep.families[rep.strongest_id]
        spk_attr = {a: {r.spk_id: r.attrs[a] for r in results} for a in attrs}
        by_attr = {}
        for a in attrs:
            vals = {s: v for s, v in fam.per_speaker_top1.items() if s in spk_attr[a]}
            if vals:
                by_attr[a] = group_breakdown(vals, spk_attr[a])
            else:
                notes[f"privacy/{a}"] = "no attacked speaker appears in the results"
        out["privacy"] = {
            "family": rep.strongest_id,
            "per_gender": {g: s.to_dict() for g, s in fam.per_gender.items()},
            "speaker_top1_by_attribute": by_attr,
        }
    else:
        notes["privacy"] = "no speaker attack report given"
    if exclusions is not None:
        if exclusion_groups is None:
            raise ValueError("exclusions given without exclusion_groups (client/speaker -> group)")
        out["robustness"] = {"exclusion_rate": group_breakdown(exclusions, exclusion_groups)}
    else:
        notes["robustness"] = "no robustness exclusions recorded"
    return out
