"""Cumulative sums and products along a dim, as a log-step (Hillis-Steele) scan of shifted adds
or multiplies: ceil(log2 n) pad+slice+binary steps, all primitives, so they differentiate
(including through zeros, with no division) and compile with no rule of their own."""

from __future__ import annotations

from typing import Any

from compiler.ir.ops import Op
from compiler.ir.types import DType
from hybrid.dtypes import as_dtype
from hybrid.ops import elementwise as ew
from hybrid.ops import shape as sh
from hybrid.ops.core import apply
from hybrid.ops.reduce import normalize_dim


def _shifted(y: Any, d: int, k: int, fill: int) -> Any:
    """y moved k places forward along dim d, the first k places filled with `fill`."""
    n = y.shape[d]
    head = sh.slice_dim(y, d, 0, n - k)
    pads = tuple((k, 0, 0) if i == d else (0, 0, 0) for i in range(y.ndim))
    return apply(Op.PAD, head, pads=pads, value=fill)


def _scan(name: str, op: Op, fill: int, x: Any, dim: int, dtype: Any) -> Any:
    if dtype is not None:
        x = ew.cast(x, as_dtype(dtype))
    elif not x.dtype.is_floating:
        x = ew.cast(x, DType.int64)  # integer and bool scans accumulate in int64, as PyTorch
    if x.ndim == 0:
        normalize_dim(name, dim, 0)
        return x * 1
    d = normalize_dim(name, dim, x.ndim)
    n = x.shape[d]
    y, k = x, 1
    if n <= 1:
        return x * 1
    while k < n:
        y = apply(op, y, _shifted(y, d, k, fill))
        k *= 2
    return y


def cumsum(x: Any, dim: int, *, dtype: Any = None) -> Any:
    """Cumulative sum along `dim`; integer and bool inputs give int64."""
    return _scan("cumsum", Op.ADD, 0, x, dim, dtype)


def cumprod(x: Any, dim: int, *, dtype: Any = None) -> Any:
    """Cumulative product along `dim`; integer and bool inputs give int64."""
    return _scan("cumprod", Op.MUL, 1, x, dim, dtype)
