"""Speaker anonymization: model-free anonymizers, the VoicePrivacy evaluation protocol, and its report.

* :mod:`~speechfl.anonymization.anonymizers`: the ``ANONYMIZERS`` registry (McAdams, pitch shift,
  VTLN warping, speed perturbation), seeded and deterministic;
* :mod:`~speechfl.anonymization.apply`: anonymize a corpus folder (``speechfl anonymize``);
* :mod:`~speechfl.anonymization.trials`: VPC enrollment/trial lists, read or generated;
* :mod:`~speechfl.anonymization.evaluate`: ASV attackers in the ignorant / lazy-informed /
  semi-informed scenarios, EER, linkability, utility (``speechfl evaluate-anonymization``).
"""
