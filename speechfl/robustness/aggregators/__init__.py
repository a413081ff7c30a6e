"""Robust aggregators; importing this package registers them all in ``AGGREGATORS``."""

from speechfl.robustness.aggregators import (  # noqa: F401  (imported to register)
    centered_clipping,
    geomed,
    krum,
    mean,
    meamed,
    median,
    signvote,
    trimmed_mean,
)
from speechfl.robustness.aggregators.base import Aggregator

__all__ = ["Aggregator"]
