"""VoicePrivacy attack scenarios for a protected model compared with a baseline.

Following the VoicePrivacy Challenge (Tomashenko et al. 2020, 2022; the
"original"/"anonymized" data there are our baseline/protected
representations of the *same* utterances), for every attacker family:

* ``ignorant`` (O-A): the attacker does not know about the protection. It
  trains on **baseline** representations; identification tests on
  **protected** representations; verification trials pair a **baseline**
  enrolment utterance with a **protected** test utterance.
* ``lazy_informed`` (A-A): the attacker knows the protection and applies it
  to its enrolment data, but does not retrain: trained on **baseline**,
  identification and both sides of verification trials on **protected**.
* ``semi_informed``: the attacker retrains from scratch on **protected**
  representations of its training speakers and tests on **protected** (the
  main VoicePrivacy 2022 metric; usually the strongest).

All three use the same speaker split (same seed), so they differ only in
which view trains and which view is tested. ``ignorant`` and
``lazy_informed`` feed protected representations to a model trained on
baseline ones, so both sets need the same feature dimension.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence

from speechfl.attackers.reports import SpeakerAttackReport
from speechfl.attackers.speaker_id import DEFAULT_FAMILIES, speaker_attack_views
from speechfl.attackers.types import UtteranceSet, check_aligned

SCENARIOS = ("ignorant", "lazy_informed", "semi_informed")


def scenario_attacks(
    baseline: UtteranceSet,
    protected: UtteranceSet,
    *,
    families: Sequence[str] = DEFAULT_FAMILIES,
    family_params: Optional[Mapping[str, Mapping]] = None,
    seed: int = 0,
    progress: bool = True,
    drop_singletons: bool = False,
) -> Dict[str, SpeakerAttackReport]:
    """Speaker attacks under the three scenarios; returns ``{scenario: report}`` with all three keys."""
    baseline.validate()
    protected.validate()
    check_aligned(baseline, protected, "baseline vs protected representations")
    if baseline.dim != protected.dim:
        raise ValueError(
            f"baseline representations have dim {baseline.dim}, protected {protected.dim}: the ignorant and "
            "lazy-informed scenarios apply a baseline-trained attacker to protected representations, so the "
            "dims must match; use speaker_attacks(protected) for the semi-informed scenario alone"
        )
    kw = dict(families=families, family_params=family_params, seed=seed, progress=progress, drop_singletons=drop_singletons)
    return {
        "ignorant": speaker_attack_views(baseline, protected, baseline, **kw),
        "lazy_informed": speaker_attack_views(baseline, protected, protected, **kw),
        "semi_informed": speaker_attack_views(protected, protected, protected, **kw),
    }
