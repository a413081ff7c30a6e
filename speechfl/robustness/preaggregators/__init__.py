"""Pre-aggregators; importing this package registers them all in ``PREAGGREGATORS``."""

from speechfl.robustness.preaggregators import arc, bucketing, clipping, nnm  # noqa: F401  (register)
from speechfl.robustness.preaggregators.base import PreAggregator

__all__ = ["PreAggregator"]
