"""Sorting inside @hybrid.compile, composed of primitives: each element's rank along the dim is a
count of comparisons (O(n^2) per row, fused by the compiler), and the sorted values and indices
are picked with a one-hot of the ranks. Same order as the eager numpy path: stable, NaN largest,
ties in index order (also when descending)."""

from __future__ import annotations

from typing import Any

from compiler.ir.types import DType
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.creation import iota


def _ranks(x: Any, descending: bool) -> Any:
    """rank[..., i] = the position of x[..., i] in the stable sort along the last dim."""
    n = x.shape[-1]
    a = sh.unsqueeze(x, -1)  # element i, along dim -2
    b = sh.unsqueeze(x, -2)  # element j, along dim -1
    if x.dtype.is_floating:
        nan_a, nan_b = ew.isnan(a), ew.isnan(b)
        if descending:
            first = (b > a) | (nan_b & ew.logical_not(nan_a))
        else:
            first = (b < a) | (nan_a & ew.logical_not(nan_b))
        same = (b == a) | (nan_a & nan_b)
    else:
        first = (b > a) if descending else (b < a)
        same = b == a
    shape = tuple(x.shape) + (n,)
    j_before_i = iota(shape, x.ndim, DType.int64, like=x) < iota(shape, x.ndim - 1, DType.int64,
                                                                     like=x)
    return rd.sum(first | (same & j_before_i), -1)


def sort_last(x: Any, descending: bool) -> tuple[Any, Any]:
    """(values, indices) of x sorted along its last dim."""
    if x.dtype.is_bool:
        v, i = sort_last(ew.cast(x, DType.int32), descending)
        return ew.cast(v, DType.bool), i
    n = x.shape[-1]
    rank = sh.unsqueeze(_ranks(x, descending), -2)  # [..., 1, n_i]
    shape = tuple(x.shape[:-1]) + (n, n)
    hit = rank == iota(shape, x.ndim - 1, DType.int64, like=x)  # [..., k, i]: rank_i == k
    pos = iota(shape, x.ndim, DType.int64, like=x)
    indices = rd.sum(ew.where(hit, pos, 0), -1)
    zero = ew.scalar(0, x.dtype, x)
    values = rd.sum(ew.where(hit, sh.unsqueeze(x, -2), zero), -1, dtype=x.dtype)
    return values, indices


def sort_dim(x: Any, d: int, descending: bool) -> tuple[Any, Any]:
    """(values, indices) of x sorted along dim d (normalized)."""
    last = x.ndim - 1
    if d != last:
        x = sh.transpose(x, d, last)
    values, indices = sort_last(x, descending)
    if d != last:
        values, indices = sh.transpose(values, d, last), sh.transpose(indices, d, last)
    return values, indices
