"""Memory-bounded tensor kernels shared by the robust rules.

All kernels read an ``[n, d]`` update matrix without building another ``[n, d]``
(or larger) temporary:

* :func:`pairwise_sq_dists` - the ``[n, n]`` squared-distance matrix from one Gram
  matrix ``X X^T`` (``||a||^2 + ||b||^2 - 2 a.b``; one BLAS call, O(n^2) extra).
* :func:`row_sq_norms` / :func:`sq_dists_to_point` - ``||x_i||^2`` (float32
  partial norms summed in float64) and ``||x_i - z||^2`` computed directly on
  column blocks (exact however close ``z`` is to a row); rows that overflow
  float32 are recomputed in float64.
* :func:`sorted_column_reduce` - coordinate-wise order statistics (median, trimmed
  mean, MeaMed): the matrix is cut into column blocks of about ``CHUNK_ELEMS``
  values; each block is transposed to ``[c, n]`` and every row sorted. On CPU the
  sort is numpy's (vectorised quicksort/sorting networks on AVX-512/AVX2) and the
  blocks are spread over ``torch.get_num_threads()`` threads (numpy releases the
  GIL); on other devices ``torch.sort``. Extra memory: one block per thread.

Pairwise squared distances from the Gram matrix carry a float32 rounding error of
about ``1e-6 * (||a||^2 + ||b||^2)`` for the pair itself (a far-away Byzantine row
does not degrade the honest pairs): exact enough to rank neighbours (Krum, NNM),
not to resolve distances far below the rows' norms. Distances to a point
(geometric median, centered clipping, whose iterate may sit on a row) are exact.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional, Tuple

import numpy as np
import torch
from torch import Tensor

CHUNK_ELEMS = 1 << 18  # values per sorted block (1 MiB in float32)
NORM_RUN = 1 << 16  # columns per float32 partial norm

# kernel(xp, S) -> (value [c], lo [c], hi [c]); S is a column block sorted per
# coordinate ([c, n], ascending), xp numpy or torch.
SortedKernel = Callable[[object, object], Tuple[object, object, object]]


def pairwise_sq_dists(updates: Tensor) -> Tensor:
    """Squared Euclidean distances ``D[i, j] = ||x_i - x_j||^2`` as float64 ``[n, n]``.

    Computed from the Gram matrix ``G = X X^T`` (one matmul, no ``[n, n, d]`` or
    ``[n, d]`` temporary); clamped at 0 with an exact zero diagonal.
    """
    gram = (updates @ updates.T).to(torch.float64).cpu()
    gram = (gram + gram.T) / 2  # BLAS need not round G[i, j] and G[j, i] alike
    sq = gram.diagonal()
    dist = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_(min=0.0)
    dist.fill_diagonal_(0.0)
    return dist


def row_sq_norms(updates: Tensor) -> Tensor:
    """``||x_i||^2`` for every row, float64 ``[n]`` on CPU.

    Partial norms over runs of ``NORM_RUN`` columns are taken in float32 by one
    reduction over an ``[n, q, NORM_RUN]`` view (no copy), then squared and summed in
    float64: relative error ~5e-7 (one float32 reduction over d = 1e6 is ~1e-4),
    and two kernel launches in all (per-row BLAS calls stall when the CPU is
    shared). Rows whose float32 result overflows are recomputed in float64.
    """
    n, d = updates.shape
    q = d // NORM_RUN
    acc = torch.zeros(n, dtype=torch.float64)
    if q:
        parts = torch.linalg.vector_norm(updates[:, : q * NORM_RUN].reshape(n, q, NORM_RUN), dim=2)
        acc += parts.to(device="cpu", dtype=torch.float64).square().sum(1)
    if q * NORM_RUN < d:
        tail = torch.linalg.vector_norm(updates[:, q * NORM_RUN :], dim=1)
        acc += tail.to(device="cpu", dtype=torch.float64).square()
    for i in torch.nonzero(~torch.isfinite(acc)).flatten().tolist():
        acc[i] = float(updates[i].to(torch.float64).square().sum())
    return acc


def sq_dists_to_point(updates: Tensor, point: Optional[Tensor]) -> Tensor:
    """``||x_i - z||^2`` for all rows, float64 ``[n]`` on CPU, computed directly (no Gram cancellation).

    Per row and run of ``NORM_RUN`` columns: ``diff = x[i, run] - z[run]`` (a run-sized
    temporary), summed squares in float32 within a run and float64 across runs
    (relative error ~1e-7 however close ``z`` is to a row). On CPU the runs are
    spread over numpy threads. Rows whose float32 squares overflow are recomputed
    in float64.

    Parameters
    ----------
    updates : Tensor [n, d]
    point : Tensor [d] or None
        ``z``, same dtype and device as ``updates``; None for the origin.
    """
    if point is None:
        return row_sq_norms(updates)
    n, d = updates.shape
    if updates.device.type != "cpu":
        acc = torch.zeros(n, dtype=torch.float64, device=updates.device)
        for start, stop in column_blocks(n, d):
            diff = updates[:, start:stop] - point[start:stop]
            acc += (diff * diff).sum(1, dtype=torch.float64)
        sq = acc.cpu()
    else:
        x_np, z_np = updates.numpy(), point.numpy()
        blocks = [(a, min(a + NORM_RUN, d)) for a in range(0, d, NORM_RUN)]

        def work(start: int, stop: int) -> np.ndarray:
            # row by row: contiguous reads (a block of all n rows at once strides across pages)
            diff = scratch("diff", (stop - start,), x_np.dtype)
            part = np.empty(n)
            with np.errstate(over="ignore", invalid="ignore"):  # overflowing rows are redone below
                for i in range(n):
                    np.subtract(x_np[i, start:stop], z_np[start:stop], out=diff)
                    part[i] = np.einsum("i,i->", diff, diff)
            return part

        sq = torch.from_numpy(np.sum(map_column_blocks(blocks, work), axis=0, dtype=np.float64))
    for i in torch.nonzero(~torch.isfinite(sq)).flatten().tolist():
        sq[i] = float((updates[i].to(torch.float64) - point.to(torch.float64)).square().sum())
    return sq


def weighted_row_sum(updates: Tensor, coef: Tensor) -> Tensor:
    """``sum_i coef_i x_i`` as ``[d]`` in ``updates``' dtype (one matrix-vector product)."""
    return torch.mv(updates.T, coef.to(dtype=updates.dtype, device=updates.device))


def sorted_column_reduce(
    updates: Tensor, kernel: SortedKernel, backend: Optional[str] = None
) -> Tuple[Tensor, Tensor]:
    """Apply ``kernel`` to every column block sorted per coordinate.

    Parameters
    ----------
    updates : Tensor [n, d]
    kernel : callable
        ``kernel(xp, S) -> (value, lo, hi)``: ``S`` holds the block's coordinates
        as sorted rows ``[c, n]``, ``xp`` is ``numpy`` or ``torch``. ``value[c]`` is
        the block of the output; ``[lo, hi]`` the value range kept at each coordinate.
    backend : {"numpy", "torch"}, optional
        Default: numpy threads for CPU tensors, ``torch.sort`` otherwise.

    Returns
    -------
    out : Tensor [d]
        Concatenated ``value`` blocks, in ``updates``' dtype and device.
    kept : Tensor [n]
        float64 count, per row, of the coordinates where its value lay in ``[lo, hi]``.
    """
    n, d = updates.shape
    if backend is None:
        backend = "numpy" if updates.device.type == "cpu" else "torch"
    if backend not in ("numpy", "torch"):
        raise ValueError(f"sorted_column_reduce: backend must be 'numpy' or 'torch', got {backend!r}")
    if backend == "numpy" and updates.device.type != "cpu":
        raise ValueError("sorted_column_reduce: the numpy backend needs a CPU tensor")
    out = torch.empty(d, dtype=updates.dtype, device=updates.device)
    blocks = column_blocks(n, d)
    if backend == "torch":
        kept = torch.zeros(n, dtype=torch.float64, device=updates.device)
        for start, stop in blocks:
            blk = updates[:, start:stop]
            value, lo, hi = kernel(torch, torch.sort(blk.T, dim=1).values)
            out[start:stop] = value
            kept += ((blk >= lo) & (blk <= hi)).sum(1)
        return out, kept.cpu()

    x_np, out_np = updates.numpy(), out.numpy()

    def work(start: int, stop: int) -> np.ndarray:
        c = stop - start
        raw = scratch("raw", (c, n), x_np.dtype)  # one pass of strided reads; the rest is in cache
        np.copyto(raw, x_np[:, start:stop].T)
        s = scratch("sorted", (c, n), x_np.dtype)
        np.copyto(s, raw)
        s.sort(axis=1)
        value, lo, hi = kernel(np, s)
        out_np[start:stop] = value
        keep, upper = scratch("keep", (c, n), np.bool_), scratch("upper", (c, n), np.bool_)
        np.greater_equal(raw, lo[:, None], out=keep)
        np.less_equal(raw, hi[:, None], out=upper)
        np.logical_and(keep, upper, out=keep)
        return keep.view(np.uint8).sum(0, dtype=np.uint16 if c < 65536 else np.int64)

    counts = map_column_blocks(blocks, work)
    return out, torch.from_numpy(np.sum(counts, axis=0, dtype=np.float64))


_LOCAL = threading.local()


def scratch(name: str, shape: Tuple[int, ...], dtype) -> np.ndarray:
    """A reusable per-thread numpy buffer for block temporaries.

    Reusing buffers avoids a fresh allocation (and its page faults) per block; a
    thread's buffers die with it (the block pools are per call).
    """
    bufs = _LOCAL.__dict__.setdefault("bufs", {})
    key = (name, shape, np.dtype(dtype))
    if key not in bufs:
        if len(bufs) >= 16:
            bufs.clear()
        bufs[key] = np.empty(shape, dtype)
    return bufs[key]


def map_column_blocks(blocks: list, work: Callable[[int, int], object]) -> list:
    """``[work(start, stop) for each block]`` on ``torch.get_num_threads()`` threads, in order.

    For numpy work (which releases the GIL): one thread per core and no per-block
    parallel-kernel barrier, which matters when other processes share the CPU.
    The work must not call BLAS (numpy's threaded BLAS inside these threads
    oversubscribes the cores); use ``einsum``, which does not.
    """
    workers = max(1, min(torch.get_num_threads(), len(blocks)))
    if workers == 1:
        return [work(a, b) for a, b in blocks]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda blk: work(*blk), blocks))


def column_blocks(n: int, d: int, elems: Optional[int] = None) -> list:
    """``(start, stop)`` column ranges holding about ``elems`` (default ``CHUNK_ELEMS``) values each."""
    cols = max(1, (CHUNK_ELEMS if elems is None else elems) // max(n, 1))
    return [(s, min(s + cols, d)) for s in range(0, d, cols)]


def take_rows(xp, values, index):
    """``values[r, index[r, j]]`` for numpy or torch (``take_along_axis``)."""
    if xp is np:
        return np.take_along_axis(values, index, axis=1)
    return torch.take_along_dim(values, index, dim=1)


def indicator(xp, n: int, start: int, stop: int, like):
    """Vector ``[n]`` of ``like``'s dtype: 1 on ``[start, stop)``, 0 elsewhere (numpy or torch)."""
    if xp is np:
        w = np.zeros(n, like.dtype)
    else:
        w = torch.zeros(n, dtype=like.dtype, device=like.device)
    w[start:stop] = 1
    return w
