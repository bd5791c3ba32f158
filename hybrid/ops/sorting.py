"""Sorting, selection and counting: sort, argsort, msort, topk, kthvalue, unique, bincount, histc.

Eagerly the order (indices) is computed by numpy/CuPy and the values are picked from the input
with the `gather` composite, so gradients flow through them as in PyTorch. Inside
@hybrid.compile, sort/argsort/msort/topk/kthvalue are composed of primitives (hybrid/ops/
sort_traced.py: comparison counts, O(n^2) per row) and give the same order, and histc is a count
of bin comparisons; unique, bincount and nonzero (data-dependent shapes) raise a TraceError that
says to run them eagerly."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from compiler.ir.types import DType
from hybrid import errors
from hybrid.device import array_module
from hybrid.ops import indexing as ix
from hybrid.ops import shape as sh
from hybrid.ops.core import STATE, wrap
from hybrid.ops.reduce import normalize_dim

sort_result = namedtuple("sort", ["values", "indices"])
topk_result = namedtuple("topk", ["values", "indices"])
kthvalue_result = namedtuple("kthvalue", ["values", "indices"])


def eager_only(op: str, *xs: Any) -> list:
    """The arrays of tensors `xs`; a TraceError naming `op` while tracing (data-dependent)."""
    if STATE.tracer is not None:
        raise errors.TraceError(
            errors.at_user(
                f"{op} is computed eagerly (its result depends on the data: numpy/LAPACK) and "
                "cannot be compiled; call it outside the compiled function, or compile with "
                "@hybrid.compile(fallback='eager') to run the function eagerly"
            )
        )
    return [x._value for x in xs]


_xp = array_module


def _order(v: Any, axis: int, descending: bool) -> Any:
    """Stable argsort along `axis`; NaN sorts as the largest value (numpy's and PyTorch's)."""
    xp = _xp(v)
    if v.dtype == np.bool_:
        v = v.astype(np.int8)
    if not descending:
        return xp.argsort(v, axis=axis, kind="stable")
    # NOTE: descending and stable: sort the reversed array ascending, reverse the result and map
    # the indices back, so equal values keep their original order (what PyTorch's stable does).
    n = v.shape[axis]
    rev = xp.flip(v, axis=axis)
    return (n - 1) - xp.flip(xp.argsort(rev, axis=axis, kind="stable"), axis=axis)


def _index_tensor(arr: Any) -> Any:
    return wrap(arr.astype(np.int64, copy=False))


def _sorted(op: str, x: Any, dim: int, descending: bool) -> tuple[Any, Any]:
    """(values, indices) of x sorted along dim: numpy's order eagerly, primitives when traced."""
    d = normalize_dim(op, dim, x.ndim)
    if x.ndim == 0:
        from hybrid.ops.creation import zeros_like

        return x * 1, zeros_like(x, dtype=DType.int64)
    if STATE.tracer is not None:
        from hybrid.ops.sort_traced import sort_dim

        return sort_dim(x, d, descending)
    idx = _index_tensor(_order(x._value, d, descending))
    return ix.gather(x, d, idx), idx


def argsort(x: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """Indices that sort `x` along `dim` (always stable here, which PyTorch allows)."""
    return _sorted("argsort", x, dim, descending)[1]


def sort(x: Any, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
    """(values, indices) of `x` sorted along `dim`; values carry the gradient."""
    return sort_result(*_sorted("sort", x, dim, descending))


def msort(x: Any) -> Any:
    """`x` sorted along its first dim."""
    return sort(x, 0).values


def topk(x: Any, k: int, dim: int = -1, largest: bool = True,
         sorted: bool = True) -> Any:  # noqa: A002
    """The k largest (or smallest) entries along `dim` and their indices, in sorted order."""
    d = normalize_dim("topk", dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    if not isinstance(k, int) or not 0 <= k <= n:
        raise errors.HybridIndexError(
            errors.at_user(f"topk: k={k} is out of range for dim {dim} of size {n} (0 <= k <= {n})")
        )
    values, idx = _sorted("topk", x, dim, largest)
    if x.ndim == 0:
        return topk_result(values, idx)
    return topk_result(sh.narrow(values, d, 0, k), sh.narrow(idx, d, 0, k))


def kthvalue(x: Any, k: int, dim: int = -1, keepdim: bool = False) -> Any:
    """The k-th smallest entry (1-based) along `dim` and its index."""
    d = normalize_dim("kthvalue", dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    if not isinstance(k, int) or not 1 <= k <= n:
        raise errors.HybridIndexError(
            errors.at_user(f"kthvalue: k={k} is out of range for dim {dim} of size {n} "
                           f"(1 <= k <= {n})")
        )
    vals, idx = _sorted("kthvalue", x, dim, False)
    if x.ndim == 0:
        return kthvalue_result(vals, idx)
    vals, idx = sh.narrow(vals, d, k - 1, 1), sh.narrow(idx, d, k - 1, 1)
    if not keepdim:
        vals, idx = sh.squeeze(vals, d), sh.squeeze(idx, d)
    return kthvalue_result(vals, idx)


def unique(x: Any, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim: int | None = None) -> Any:
    """The distinct values of `x` (sorted), optionally with the inverse indices and counts;
    over the flattened tensor (dim=None) or of the slices along `dim`. Not differentiable."""
    (v,) = eager_only("unique", x)
    xp = _xp(v)
    if dim is None:
        vals, inv, counts = xp.unique(v.reshape(-1), return_inverse=True, return_counts=True)
        inv = inv.reshape(v.shape)
    else:
        d = normalize_dim("unique", dim, x.ndim)
        vals, inv, counts = xp.unique(v, return_inverse=True, return_counts=True, axis=d)
        inv = inv.reshape(-1)
    out = [wrap(vals.astype(v.dtype, copy=False))]
    if return_inverse:
        out.append(_index_tensor(inv))
    if return_counts:
        out.append(_index_tensor(counts))
    return out[0] if len(out) == 1 else tuple(out)


def bincount(x: Any, weights: Any = None, minlength: int = 0) -> Any:
    """Counts (or summed weights) of each non-negative integer in the 1-d tensor `x`."""
    vals = eager_only("bincount", x) + ([] if weights is None else eager_only("bincount", weights))
    v = vals[0]
    if x.ndim != 1 or not x.dtype.is_integer:
        raise errors.DTypeError(
            errors.at_user(f"bincount: expects a 1-d integer tensor, got {x.dtype.name}"
                           f"{list(x.shape)}")
        )
    if v.size and int(v.min()) < 0:
        raise errors.HybridIndexError(errors.at_user("bincount: input must be non-negative"))
    if minlength < 0:
        raise errors.ShapeError(
            errors.at_user(f"bincount: minlength must be >= 0, got {minlength}"))
    xp = _xp(v)
    if weights is None:
        return _index_tensor(xp.bincount(v, minlength=minlength))
    if tuple(weights.shape) != tuple(x.shape):
        raise errors.ShapeError(
            errors.at_user(f"bincount: weights of shape {list(weights.shape)} must be 1-d and as "
                           f"long as the input ({list(x.shape)})")
        )
    w = vals[1]
    dt = DType.float32 if weights.dtype is DType.float32 else DType.float64
    return wrap(xp.bincount(v, w.astype(np.float64), minlength=minlength).astype(dt.np))


def histc(x: Any, bins: int = 100, min: float = 0, max: float = 0) -> Any:  # noqa: A002
    """A histogram of `bins` equal bins over [min, max] (the data's range when both are 0);
    values outside are ignored. Not differentiable."""
    if STATE.tracer is not None:
        return _histc_traced(x, bins, min, max)
    (v,) = eager_only("histc", x)
    if not x.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"histc: expects a floating tensor, got {x.dtype.name}"))
    if bins <= 0:
        raise errors.ShapeError(errors.at_user(f"histc: bins must be > 0, got {bins}"))
    xp = _xp(v)
    lo, hi = float(min), float(max)
    if lo == hi and v.size:
        lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    if lo > hi:
        raise errors.ShapeError(errors.at_user(f"histc: max ({max}) must be >= min ({min})"))
    flat = v.reshape(-1).astype(np.float64)
    flat = flat[(flat >= lo) & (flat <= hi)]
    # NOTE: PyTorch's bin rule: floor((v - lo) * bins / (hi - lo)), the top edge in the last bin
    pos = xp.minimum(((flat - lo) * bins / (hi - lo)).astype(np.int64), bins - 1)
    return wrap(xp.bincount(pos, minlength=bins).astype(v.dtype))


def nonzero(x: Any, *, as_tuple: bool = False) -> Any:
    """Indices of the nonzero elements: an int64 [n, ndim] tensor, or one 1-d tensor per dim
    (as_tuple=True). Not differentiable; data-dependent, so eager only."""
    (v,) = eager_only("nonzero", x)
    if x.ndim == 0:
        found = _xp(v).nonzero(v.reshape(1))
        return (_index_tensor(found[0]),) if as_tuple else _index_tensor(
            _xp(v).zeros((int(found[0].size), 0), dtype=np.int64))
    found = _xp(v).nonzero(v)
    if as_tuple:
        return tuple(_index_tensor(i) for i in found)
    return _index_tensor(_xp(v).stack(found, axis=1))


def argwhere(x: Any) -> Any:
    """nonzero(x) as an [n, ndim] tensor."""
    return nonzero(x)


def masked_select(x: Any, mask: Any) -> Any:
    """The elements of x (broadcast with mask) where the bool mask is True, as a 1-d tensor."""
    if not mask.dtype.is_bool:
        raise errors.DTypeError(
            errors.at_user(f"masked_select: mask must be a bool tensor, got {mask.dtype.name}"))
    eager_only("masked_select", x, mask)
    xb, mb = sh.broadcast_tensors(x, mask)
    return xb[mb]


def _histc_traced(x: Any, bins: int, lo: float, hi: float) -> Any:
    """histc of primitives (the eager float64 bin rule; the data's range computed in the graph)."""
    from hybrid.ops import elementwise as ew
    from hybrid.ops import reduce as rd
    from hybrid.ops.creation import iota

    if not x.dtype.is_floating or bins <= 0 or float(lo) > float(hi):
        raise errors.ShapeError(
            errors.at_user(f"histc: needs a floating tensor, bins > 0 and min <= max (got "
                           f"{x.dtype.name}, bins={bins}, min={lo}, max={hi})"))
    f = ew.cast(sh.reshape(x, (-1,)), DType.float64)
    if float(lo) == float(hi) and f.shape[0]:
        lo_t, hi_t = rd.amin(f), rd.amax(f)
        same = lo_t == hi_t
        lo_t, hi_t = ew.where(same, lo_t - 1, lo_t), ew.where(same, hi_t + 1, hi_t)
    else:
        a, b = (float(lo) - 1, float(hi) + 1) if float(lo) == float(hi) else (lo, hi)
        lo_t, hi_t = ew.scalar(float(a), DType.float64, f), ew.scalar(float(b), DType.float64, f)
    inside = (f >= lo_t) & (f <= hi_t)
    pos = ew.minimum(ew.cast(ew.floor((f - lo_t) * bins / (hi_t - lo_t)), DType.int64), bins - 1)
    hit = sh.unsqueeze(pos, 1) == iota((f.shape[0], bins), 1, DType.int64, like=f)
    counts = rd.sum(ew.logical_and(hit, sh.unsqueeze(inside, 1)), 0)
    return ew.cast(counts, x.dtype)
