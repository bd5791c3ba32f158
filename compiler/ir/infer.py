"""Shape and dtype rules of the primitives: each takes input types and attributes, returns the
output type, or raises OpError naming the op, the input types and what would work."""

from __future__ import annotations

from collections.abc import Sequence

from compiler.ir.types import DType, OpError, Shape, TensorType, broadcast_shapes


def _types(ts: Sequence[TensorType]) -> str:
    return " and ".join(str(t) for t in ts)


def same_dtype(name: str, ts: Sequence[TensorType]) -> DType:
    """All inputs share one dtype (the frontend inserts casts); return it."""
    d = ts[0].dtype
    for t in ts[1:]:
        if t.dtype is not d:
            raise OpError(name, f"dtypes differ: {_types(ts)}; cast one input first", TypeError)
    return d


def unary_float(name: str, ts: Sequence[TensorType]) -> TensorType:
    (x,) = ts
    if not x.dtype.is_floating:
        raise OpError(name, f"needs a floating-point input, got {x}; cast with .float()", TypeError)
    return x


def unary_numeric(name: str, ts: Sequence[TensorType]) -> TensorType:
    (x,) = ts
    if x.dtype.is_bool:
        raise OpError(name, f"is not defined for bool input {x}; cast with .int() first", TypeError)
    return x


def unary_bool(name: str, ts: Sequence[TensorType]) -> TensorType:
    (x,) = ts
    if not x.dtype.is_bool:
        raise OpError(name, f"needs a bool input, got {x}", TypeError)
    return x


def identity(name: str, ts: Sequence[TensorType]) -> TensorType:
    return ts[0]


def _binary(name: str, ts: Sequence[TensorType], allowed) -> TensorType:
    d = same_dtype(name, ts)
    if not allowed(d):
        raise OpError(name, f"is not defined for dtype {d.name} ({_types(ts)})", TypeError)
    return TensorType(broadcast_shapes(name, *(t.shape for t in ts)), d)


def binary_any(name: str, ts: Sequence[TensorType]) -> TensorType:
    return _binary(name, ts, lambda d: True)


def binary_numeric(name: str, ts: Sequence[TensorType]) -> TensorType:
    return _binary(name, ts, lambda d: not d.is_bool)


def binary_float(name: str, ts: Sequence[TensorType]) -> TensorType:
    return _binary(name, ts, lambda d: d.is_floating)


def binary_bitwise(name: str, ts: Sequence[TensorType]) -> TensorType:
    return _binary(name, ts, lambda d: not d.is_floating)


def compare(name: str, ts: Sequence[TensorType]) -> TensorType:
    same_dtype(name, ts)
    return TensorType(broadcast_shapes(name, *(t.shape for t in ts)), DType.bool)


def where(name: str, ts: Sequence[TensorType]) -> TensorType:
    c, x, y = ts
    if not c.dtype.is_bool:
        raise OpError(name, f"condition must be bool, got {c}", TypeError)
    d = same_dtype(name, (x, y))
    return TensorType(broadcast_shapes(name, c.shape, x.shape, y.shape), d)


def cast(name: str, ts: Sequence[TensorType], *, dtype: DType) -> TensorType:
    return TensorType(ts[0].shape, dtype)


def check_axes(name: str, ndim: int, axes: Sequence[int]) -> None:
    """Axes are normalized (0 <= a < ndim), sorted and unique."""
    if list(axes) != sorted(set(axes)) or any(not 0 <= a < ndim for a in axes):
        raise OpError(name, f"axes {tuple(axes)} are invalid for a {ndim}-d input", IndexError)


def reduce(name: str, ts: Sequence[TensorType], *, axes: tuple[int, ...]) -> TensorType:
    (x,) = ts
    check_axes(name, x.ndim, axes)
    if x.dtype.is_bool:
        raise OpError(name, f"cannot reduce bool input {x}; cast it first", TypeError)
    if name == "max" and any(x.shape[a] == 0 for a in axes):
        raise OpError(name, f"cannot reduce {x} over an empty axis {axes}: it has no identity")
    shape = tuple(1 if i in axes else s for i, s in enumerate(x.shape))
    return TensorType(shape, x.dtype)


def reshape(name: str, ts: Sequence[TensorType], *, shape: Shape) -> TensorType:
    (x,) = ts
    n = 1
    for s in shape:
        if s < 0:
            raise OpError(name, f"target shape {list(shape)} has a negative size")
        n *= s
    if n != x.numel:
        raise OpError(
            name,
            f"cannot reshape {x} ({x.numel} elements) to {list(shape)} ({n} elements)",
        )
    return TensorType(tuple(shape), x.dtype)


def permute(name: str, ts: Sequence[TensorType], *, perm: tuple[int, ...]) -> TensorType:
    (x,) = ts
    if sorted(perm) != list(range(x.ndim)):
        raise OpError(name, f"{list(perm)} is not a permutation of the {x.ndim} dims of {x}", IndexError)
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


def expand(name: str, ts: Sequence[TensorType], *, shape: Shape) -> TensorType:
    (x,) = ts
    ok = len(shape) >= x.ndim and all(
        s == t or s == 1 for s, t in zip(x.shape[::-1], shape[::-1])
    )
    if not ok:
        raise OpError(
            name,
            f"cannot expand {x} to {list(shape)}: each dim must match or be 1 "
            "(and new dims go in front)",
        )
    return TensorType(tuple(shape), x.dtype)


def slice_(
    name: str,
    ts: Sequence[TensorType],
    *,
    starts: tuple[int, ...],
    stops: tuple[int, ...],
    steps: tuple[int, ...],
) -> TensorType:
    (x,) = ts
    if not len(starts) == len(stops) == len(steps) == x.ndim:
        raise OpError(name, f"needs one start/stop/step per dim of {x}")
    out = []
    for d, (b, e, s) in enumerate(zip(starts, stops, steps)):
        if s < 1 or not 0 <= b <= e <= x.shape[d]:
            raise OpError(
                name, f"dim {d}: [{b}:{e}:{s}] is not a normalized slice of size {x.shape[d]}",
                IndexError,
            )
        out.append((e - b + s - 1) // s)
    return TensorType(tuple(out), x.dtype)


def pad(
    name: str, ts: Sequence[TensorType], *, pads: tuple[tuple[int, int, int], ...], value: float
) -> TensorType:
    (x,) = ts
    if len(pads) != x.ndim or any(p < 0 for lhi in pads for p in lhi):
        raise OpError(name, f"needs one non-negative (low, high, interior) per dim of {x}")
    shape = tuple(
        lo + hi + s + max(s - 1, 0) * interior for s, (lo, hi, interior) in zip(x.shape, pads)
    )
    return TensorType(shape, x.dtype)


def concat(name: str, ts: Sequence[TensorType], *, axis: int) -> TensorType:
    d = same_dtype(name, ts)
    x = ts[0]
    if not 0 <= axis < x.ndim:
        raise OpError(name, f"axis {axis} is out of range for {x}", IndexError)
    for t in ts[1:]:
        if t.ndim != x.ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, x.shape)) if i != axis
        ):
            raise OpError(
                name, f"shapes {_types(ts)} must match except in dim {axis}"
            )
    shape = list(x.shape)
    shape[axis] = sum(t.shape[axis] for t in ts)
    return TensorType(tuple(shape), d)


def matmul(name: str, ts: Sequence[TensorType]) -> TensorType:
    a, b = ts
    d = same_dtype(name, ts)
    if d.is_bool:
        raise OpError(name, f"is not defined for bool ({_types(ts)})", TypeError)
    if a.ndim < 2 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
        raise OpError(
            name, f"needs [..., m, k] and [..., k, n] with equal batch dims, got {_types(ts)}"
        )
    if a.shape[-1] != b.shape[-2]:
        raise OpError(
            name,
            f"cannot multiply {a} by {b} ({a.shape[-1]} != {b.shape[-2]})",
        )
    return TensorType(a.shape[:-1] + b.shape[-1:], d)


def _index_dtype(name: str, idx: TensorType) -> None:
    if not idx.dtype.is_integer:
        raise OpError(name, f"indices must be int32 or int64, got {idx}", TypeError)


def gather(name: str, ts: Sequence[TensorType], *, axis: int) -> TensorType:
    x, idx = ts
    _index_dtype(name, idx)
    if not 0 <= axis < x.ndim:
        raise OpError(name, f"axis {axis} is out of range for {x}", IndexError)
    return TensorType(x.shape[:axis] + idx.shape + x.shape[axis + 1 :], x.dtype)


def scatter(name: str, ts: Sequence[TensorType], *, axis: int) -> TensorType:
    x, idx, src = ts
    _index_dtype(name, idx)
    same_dtype(name, (x, src))
    want = gather(name, (x, idx), axis=axis).shape
    if src.shape != want:
        raise OpError(name, f"source {src} must have shape {list(want)} to scatter into {x}")
    return x


def source(name: str, ts: Sequence[TensorType], *, shape: Shape, dtype: DType, **_) -> TensorType:
    return TensorType(tuple(shape), dtype)


def rand(name: str, ts: Sequence[TensorType], *, shape: Shape, dtype: DType, offset: int):
    (state,) = ts
    if state.shape != (2,) or state.dtype is not DType.int64:
        raise OpError(name, f"state must be i64[2] (seed, offset), got {state}", TypeError)
    if not dtype.is_floating:
        raise OpError(name, f"draws floats, not {dtype.name}", TypeError)
    return TensorType(tuple(shape), dtype)
