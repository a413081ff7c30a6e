"""Pre-aggregators then an aggregator, as one callable with merged state and contributions."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from torch import Tensor

from speechfl.registry import build_from_spec
from speechfl.robustness.aggregators.base import Aggregator, normalize_contributions
from speechfl.robustness.preaggregators.base import PreAggregator
from speechfl.robustness.registries import AGGREGATORS, PREAGGREGATORS
from speechfl.robustness.validation import check_updates, check_weights


class RobustPipeline:
    """``aggregator(pre_k(...pre_1(updates)))``.

    ``last_weights`` maps the aggregator's contributions back to the ``n`` inputs
    through the pre-aggregators' mixing matrices (``w_in = w_out @ M_k ... M_1``,
    normalized): a bucket's weight is shared by its members in proportion to their
    share of the bucket; a clipped row's weight is scaled by its clipping factor.
    Sample-count ``weights`` are carried through each pre-aggregator's
    ``map_weights`` (buckets sum their members' counts) and reach the aggregator,
    which uses them only if it is a weighted rule.
    """

    def __init__(self, aggregator: Aggregator, preaggregators: Sequence[PreAggregator] = ()) -> None:
        if not isinstance(aggregator, Aggregator):
            raise TypeError(f"aggregator must be an Aggregator, got {type(aggregator).__name__}")
        for p in preaggregators:
            if not isinstance(p, PreAggregator):
                raise TypeError(f"pre-aggregators must be PreAggregator objects, got {type(p).__name__}")
        self.aggregator = aggregator
        self.preaggregators = list(preaggregators)
        self.last_weights: Optional[Tensor] = None

    @property
    def name(self) -> str:
        return "+".join([p.name for p in self.preaggregators] + [self.aggregator.name])

    @property
    def requires_individual_updates(self) -> bool:
        return bool(self.preaggregators) or self.aggregator.requires_individual_updates

    @property
    def stateful(self) -> bool:
        """True when the aggregator keeps a ``[d]`` state (centered clipping's center)."""
        return bool(getattr(self.aggregator, "stateful", False))

    def min_rows(self) -> int:
        """Fewest updates the whole pipeline accepts (bucketing multiplies the aggregator's need)."""
        need = self.aggregator.min_rows()
        for pre in reversed(self.preaggregators):
            need = max(pre.min_rows(), pre.min_inputs(need))
        return need

    def __call__(self, updates: Tensor, weights: Optional[Tensor] = None) -> Tensor:
        check_updates(updates, self.name, min_rows=self.min_rows())
        w = check_weights(weights, updates.shape[0], self.name)
        x, mixing = updates, None
        for pre in self.preaggregators:
            x = pre(x)
            if w is not None:
                w = pre.map_weights(w)
            mixing = pre.last_mixing if mixing is None else pre.last_mixing @ mixing
        out = self.aggregator(x, w)
        contrib = self.aggregator.last_weights
        if mixing is not None:
            contrib = contrib @ mixing
        self.last_weights = normalize_contributions(contrib)
        return out

    def state_dict(self) -> dict:
        return {
            "aggregator": self.aggregator.state_dict(),
            "preaggregators": [p.state_dict() for p in self.preaggregators],
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"aggregator", "preaggregators"}:
            raise ValueError(f"pipeline state must have keys 'aggregator' and 'preaggregators', got {sorted(state)}")
        pre_states = state["preaggregators"]
        if len(pre_states) != len(self.preaggregators):
            raise ValueError(
                f"pipeline state holds {len(pre_states)} pre-aggregator states, pipeline has {len(self.preaggregators)}"
            )
        self.aggregator.load_state_dict(state["aggregator"])
        for pre, s in zip(self.preaggregators, pre_states):
            pre.load_state_dict(s)

    def __repr__(self) -> str:
        return f"RobustPipeline({self.name})"


def build_robust_pipeline(aggregator_spec: Any, preaggregator_specs: Optional[Sequence[Any]] = None) -> RobustPipeline:
    """Build from hparams specs (a name, ``{name: ..., **params}``, or a built object).

    Examples
    --------
    >>> build_robust_pipeline({"name": "krum", "f": 2}, ["arc", {"name": "nnm", "f": 2}])  # doctest: +SKIP
    """
    if aggregator_spec is None:
        raise ValueError("build_robust_pipeline: an aggregator spec is required (e.g. 'mean')")
    agg = aggregator_spec if isinstance(aggregator_spec, Aggregator) else build_from_spec(AGGREGATORS, aggregator_spec)
    if preaggregator_specs is None:
        preaggregator_specs = []
    if isinstance(preaggregator_specs, (str, dict)):
        raise TypeError("preaggregator_specs must be a list of specs, not a single spec")
    pres = [p if isinstance(p, PreAggregator) else build_from_spec(PREAGGREGATORS, p) for p in preaggregator_specs]
    return RobustPipeline(agg, pres)
