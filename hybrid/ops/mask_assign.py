"""Boolean-mask assignment `x[mask] = value` as a `where` (no data-dependent shape), so that it
differentiates and compiles: the form manual backward passes use (`grad_h[h < 0] = 0`)."""

from __future__ import annotations

from typing import Any

from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import shape as sh
from hybrid.ops.core import STATE


def mask_of(x: Any, index: Any) -> Any:
    """The bool tensor when `index` is one bool mask over x's leading dims, else None."""
    if isinstance(index, tuple):
        if len(index) != 1:
            return None
        index = index[0]
    if not ew.is_tensor(index) or not index.dtype.is_bool:
        return None
    if index.ndim == 0 or index.ndim > x.ndim:
        return None
    if tuple(index.shape) != tuple(x.shape[: index.ndim]):
        raise errors.HybridIndexError(
            errors.at_user(f"index: mask of shape {list(index.shape)} does not match dims 0.. of "
                           f"shape {list(x.shape)}")
        )
    return index


def _fits_rest(value: Any, rest: tuple) -> Any:
    """value broadcast to the masked rows' shape `rest`, or None when it needs the row count
    (a value with one entry per selected row)."""
    vs = tuple(value.shape)
    if len(vs) == len(rest) + 1 and vs[0] == 1:
        value, vs = sh.reshape(value, vs[1:]), vs[1:]
    if len(vs) > len(rest):
        return None
    for a, b in zip(reversed(vs), reversed(rest)):
        if a != 1 and a != b:
            return None
    return value


def masked_assign(x: Any, index: Any, value: Any) -> Any:
    """x with x[mask] = value as where(mask, value, x), or None when this form does not apply
    (not a single bool mask, or a value with one entry per selected row outside a trace)."""
    mask = mask_of(x, index)
    if mask is None:
        return None
    rest = tuple(x.shape[mask.ndim:])
    v = _fits_rest(value, rest)
    if v is None:
        if STATE.tracer is not None:
            raise errors.TraceError(
                errors.at_user(
                    f"x[mask] = value with a value of shape {list(value.shape)} (one entry per "
                    "selected element) has a data-dependent shape and cannot be compiled; assign "
                    "a scalar or a value that broadcasts to x's shape, use "
                    "hybrid.where(mask, value, x), or run eagerly"
                )
            )
        return None
    m = sh.reshape(mask, tuple(mask.shape) + (1,) * len(rest))
    return ew.where(m, ew.cast(v, x.dtype), x)
