"""Shape and movement ops (views where PyTorch has views), composed of movement primitives."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from compiler.ir.ops import Op
from compiler.ir.types import broadcast_shapes
from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops.core import STATE, apply
from hybrid.ops.reduce import normalize_dim


def sizes(args: tuple) -> tuple[int, ...]:
    """`f(2, 3)` and `f((2, 3))` both mean the shape (2, 3)."""
    if len(args) == 1 and isinstance(args[0], Sequence):
        args = tuple(args[0])
    out = []
    for a in args:
        if not isinstance(a, int):
            if hasattr(a, "__index__"):
                a = a.__index__()
            else:
                raise errors.DTypeError(
                    errors.at_user(f"shape entries must be ints, got {type(a).__name__} {a!r}")
                )
        out.append(int(a))
    return tuple(out)


def _shape_str(s) -> str:
    return "[" + ",".join(map(str, s)) + "]"


def reshape(x, *shape):
    shape = sizes(shape)
    if shape.count(-1) > 1:
        raise errors.ShapeError(errors.at_user(f"reshape: only one dim can be -1, got {list(shape)}"))
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if known == 0 or x.numel() % known:
            raise errors.ShapeError(
                errors.at_user(
                    f"reshape: cannot reshape {x.dtype.short}{_shape_str(x.shape)} "
                    f"({x.numel()} elements) to {list(shape)}"
                )
            )
        shape = tuple(x.numel() // known if s == -1 else s for s in shape)
    if shape == tuple(x.shape):
        return x
    return _view(apply(Op.RESHAPE, x, shape=shape), x)


def view(x, *shape):
    """x.view(shape): reshape without a copy; a shape x's strides cannot express raises, as
    PyTorch's view does (reshape copies instead)."""
    y = reshape(x, *shape)
    if y is x:
        return y
    src = _strides_of(x)
    if src is not None and src.reshape(tuple(y.shape)) is None:
        raise errors.ShapeError(errors.at_user(
            f"view: shape {list(y.shape)} is not compatible with the strides {list(src.strides)} "
            f"of {x.dtype.short}{_shape_str(x.shape)} (at least one dim spans two contiguous "
            "subspaces, as after a transpose); use .reshape(...) instead (it copies)"))
    return y


def _strides_of(x: Any) -> Any:
    """x's element strides as a compiler View: the array's own when eager; traced, the movement
    ops since the last op that makes a fresh (contiguous) tensor, replayed (None: unknown)."""
    from compiler.view import View

    v = x._value
    if not getattr(v, "traced", False):
        size = v.itemsize
        strides = getattr(v, "strides", None)
        if strides is None or any(st % size for st in strides):
            return None
        return View(tuple(v.shape), tuple(st // size for st in strides), 0)
    if STATE.tracer is None:
        return None
    prod = {n.out.id: n for n in STATE.tracer.graph.nodes}  # trace time only
    chain = []
    node = prod.get(v.id)
    while node is not None and node.op in (Op.PERMUTE, Op.EXPAND, Op.SLICE, Op.RESHAPE):
        chain.append(node)
        node = prod.get(node.inputs[0].id)
    base = chain[-1].inputs[0] if chain else v
    view = View.contiguous(tuple(base.shape))
    for n in reversed(chain):
        a = n.attrs
        if n.op is Op.PERMUTE:
            view = view.permute(a["perm"])
        elif n.op is Op.EXPAND:
            view = view.expand(a["shape"])
        elif n.op is Op.SLICE:
            view = view.slice(a["starts"], a["stops"], a["steps"])
        else:  # a reshape strides cannot express made a contiguous copy
            view = view.reshape(a["shape"]) or View.contiguous(tuple(a["shape"]))
        if view is None:
            return None
    return view


def _view(out: Any, x: Any) -> Any:
    """Mark `out` as a view of x's storage (in-place updates through views are tracked)."""
    out._base = x._base if x._base is not None else x
    if STATE.tracer is not None:
        STATE.tracer.note_view(out, x)
    return out


def permute(x, *dims):
    dims = sizes(dims)
    if len(dims) != x.ndim:
        raise errors.ShapeError(
            errors.at_user(f"permute: got {len(dims)} dims {list(dims)} for a {x.ndim}-d tensor")
        )
    perm = tuple(normalize_dim("permute", d, x.ndim) for d in dims)
    if len(set(perm)) != len(perm):
        raise errors.ShapeError(errors.at_user(f"permute: dims {list(dims)} repeat a dim"))
    if perm == tuple(range(x.ndim)):
        return x
    return _view(apply(Op.PERMUTE, x, perm=perm), x)


def transpose(x, dim0, dim1):
    if x.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    a, b = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


def t(x):
    if x.ndim > 2:
        raise errors.ShapeError(errors.at_user(f"t: expects a tensor of <= 2 dims, got {x.ndim}"))
    return transpose(x, 0, 1) if x.ndim == 2 else x


def T(x):  # noqa: N802
    return permute(x, tuple(range(x.ndim - 1, -1, -1))) if x.ndim > 1 else x


def expand(x, *shape):
    shape = sizes(shape)
    if len(shape) < x.ndim:
        raise errors.ShapeError(
            errors.at_user(
                f"expand: the shape {list(shape)} has fewer dims than the tensor "
                f"{x.dtype.short}{_shape_str(x.shape)}"
            )
        )
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    if shape == tuple(x.shape):
        return x
    return _view(apply(Op.EXPAND, x, shape=shape), x)


def expand_as(x, other):
    return expand(x, other.shape)


def broadcast_to(x, shape):
    return expand(x, shape)


def broadcast_tensors(*xs):
    try:
        shape = broadcast_shapes("broadcast_tensors", *(tuple(x.shape) for x in xs))
    except Exception as e:
        raise errors.ShapeError(errors.at_user(str(e))) from None
    return tuple(expand(x, shape) for x in xs)


def squeeze(x, dim=None):
    if dim is None:
        axes = [i for i, s in enumerate(x.shape) if s == 1]
    else:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        axes = [a for a in (normalize_dim("squeeze", d, x.ndim) for d in dims)
                if x.ndim and x.shape[a] == 1]
    return reshape(x, tuple(s for i, s in enumerate(x.shape) if i not in axes))


def unsqueeze(x, dim):
    d = normalize_dim("unsqueeze", dim, x.ndim + 1)
    shape = list(x.shape)
    shape.insert(d, 1)
    return reshape(x, tuple(shape))


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, (1,))
    a = normalize_dim("flatten", start_dim, x.ndim)
    b = normalize_dim("flatten", end_dim, x.ndim)
    if a > b:
        raise errors.ShapeError(errors.at_user(f"flatten: start_dim {start_dim} > end_dim {end_dim}"))
    shape = x.shape[:a] + (math.prod(x.shape[a : b + 1]),) + x.shape[b + 1 :]
    return reshape(x, shape)


def unflatten(x, dim, sizes_):
    d = normalize_dim("unflatten", dim, x.ndim)
    return reshape(x, x.shape[:d] + tuple(sizes_) + x.shape[d + 1 :])


def slice_dim(x, dim: int, start: int, stop: int, step: int = 1):
    """x[..., start:stop:step, ...] along one (normalized) dim, with normalized bounds."""
    if start == 0 and stop == x.shape[dim] and step == 1:
        return x
    starts = [0] * x.ndim
    stops = list(x.shape)
    steps = [1] * x.ndim
    starts[dim], stops[dim], steps[dim] = start, stop, step
    return _view(apply(Op.SLICE, x, starts=tuple(starts), stops=tuple(stops),
                       steps=tuple(steps)), x)


def narrow(x, dim, start, length):
    d = normalize_dim("narrow", dim, x.ndim)
    if start < 0:
        start += x.shape[d]
    if not 0 <= start <= start + length <= x.shape[d]:
        raise errors.HybridIndexError(
            errors.at_user(f"narrow: [{start}, {start + length}) is out of range for dim {dim} "
                           f"of size {x.shape[d]}")
        )
    return slice_dim(x, d, start, start + length)


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise errors.ShapeError(errors.at_user("cat: expected a non-empty list of tensors"))
    for t in tensors:
        ew.need_tensor("cat", t)
    # PyTorch skips 1-d empty tensors in cat (legacy behaviour)
    keep = [t for t in tensors if not (t.ndim == 1 and t.shape[0] == 0)] or tensors[:1]
    d = normalize_dim("cat", dim, keep[0].ndim)
    from hybrid.dtypes import result_type

    dt = result_type(*keep)
    keep = [ew.cast(t, dt) for t in keep]
    if len(keep) == 1:
        return keep[0] * 1 if STATE.grad else keep[0]
    return apply(Op.CONCAT, *keep, axis=d)


concat = cat


def stack(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise errors.ShapeError(errors.at_user("stack: expected a non-empty list of tensors"))
    shape = tuple(tensors[0].shape)
    for t_ in tensors[1:]:
        if tuple(t_.shape) != shape:
            raise errors.ShapeError(
                errors.at_user(
                    "stack: all tensors must have the same shape, got "
                    + " and ".join(_shape_str(u.shape) for u in tensors)
                )
            )
    d = normalize_dim("stack", dim, len(shape) + 1)
    return cat([unsqueeze(t_, d) for t_ in tensors], d)


def split(x, split_size_or_sections, dim=0):
    d = normalize_dim("split", dim, x.ndim)
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise errors.ShapeError(errors.at_user(f"split: split_size must be positive, got {size}"))
        sections = [min(size, n - i) for i in range(0, n, size)] or [0]
    else:
        sections = list(split_size_or_sections)
        if sum(sections) != n:
            raise errors.ShapeError(
                errors.at_user(f"split: sections {sections} do not add up to dim {dim} size {n}")
            )
    out, start = [], 0
    for s in sections:
        out.append(slice_dim(x, d, start, start + s))
        start += s
    return tuple(out)


def chunk(x, chunks, dim=0):
    if chunks <= 0:
        raise errors.ShapeError(errors.at_user(f"chunk: chunks must be positive, got {chunks}"))
    d = normalize_dim("chunk", dim, x.ndim)
    size = -(-x.shape[d] // chunks) if x.shape[d] else 1
    return split(x, size, d)


def unbind(x, dim=0):
    d = normalize_dim("unbind", dim, x.ndim)
    return tuple(squeeze(slice_dim(x, d, i, i + 1), d) for i in range(x.shape[d]))


PAD_MODES = ("constant", "reflect", "replicate", "circular")


def pad(x, pad_, mode="constant", value=None):
    """F.pad: `pad_` holds (left, right) pairs starting from the last dim; negative pads crop.
    reflect / replicate / circular pad the last 1-3 dims of a 2-5 d input, as PyTorch's."""
    if mode not in PAD_MODES:
        raise errors.ShapeError(errors.at_user(
            f"pad: mode must be one of {', '.join(map(repr, PAD_MODES))}, got {mode!r}"))
    if len(pad_) % 2 or len(pad_) // 2 > x.ndim:
        raise errors.ShapeError(
            errors.at_user(f"pad: {list(pad_)} must hold (left, right) pairs for at most {x.ndim} dims")
        )
    if mode != "constant":
        if value not in (None, 0, 0.0):
            raise errors.ShapeError(errors.at_user(
                f"pad: mode={mode!r} takes no value (got value={value!r}); use mode='constant'"))
        return pad_mode("pad", x, tuple(int(p) for p in pad_), mode)
    value = 0.0 if value is None else value
    pads = [[0, 0, 0] for _ in range(x.ndim)]
    for i in range(len(pad_) // 2):
        d = x.ndim - 1 - i
        lo, hi = pad_[2 * i], pad_[2 * i + 1]
        if lo < 0 or hi < 0:  # crop first
            x = slice_dim(x, d, max(-lo, 0), x.shape[d] - max(-hi, 0))
        pads[d][0], pads[d][1] = max(lo, 0), max(hi, 0)
    if not any(p[0] or p[1] for p in pads):
        return x
    return apply(Op.PAD, x, pads=tuple(tuple(p) for p in pads), value=value)


def pad_index(n: int, lo: int, hi: int, mode: str) -> Any:
    """Source index of each position of a dim of size n padded by (lo, hi) in `mode`."""
    import numpy as np

    i = np.arange(-lo, n + hi)
    if mode == "reflect":
        i = np.abs(i)
        i = np.where(i > n - 1, 2 * (n - 1) - i, i)
    elif mode == "replicate":
        i = np.clip(i, 0, n - 1)
    else:  # circular
        i = np.mod(i, n)
    return i.astype(np.int64)


def pad_mode(op: str, x: Any, pads: tuple, mode: str, name: str = "mode") -> Any:
    """x padded by reflect / replicate / circular: one gather at constant source indices per
    padded dim (its gradient a scatter-add). Circular crops a negative pad first, as PyTorch.
    `name` is the argument the errors name (a conv layer's padding_mode)."""
    from hybrid.ops import creation as cr
    from hybrid.ops.indexing import index_select

    zeros = "padding_mode='zeros'" if name == "padding_mode" else "mode='constant'"
    k = len(pads) // 2
    if not 1 <= k <= 3 or x.ndim not in (k + 1, k + 2):
        raise errors.ShapeError(errors.at_user(
            f"{op}: {name}={mode!r} with {len(pads)} pad values needs a {k + 1}-d or {k + 2}-d "
            f"input, got {x.dtype.short}{_shape_str(x.shape)} (it pads the last 1 to 3 dims of a "
            f"2-d to 5-d input); pad fewer dims or use {zeros}"))
    for i in range(k):
        dim = x.ndim - 1 - i
        lo, hi, n = pads[2 * i], pads[2 * i + 1], x.shape[dim]
        if not lo and not hi:
            continue
        if mode == "circular" and (lo < 0 or hi < 0) and max(-lo, 0) + max(-hi, 0) <= n:
            x = slice_dim(x, dim, max(-lo, 0), n - max(-hi, 0))
            lo, hi, n = max(lo, 0), max(hi, 0), x.shape[dim]
        limit = {"reflect": n - 1, "replicate": None, "circular": n}[mode]
        problem = None
        if n == 0:
            problem = "has no element to pad from in"
        elif n + lo + hi < 0:
            problem = "crops more than there is of"
        elif limit is not None and max(lo, hi) > limit:
            problem = ("needs each pad less than the size of" if mode == "reflect" else
                       "needs each pad at most the size (it wraps around once) of")
        if problem is not None:
            raise errors.ShapeError(errors.at_user(
                f"{op}: {name}={mode!r} {problem} the dim it pads; got ({lo}, {hi}) for dim "
                f"{dim} of {x.dtype.short}{_shape_str(x.shape)}; use smaller pads or {zeros}"))
        index = cr.tensor(pad_index(n, lo, hi, mode), device=x.device)
        x = index_select(x, dim, index)
    return x


def repeat(x, *reps):
    reps = sizes(reps)
    if len(reps) < x.ndim:
        raise errors.ShapeError(
            errors.at_user(f"repeat: {len(reps)} repeats for a {x.ndim}-d tensor; give one per dim")
        )
    x = reshape(x, (1,) * (len(reps) - x.ndim) + tuple(x.shape))
    inter = []
    for r, s in zip(reps, x.shape):
        inter += [1, s]
    y = expand(reshape(x, tuple(inter)), tuple(v for r, s in zip(reps, x.shape) for v in (r, s)))
    return reshape(y, tuple(r * s for r, s in zip(reps, x.shape)))


def flip(x, dims):
    from hybrid.ops.indexing import getitem

    axes = [normalize_dim("flip", d, x.ndim) for d in ((dims,) if isinstance(dims, int) else dims)]
    from hybrid.ops.creation import arange

    idx = [slice(None)] * x.ndim
    out = x
    for a in axes:
        rev = arange(x.shape[a] - 1, -1, -1, device=x.device)
        idx_a = [slice(None)] * x.ndim
        idx_a[a] = rev
        out = getitem(out, tuple(idx_a))
    del idx
    return out


def contiguous(x):
    """x itself when its elements are already in row-major order, else a row-major copy (as
    PyTorch's). Traced, the copy is a graph node (simplify keeps a copy of a permuted, sliced
    or expanded view; fusion inlines it into its consumers); it marks the result as fresh, so a
    later view() is checked against contiguous strides."""
    v = x._value
    if getattr(v, "traced", False):
        src = _strides_of(x) if STATE.tracer is not None else None
        return x if src is not None and src.is_contiguous() else apply(Op.COPY, x)
    if getattr(v, "flags", None) is None or v.flags.c_contiguous:
        return x
    return apply(Op.COPY, x)


def clone(x):
    return apply(Op.COPY, x)
