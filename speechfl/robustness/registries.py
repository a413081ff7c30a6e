"""The registries of the robustness package: aggregators, pre-aggregators, attacks.

Components register themselves by name when their module is imported
(``speechfl.robustness`` imports them all); build them with
:func:`speechfl.robustness.get_aggregator` and friends.
"""

from __future__ import annotations

from speechfl.registry import Registry

AGGREGATORS = Registry("aggregator")
PREAGGREGATORS = Registry("pre-aggregator")
ATTACKS = Registry("attack")
DATA_ATTACKS = Registry("data attack")
