"""Indexing with numpy/PyTorch semantics: basic (ints, slices, None, ...) as one slice primitive,
advanced (integer tensors, lists, bool masks) as a gather over the merged indexed dims; setitem
as a pad+where (basic) or scatter (advanced) that the tensor then takes in place."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler.ir.ops import Op
from compiler.ir.types import DType
from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import shape as sh
from hybrid.ops.core import STATE, apply


def _index_tensor(x: Any, like: Any) -> Any:
    """A list / numpy array / tensor index as an integer or bool tensor on `like`'s device."""
    from hybrid.ops.creation import tensor

    if ew.is_tensor(x):
        return x
    arr = np.asarray(x)
    if arr.size == 0 and arr.dtype.kind == "f":  # x[[]]: an empty list of indices
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "biu":
        raise errors.HybridIndexError(
            errors.at_user(f"index: indices must be integers or bools, got {arr.dtype} {x!r}")
        )
    if arr.dtype.kind == "u":
        arr = arr.astype(np.int64)
    return tensor(arr, device=like.device)


def _normalize(x: Any, index: Any) -> list:
    """The index as a list with Ellipsis expanded, sequences made tensors, bool masks made
    integer tensors (eager only), and full slices appended for the remaining dims."""
    if not isinstance(index, tuple):
        index = (index,)
    items = []
    for it in index:
        if it is None or it is Ellipsis or isinstance(it, slice):
            items.append(it)
        elif isinstance(it, (bool, np.bool_)):
            items.append(None)  # x[True] adds a dim, as numpy
        elif isinstance(it, int) or (hasattr(it, "__index__") and not ew.is_tensor(it)
                                     and not isinstance(it, np.ndarray)):
            items.append(int(it.__index__()))
        else:
            t = _index_tensor(it, x)
            if t.dtype.is_bool:
                dim = sum(1 for i in items if i is not None)
                if not any(i is Ellipsis for i in items) and tuple(x.shape[dim : dim + t.ndim]) != tuple(t.shape):
                    raise errors.HybridIndexError(
                        errors.at_user(f"index: mask of shape {list(t.shape)} does not match "
                                       f"dims {dim}.. of shape {list(x.shape)}")
                    )
                items.extend(_mask_to_indices(t))
            elif t.dtype.is_integer:
                items.append(t)
            else:
                raise errors.HybridIndexError(
                    errors.at_user(f"index: tensors used as indices must be integer or bool, "
                                   f"got {t.dtype.name}")
                )
    used = sum(1 for it in items if it is not None and it is not Ellipsis)
    if sum(1 for it in items if it is Ellipsis) > 1:
        raise errors.HybridIndexError(errors.at_user("index: an index can only have one '...'"))
    if used > x.ndim:
        raise errors.HybridIndexError(
            errors.at_user(f"index: too many indices ({used}) for a {x.ndim}-d tensor "
                           f"of shape {list(x.shape)}")
        )
    if any(it is Ellipsis for it in items):
        i = next(k for k, it in enumerate(items) if it is Ellipsis)
        items[i : i + 1] = [slice(None)] * (x.ndim - used)
    else:
        items += [slice(None)] * (x.ndim - used)
    return items


def _mask_to_indices(mask: Any) -> list:
    if STATE.tracer is not None:
        raise errors.TraceError(
            errors.at_user(
                "index: a bool mask index has a data-dependent shape and cannot be compiled; "
                "use hybrid.where(mask, x, 0) or masked_fill instead, or run eagerly"
            )
        )
    from hybrid.ops.core import wrap

    return [wrap(i.astype("int64")) for i in mask._value.nonzero()]


def _plan(x: Any, items: list):
    """Walk the index: slice bounds per dim, dims to drop (ints), positions of None, and the
    advanced (tensor) indices with the dim of the result they index."""
    has_adv = any(ew.is_tensor(it) for it in items)
    starts, stops, steps = [], [], []
    out_shape = []  # shape after basic indexing, ints dropped and None inserted
    adv = []  # (position in out_shape, index tensor, dim size)
    dim = 0
    for it in items:
        if it is None:
            out_shape.append(1)
            continue
        n = x.shape[dim]
        if isinstance(it, slice):
            b, e, s = it.indices(n)
            if s <= 0:
                raise errors.HybridIndexError(
                    errors.at_user(f"index: step must be positive, got {it.step} (PyTorch has no "
                                   "negative steps; use flip)")
                )
            e = max(e, b)
            starts.append(b), stops.append(e), steps.append(s)
            out_shape.append((e - b + s - 1) // s)
        elif isinstance(it, int):
            i = it + n if it < 0 else it
            if not 0 <= i < n:
                raise errors.HybridIndexError(
                    errors.at_user(f"index {it} is out of bounds for dim {dim} with size {n}")
                )
            if has_adv:  # numpy: ints among advanced indices act as advanced indices
                starts.append(0), stops.append(n), steps.append(1)
                adv.append((len(out_shape), i, n))
                out_shape.append(n)
            else:
                starts.append(i), stops.append(i + 1), steps.append(1)
        else:
            starts.append(0), stops.append(n), steps.append(1)
            adv.append((len(out_shape), it, n))
            out_shape.append(n)
        dim += 1
    return tuple(starts), tuple(stops), tuple(steps), tuple(out_shape), adv


def _basic(x: Any, starts, stops, steps, out_shape) -> Any:
    if starts != (0,) * x.ndim or stops != tuple(x.shape) or steps != (1,) * x.ndim:
        y = sh._view(apply(Op.SLICE, x, starts=starts, stops=stops, steps=steps), x)
    else:
        y = x
    return sh.reshape(y, out_shape)


def _check_bounds(idx: Any, n: int, dim: int, op: str = "index", negative: bool = True) -> None:
    """Eagerly, every index in [-n, n) (in [0, n) where PyTorch does not wrap negative indices:
    `negative` False). Compiled code checks the same range in its kernels."""
    v = idx._value
    if STATE.tracer is not None or v.size == 0:
        return
    lo, hi = int(v.min()), int(v.max())
    low = -n if negative else 0
    if lo < low or hi >= n:
        bad = hi if hi >= n else lo
        why = "" if negative or bad >= 0 else f" ({op} takes indices in [0, {n}), as PyTorch)"
        raise errors.HybridIndexError(
            errors.at_user(f"{op}: index {bad} is out of bounds for dim {dim} with size {n}{why}")
        )


def _out_of_range_below(t: Any, n: int, total: int, negative: bool) -> Any:
    """Compiled only: a coordinate outside [0, n) (or [-n, n) when `negative`) replaced by
    -(total + 1), so the flat index it is part of falls outside the flat range [0, total) and
    the gather's bounds check fires; in range, the coordinate would only move to another row.
    (Eagerly, _check_bounds raised before.)"""
    bad = (t >= n) | (t < (-n if negative else 0))
    return ew.where(bad, -(total + 1), t)


def _advanced(y: Any, adv: list) -> Any:
    """Gather y at the advanced indices (numpy placement rules)."""
    from hybrid.ops.creation import scalar_tensor

    pos = [p for p, _, _ in adv]
    idxs = []
    for p, it, n in adv:
        t = scalar_tensor(it, DType.int64, y) if isinstance(it, int) else it
        _check_bounds(t, n, p)
        t = ew.cast(t, DType.int64)
        idxs.append(ew.where(t < 0, t + n, t))
    if STATE.tracer is not None and len(idxs) > 1:  # the merged index must stay checkable
        total = math.prod(n for _, _, n in adv)
        idxs = [_out_of_range_below(t, n, total, negative=False) for t, (_, _, n) in zip(idxs, adv)]
    idxs = sh.broadcast_tensors(*idxs)
    adjacent = pos == list(range(pos[0], pos[0] + len(pos)))
    if not adjacent:  # advanced dims go first
        rest = [d for d in range(y.ndim) if d not in pos]
        y = sh.permute(y, pos + rest)
        pos = list(range(len(pos)))
    p0 = pos[0]
    sizes = [y.shape[p] for p in pos]
    lin = None
    for k, t in enumerate(idxs):
        stride = math.prod(sizes[k + 1 :])
        term = t * stride if stride != 1 else t
        lin = term if lin is None else lin + term
    merged = sh.reshape(y, y.shape[:p0] + (math.prod(sizes),) + y.shape[p0 + len(pos) :])
    return apply(Op.GATHER, merged, lin, axis=p0)


def getitem(x: Any, index: Any) -> Any:
    """x[index] with numpy/PyTorch semantics."""
    if x.ndim == 0 and index == ():
        return x
    items = _normalize(x, index)
    starts, stops, steps, out_shape, adv = _plan(x, items)
    y = _basic(x, starts, stops, steps, out_shape)
    return _advanced(y, adv) if adv else y


def _np_index(index: Any) -> Any:
    """The index with tensors replaced by their arrays, for eager in-place assignment."""
    def conv(it):
        if ew.is_tensor(it):
            return it._value
        return it

    return tuple(conv(i) for i in index) if isinstance(index, tuple) else conv(index)


def setitem(x: Any, index: Any, value: Any) -> None:
    """x[index] = value, in place (functional under autograd and tracing)."""
    from hybrid.tensor import check_inplace, inplace

    check_inplace(x)
    if not ew.is_tensor(value):
        value = ew.operand(value, x.dtype, x)
    value = ew.cast(value, x.dtype)
    eager = STATE.tracer is None and not (STATE.grad and (x._rg or value._rg))
    if eager:
        if value._value.__class__ is not x._value.__class__:
            ew.binary(Op.ADD, x, value)  # raises the device error
        try:
            x._value[_np_index(index)] = value._value
        except (IndexError, ValueError) as e:
            getitem(x, index)  # a clear error for a bad index, if that is the problem
            raise errors.ShapeError(
                errors.at_user(f"setitem: cannot assign a value of shape {list(value.shape)} "
                               f"to x{_show(index)} of x with shape {list(x.shape)}: {e}")
            ) from None
        x._version += 1
        return
    inplace(x, functional_setitem(x, index, value))


def _show(index: Any) -> str:
    return f"[{index!r}]" if not isinstance(index, tuple) else f"[{', '.join(map(repr, index))}]"


def functional_setitem(x: Any, index: Any, value: Any) -> Any:
    """A new tensor equal to x with x[index] replaced by value (broadcast)."""
    from hybrid.ops.mask_assign import masked_assign

    by_mask = masked_assign(x, index, value)  # x[bool mask] = v: a where (compiles)
    if by_mask is not None:
        return by_mask
    items = _normalize(x, index)
    starts, stops, steps, out_shape, adv = _plan(x, items)
    if adv:
        from hybrid.ops.creation import arange

        lin = getitem(sh.reshape(arange(x.numel(), device=x.device), x.shape), index)
        src = sh.reshape(sh.expand(value, lin.shape), (-1,))
        flat = apply(Op.SCATTER, sh.reshape(x, (-1,)), sh.reshape(lin, (-1,)), src, axis=0)
        return sh.reshape(flat, x.shape)
    region = tuple((e - b + s - 1) // s for b, e, s in zip(starts, stops, steps))
    if math.prod(region) == 0:
        return x
    v = sh.reshape(sh.expand(value, out_shape), region)
    pads = tuple(
        (b, n - (b + (r - 1) * s + 1), s - 1)
        for b, s, r, n in zip(starts, steps, region, x.shape)
    )
    from hybrid.ops.creation import full

    placed = apply(Op.PAD, v, pads=pads, value=0)
    mask = apply(Op.PAD, full(region, True, dtype=DType.bool, device=x.device), pads=pads,
                 value=False)
    return ew.where(mask, placed, x)


def _int_index(op: str, index: Any) -> None:
    ew.need_tensor(op, index)
    if not index.dtype.is_integer:
        raise errors.DTypeError(
            errors.at_user(f"{op}: index must be an int32 or int64 tensor, got "
                           f"{index.dtype.name}{list(index.shape)}")
        )


def index_select(x, dim, index):
    from hybrid.ops.reduce import normalize_dim

    _int_index("index_select", index)
    ew.need_tensor("index_select", x)
    d = normalize_dim("index_select", dim, x.ndim)
    if index.ndim != 1:
        raise errors.ShapeError(errors.at_user(f"index_select: index must be 1-d, got {index.ndim}-d"))
    _check_bounds(index, x.shape[d], d, "index_select", negative=False)
    return apply(Op.GATHER, x, ew.cast(index, DType.int64), axis=d)


def _along_dim_linear(x: Any, dim: int, index: Any) -> Any:
    """Flat indices into x of x[i0, .., index[i], .., in] for every position i of `index`."""
    from hybrid.ops.creation import iota

    strides = [math.prod(x.shape[d + 1 :]) for d in range(x.ndim)]
    lin = None
    for d in range(x.ndim):
        coord = ew.cast(index, DType.int64) if d == dim else iota(index.shape, d, DType.int64, like=x)
        if d == dim and STATE.tracer is not None:
            coord = _out_of_range_below(coord, x.shape[d], x.numel(), negative=False)
        term = coord * strides[d] if strides[d] != 1 else coord
        lin = term if lin is None else lin + term
    return lin


def _check_along(op: str, x: Any, dim: int, index: Any) -> int:
    from hybrid.ops.reduce import normalize_dim

    d = normalize_dim(op, dim, x.ndim)
    if index.ndim != x.ndim or any(
        i > s for k, (i, s) in enumerate(zip(index.shape, x.shape)) if k != d
    ):
        raise errors.ShapeError(
            errors.at_user(
                f"{op}: index of shape {list(index.shape)} does not fit input of shape "
                f"{list(x.shape)} along dim {dim} (same number of dims, no larger elsewhere)"
            )
        )
    if not index.dtype.is_integer:
        raise errors.DTypeError(errors.at_user(f"{op}: index must be int64, got {index.dtype.name}"))
    _check_bounds(index, x.shape[d], d, op, negative=False)
    return d


def gather(x, dim, index):
    """torch.gather: out[i][j] = x[index[i][j]][j] (for dim 0)."""
    d = _check_along("gather", x, dim, index)
    lin = _along_dim_linear(x, d, index)
    return apply(Op.GATHER, sh.reshape(x, (-1,)), lin, axis=0)


def scatter_add(x, dim, index, src):
    """torch.scatter_add (out of place): x with src[i] added at index positions along dim."""
    d = _check_along("scatter_add", x, dim, index)
    src = ew.cast(src, x.dtype)
    if tuple(src.shape) != tuple(index.shape):  # PyTorch reads only src's leading region
        src = getitem(src, tuple(slice(0, n) for n in index.shape))
    lin = sh.reshape(_along_dim_linear(x, d, index), (-1,))
    flat = apply(Op.SCATTER_ADD, sh.reshape(x, (-1,)), lin, sh.reshape(src, (-1,)), axis=0)
    return sh.reshape(flat, x.shape)


def index_add(x, dim, index, source, *, alpha=1):
    from hybrid.ops.reduce import normalize_dim

    d = normalize_dim("index_add", dim, x.ndim)
    _int_index("index_add", index)
    _check_bounds(index, x.shape[d], d, "index_add", negative=False)
    src = ew.cast(source if alpha == 1 else source * alpha, x.dtype)
    return apply(Op.SCATTER_ADD, x, ew.cast(index, DType.int64), src, axis=d)


def masked_fill(x, mask, value):
    if not ew.is_tensor(mask) or not mask.dtype.is_bool:
        got = mask.dtype.name if ew.is_tensor(mask) else type(mask).__name__
        raise errors.DTypeError(
            errors.at_user(f"masked_fill: only supports boolean masks, but got mask with dtype "
                           f"{got}; use mask.bool() (or mask != 0)")
        )
    return ew.where(mask, ew.operand(value, x.dtype, x) if not ew.is_tensor(value) else value, x)


def take(x, index):
    _int_index("take", index)
    flat = sh.reshape(x, (-1,))
    _check_bounds(index, flat.shape[0], 0, "take")
    idx = ew.cast(index, DType.int64)
    n = flat.shape[0]
    return apply(Op.GATHER, flat, ew.where(idx < 0, idx + n, idx), axis=0)
