"""Malicious-client update attacks; importing this package registers them in ``ATTACKS``."""

from speechfl.robustness.attacks import adaptive, local, mimic, omniscient  # noqa: F401  (register)
from speechfl.robustness.attacks.base import UpdateAttack
from speechfl.decentralized import dissensus  # noqa: F401,E402  (registers 'dissensus', a gossip-only attack)

__all__ = ["UpdateAttack"]
