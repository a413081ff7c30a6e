"""Robust aggregation of sparse updates that share one support (random-k with a shared mask)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from speechfl.robustness.validation import check_updates


def aggregate_on_support(
    values: Tensor, support: Tensor, dim: int, pipeline: Callable, weights: Optional[Tensor] = None
) -> Tensor:
    """Aggregate ``[n, k]`` values on shared coordinates, then scatter into ``zeros[dim]``.

    When every client's update is zero outside the same support ``S`` (random-k with
    a shared per-round mask), coordinate-wise rules (median, trimmed mean, MeaMed,
    sign vote) and distance-based rules (Krum, NNM, geometric median, clipping)
    give on ``S`` exactly what they give on the decoded ``[n, dim]`` matrix, and 0
    elsewhere; aggregating the ``[n, k]`` values costs O(n k) memory instead of
    O(n d). A rule with a ``[d]`` state (centered clipping's center is non-zero off
    ``S``) would differ, so it is refused.

    Parameters
    ----------
    values : Tensor [n, k]
        The clients' values at ``support``.
    support : LongTensor [k]
        Distinct coordinates in ``[0, dim)``, shared by all rows.
    dim : int
        Length ``d`` of the full vector.
    pipeline : callable
        An aggregator or :class:`RobustPipeline`: ``pipeline(values, weights) -> [k]``.
    weights : Tensor [n], optional
        Sample counts, passed through.

    Returns
    -------
    Tensor [dim]
    """
    check_updates(values, "aggregate_on_support")
    if getattr(pipeline, "stateful", False):
        raise ValueError(
            f"aggregate_on_support: {getattr(pipeline, 'name', pipeline)!r} keeps a [d] state; "
            "decode the updates to dense vectors and aggregate those instead"
        )
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise ValueError(f"aggregate_on_support: dim must be a positive int, got {dim!r}")
    if not isinstance(support, Tensor) or support.dim() != 1 or support.dtype != torch.int64:
        raise TypeError("aggregate_on_support: support must be a 1-D int64 tensor")
    k = values.shape[1]
    if support.numel() != k:
        raise ValueError(f"aggregate_on_support: support has {support.numel()} indices, values have {k} columns")
    if k > dim or (k and (int(support.min()) < 0 or int(support.max()) >= dim)):
        raise ValueError(f"aggregate_on_support: support indices must lie in [0, {dim})")
    if torch.unique(support).numel() != k:
        raise ValueError("aggregate_on_support: support indices must be distinct")
    agg = pipeline(values, weights)
    out = torch.zeros(dim, dtype=values.dtype, device=values.device)
    out[support.to(values.device)] = agg
    return out
