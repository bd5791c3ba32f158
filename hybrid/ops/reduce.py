"""Reductions with PyTorch's dim/keepdim semantics, composed of sum/prod/max primitives."""

from __future__ import annotations

import builtins
import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

from compiler.ir.ops import OPS, Op
from compiler.ir.types import DType
from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops.core import apply

minmax = namedtuple("minmax", ["values", "indices"])


def normalize_dim(op: str, dim: int, ndim: int) -> int:
    """A dim in [-ndim, ndim) as a non-negative axis (0-d tensors accept 0 and -1)."""
    n = builtins.max(ndim, 1)
    if not isinstance(dim, int) or not -n <= dim < n:
        raise errors.HybridIndexError(
            errors.at_user(
                f"{op}: dim {dim} is out of range for a {ndim}-d tensor "
                f"(expected a dim in [{-n}, {n - 1}])"
            )
        )
    return dim % n


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """Sorted, unique, non-negative axes; None (or ()) means all of them."""
    if dim is None or (isinstance(dim, Sequence) and len(dim) == 0):
        return tuple(range(ndim))
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    axes = sorted({normalize_dim(op, d, ndim) for d in dims})
    if len(axes) != len(dims):
        raise errors.HybridIndexError(errors.at_user(f"{op}: dim {dim} repeats an axis"))
    return tuple(a for a in axes if a < ndim)


def _finish(x: Any, axes: tuple[int, ...], keepdim: bool) -> Any:
    if keepdim or not axes:
        return x
    shape = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return x.reshape(shape)


def _reduce(op: Op, name: str, x: Any, dim: Any, keepdim: bool) -> Any:
    ew.need_tensor(name, x)
    axes = normalize_dims(name, dim, x.ndim)
    if not axes:
        return x * 1 if op is not Op.MAX else x
    return _finish(apply(op, x, axes=axes), axes, keepdim)


def _acc_dtype(x: Any, dtype: DType | None) -> DType:
    ew.need_tensor("reduction", x)
    if dtype is not None:
        return dtype
    return DType.int64 if not x.dtype.is_floating else x.dtype


def _accumulating(op: Op) -> Any:
    """The public reduction of a table row with frontend="accumulate" (sum, prod)."""
    name = op.value

    def reduction(x, dim=None, keepdim=False, *, dtype=None):
        return _reduce(op, name, ew.cast(x, _acc_dtype(x, dtype)), dim, keepdim)

    reduction.__name__ = reduction.__qualname__ = name
    reduction.__doc__ = (f"{name} over `dim` (all dims when None), PyTorch's semantics; bool "
                         f"and integer inputs accumulate as int64 unless `dtype` says otherwise.")
    return reduction


# The reductions made from the op table (compiler/ir/ops.py rows with frontend="accumulate").
FROM_TABLE = {op.value: _accumulating(op) for op, d in OPS.items() if d.frontend == "accumulate"}
sum = FROM_TABLE["sum"]  # noqa: A001  (named here too: mean and the frontend read it)
prod = FROM_TABLE["prod"]


def _count(x: Any, axes: tuple[int, ...]) -> int:
    return math.prod(x.shape[a] for a in axes)


def mean(x, dim=None, keepdim=False, *, dtype=None):
    if dtype is not None:
        x = ew.cast(x, dtype)
    if not x.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(
                f"mean: needs a floating-point tensor, got {x.dtype.name}; use x.float().mean()"
            )
        )
    axes = normalize_dims("mean", dim, x.ndim)
    return sum(x, axes, keepdim) / _count(x, axes)


def amax(x, dim=None, keepdim=False):
    if x.dtype.is_bool:
        return ew.cast(amax(ew.cast(x, DType.int32), dim, keepdim), DType.bool)
    return _reduce(Op.MAX, "max", x, dim, keepdim)


def amin(x, dim=None, keepdim=False):
    if x.dtype.is_bool:
        return ew.cast(amin(ew.cast(x, DType.int32), dim, keepdim), DType.bool)
    return -amax(-x, dim, keepdim)


def argmax(x, dim=None, keepdim=False):
    """Index of the first maximum along `dim` (over the flattened tensor when dim is None)."""
    if dim is None:
        flat = x.reshape(-1)
        out = argmax(flat, 0, False)
        return out.reshape((1,) * x.ndim) if keepdim else out
    if x.dtype.is_bool:
        x = ew.cast(x, DType.int32)
    d = normalize_dim("argmax", dim, x.ndim)
    if x.ndim == 0:
        return ew.cast(x * 0, DType.int64)
    m = amax(x, d, keepdim=True)
    hit = x == m
    if x.dtype.is_floating:  # NaN is the maximum, as in PyTorch
        hit = hit | ew.isnan(x)
    from hybrid.ops.creation import iota

    n = x.shape[d]
    idx = iota(x.shape, d, DType.int64, like=x)
    first = -amax(-ew.where(hit, idx, n), d, keepdim=True)
    return first if keepdim else first.squeeze(d)


def argmin(x, dim=None, keepdim=False):
    if x.dtype.is_bool:
        x = ew.cast(x, DType.int32)
    return argmax(-x, dim, keepdim)


def max(x, dim=None, keepdim=False):  # noqa: A001
    """max(x) -> value; max(x, dim) -> (values, indices); max(x, y) -> elementwise maximum."""
    if dim is None:
        return amax(x)
    if ew.is_tensor(dim):
        return ew.maximum(x, dim)
    return minmax(amax(x, dim, keepdim), argmax(x, dim, keepdim))


def min(x, dim=None, keepdim=False):  # noqa: A001
    if dim is None:
        return amin(x)
    if ew.is_tensor(dim):
        return ew.minimum(x, dim)
    return minmax(amin(x, dim, keepdim), argmin(x, dim, keepdim))


def var(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance with Bessel's correction by default (correction=1), as torch.var."""
    if correction is None:
        correction = 0 if unbiased is False else 1
    x = ew.to_float(x)
    axes = normalize_dims("var", dim, x.ndim)
    n = _count(x, axes)
    d = x - mean(x, axes, keepdim=True)
    return sum(d * d, axes, keepdim) / (n - correction) if n - correction > 0 else (
        sum(d * d, axes, keepdim) * math.nan
    )


def std(x, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return ew.sqrt(var(x, dim, unbiased, keepdim, correction=correction))


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) over `dim`, computed stably (max subtracted)."""
    x = ew.to_float(x)
    axes = normalize_dims("logsumexp", dim, x.ndim)
    m = amax(x, axes, keepdim=True).detach()
    m = ew.where(ew.isinf(m), 0.0, m)
    out = ew.log(sum(ew.exp(x - m), axes, keepdim=True)) + m
    return _finish(out, axes, keepdim)


def all(x, dim=None, keepdim=False):  # noqa: A001
    return sum(ew.logical_not(x), dim, keepdim) == 0


def any(x, dim=None, keepdim=False):  # noqa: A001
    return sum(ew.cast(x, DType.bool), dim, keepdim) > 0


def count_nonzero(x, dim=None):
    return sum(ew.cast(x, DType.bool), dim)
