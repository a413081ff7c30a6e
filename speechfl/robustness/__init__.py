"""Byzantine robustness: robust aggregators, pre-aggregators, malicious-client attacks.

Everything works on ``[n, d]`` float tensors of flat client updates and knows
nothing of speech or of the engine. Components are chosen by name::

    agg = get_aggregator("trimmed_mean", f=2)            # agg(updates [n, d], weights=None) -> [d]
    pipe = build_robust_pipeline({"name": "krum", "f": 2}, ["arc", {"name": "nnm", "f": 2}])
    attack = get_attack("alie")                          # attack(honest, byzantine_own, generator)
    bad = select_malicious(client_ids, fraction=0.2, seed=0)

Unknown names or parameters raise :class:`speechfl.registry.RegistryError` listing
the valid ones.
"""

from speechfl.robustness.registries import AGGREGATORS, ATTACKS, DATA_ATTACKS, PREAGGREGATORS
from speechfl.robustness import aggregators, attacks, preaggregators  # noqa: F401  (register components)
from speechfl.robustness import data_poisoners  # noqa: F401  (registers data attacks)
from speechfl.robustness.aggregators.base import Aggregator
from speechfl.robustness.attacks.base import UpdateAttack
from speechfl.robustness.data_attacks import (
    add_trigger,
    char_permutation,
    flip_transcript,
    make_trigger,
    shuffle_transcripts,
)
from speechfl.robustness.pipeline import RobustPipeline, build_robust_pipeline
from speechfl.robustness.preaggregators.base import PreAggregator
from speechfl.robustness.selection import select_malicious
from speechfl.robustness.shared_support import aggregate_on_support


def get_aggregator(name: str, **params) -> Aggregator:
    """Build the aggregator registered as ``name`` (see ``AGGREGATORS.names()``)."""
    return AGGREGATORS.build(name, **params)


def get_preaggregator(name: str, **params) -> PreAggregator:
    """Build the pre-aggregator registered as ``name`` (see ``PREAGGREGATORS.names()``)."""
    return PREAGGREGATORS.build(name, **params)


def get_attack(name: str, **params) -> UpdateAttack:
    """Build the update attack registered as ``name`` (see ``ATTACKS.names()``)."""
    return ATTACKS.build(name, **params)


def get_data_attack(name: str, **params):
    """Build the data poisoner registered as ``name``: ``transcript_flip`` or ``audio_backdoor``."""
    return DATA_ATTACKS.build(name, **params)


__all__ = [
    "AGGREGATORS",
    "ATTACKS",
    "DATA_ATTACKS",
    "PREAGGREGATORS",
    "Aggregator",
    "PreAggregator",
    "RobustPipeline",
    "UpdateAttack",
    "add_trigger",
    "aggregate_on_support",
    "build_robust_pipeline",
    "char_permutation",
    "flip_transcript",
    "get_aggregator",
    "get_attack",
    "get_data_attack",
    "get_preaggregator",
    "make_trigger",
    "select_malicious",
    "shuffle_transcripts",
]
