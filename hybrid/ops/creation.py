"""Tensor factories: from data, filled, ranges, identity, and their *_like forms."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType
from hybrid import errors
from hybrid.device import as_device, xp_of
from hybrid.dtypes import as_dtype, get_default_dtype
from hybrid.ops import core
from hybrid.ops.core import STATE, source, wrap
from hybrid.ops.shape import sizes


def _finish(t: Any, requires_grad: bool) -> Any:
    if requires_grad:
        t.requires_grad_(True)
    return t


def _infer_dtype(arr: np.ndarray, data: Any) -> DType:
    if arr.dtype.kind == "f" and not isinstance(data, np.ndarray):
        return get_default_dtype()  # Python floats -> the default dtype, as in PyTorch
    if arr.dtype.kind in "iu" and not isinstance(data, np.ndarray):
        return DType.int64
    if arr.dtype.kind == "b":
        return DType.bool
    return DType.from_np(arr.dtype)


def _to_numpy(data: Any) -> np.ndarray:
    if core.Tensor is not None and isinstance(data, core.Tensor):
        return data.numpy()
    if isinstance(data, (list, tuple)) and any(isinstance(d, (list, tuple)) or
                                               (core.Tensor and isinstance(d, core.Tensor))
                                               for d in data):
        parts = [_to_numpy(d) for d in data]
        if len({p.shape for p in parts}) > 1:  # ragged: numpy's bare ValueError otherwise
            shapes = ", ".join(str(list(p.shape)) for p in parts)
            raise errors.ShapeError(errors.at_user(
                f"tensor: the nested sequences have different shapes ({shapes}); every element "
                "of a dim must have the same length (pad them, or use a list of tensors)"))
        return np.array(parts)
    try:
        return np.asarray(data)
    except Exception as e:
        raise errors.DTypeError(errors.at_user(f"tensor: cannot make a tensor from {type(data).__name__}: {e}")) from None


def _from_array(arr: np.ndarray, dtype: DType, device: Any) -> Any:
    if STATE.tracer is not None:
        return source(Op.CONSTANT, None, value=Literal(arr.astype(dtype.np)), shape=arr.shape,
                      dtype=dtype)
    dev = as_device(device)
    if dev.type == "cpu":
        return wrap(np.array(arr, dtype=dtype.np, copy=True))
    return wrap(xp_of(dev).asarray(arr, dtype=dtype.np))


def tensor(data, *, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of `data` (nested lists, scalars, numpy arrays)."""
    if core.Tensor is not None and isinstance(data, core.Tensor):
        out = data.detach().clone().to(device=device or data.device)
        return _finish(out.to(dtype) if dtype is not None else out, requires_grad)
    if hasattr(data, "__dlpack__") and not isinstance(data, np.ndarray):
        from hybrid.dlpack import from_dlpack

        out = from_dlpack(data).clone()
        out = out.to(device=device) if device is not None else out
        return _finish(out.to(dtype) if dtype is not None else out, requires_grad)
    arr = _to_numpy(data)
    if arr.dtype.kind not in "biuf":
        raise errors.DTypeError(errors.at_user(f"tensor: unsupported data of dtype {arr.dtype}"))
    dt = as_dtype(dtype) if dtype is not None else _infer_dtype(arr, data)
    return _finish(_from_array(arr, dt, device), requires_grad)


def as_tensor(data, dtype=None, device=None):
    """A tensor sharing memory with `data` when it is an array of a matching dtype and device."""
    if core.Tensor is not None and isinstance(data, core.Tensor):
        return data.to(device=device or data.device, dtype=dtype or data.dtype)
    if isinstance(data, np.ndarray) and (device is None or as_device(device).type == "cpu"):
        if dtype is None or as_dtype(dtype).np == data.dtype:
            return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def from_numpy(arr: np.ndarray):
    """A tensor sharing memory with a numpy array (its dtype must be one hybrid supports)."""
    if not isinstance(arr, np.ndarray):
        raise errors.DTypeError(errors.at_user(f"from_numpy: expected a numpy.ndarray, got {type(arr).__name__}"))
    DType.from_np(arr.dtype)
    return wrap(arr)


def _fill(shape: tuple, value: Any, dtype: Any, device: Any, requires_grad: bool):
    dt = as_dtype(dtype) if dtype is not None else _value_dtype(value)
    if any(s < 0 for s in shape):
        raise errors.ShapeError(errors.at_user(f"negative dimension in shape {list(shape)}"))
    if not isinstance(value, (builtins.bool, builtins.int, builtins.float, np.number, np.bool_)):
        raise errors.DTypeError(errors.at_user(
            f"full: the fill value must be a number or a bool, got {type(value).__name__}"))
    check_size("full", shape, dt)
    try:
        t = source(Op.FULL, as_device(device), value=value, shape=shape, dtype=dt)
    except MemoryError:
        raise _no_memory("full", shape, dt) from None
    return _finish(t, requires_grad)


# numpy's limit: an array's bytes must fit a signed pointer-sized integer
_MAX_BYTES = 2**63 - 1


def check_size(op: str, shape: tuple, dt: DType) -> None:
    """ShapeError when a tensor of `shape` and `dt` could never exist (more bytes than an
    address space holds), instead of numpy's bare 'array is too big'."""
    nbytes = math.prod(shape) * dt.itemsize
    if nbytes > _MAX_BYTES:
        raise errors.ShapeError(errors.at_user(
            f"{op}: a {dt.name} tensor of shape {list(shape)} would need {nbytes:.3e} bytes, "
            "more than any array can hold; check the shape"))


def _no_memory(op: str, shape: tuple, dt: DType) -> errors.HybridError:
    nbytes = math.prod(shape) * dt.itemsize
    return errors.HybridMemoryError(errors.at_user(
        f"{op}: cannot allocate a {dt.name} tensor of shape {list(shape)} ({nbytes / 2**30:.1f} "
        "GiB): not enough memory"))


def _value_dtype(value: Any) -> DType:
    if isinstance(value, builtins.bool):
        return DType.bool
    if isinstance(value, builtins.int):
        return DType.int64
    return get_default_dtype()


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _fill(sizes(size), 0, dtype or get_default_dtype(), device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _fill(sizes(size), 1, dtype or get_default_dtype(), device, requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    return _fill(sizes((size,)), fill_value, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    # NOTE: zero-filled rather than uninitialized: the cost is small and results stay reproducible.
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


def _like(x, dtype, device):
    return dict(dtype=dtype or x.dtype, device=device or x.device)


def zeros_like(x, *, dtype=None, device=None, requires_grad=False):
    return zeros(x.shape, **_like(x, dtype, device), requires_grad=requires_grad)


def ones_like(x, *, dtype=None, device=None, requires_grad=False):
    return ones(x.shape, **_like(x, dtype, device), requires_grad=requires_grad)


def full_like(x, fill_value, *, dtype=None, device=None, requires_grad=False):
    return full(x.shape, fill_value, **_like(x, dtype, device), requires_grad=requires_grad)


def empty_like(x, *, dtype=None, device=None, requires_grad=False):
    return zeros_like(x, dtype=dtype, device=device, requires_grad=requires_grad)


def iota(shape: tuple, axis: int, dtype: DType, like: Any = None, device: Any = None):
    """Indices along `axis`, broadcast to `shape` (the iota primitive)."""
    dev = like.device if like is not None else as_device(device)
    check_size("arange", tuple(shape), dtype)
    try:
        return source(Op.IOTA, dev, shape=tuple(shape), axis=axis, dtype=dtype)
    except MemoryError:
        raise _no_memory("arange", tuple(shape), dtype) from None


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from start (inclusive) to end (exclusive) by step."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise errors.ShapeError(errors.at_user("arange: step must be nonzero"))
    n = max(0, math.ceil((end - start) / step))
    is_int = all(isinstance(v, builtins.int) for v in (start, end, step))
    dt = as_dtype(dtype) if dtype is not None else (DType.int64 if is_int else get_default_dtype())
    dev = as_device(device)
    idx = iota((n,), 0, DType.int64 if is_int else DType.float64, device=dev)
    if is_int:
        out = idx * step + start if (step, start) != (1, 0) else idx
    else:
        out = idx * float(step) + float(start)
    from hybrid.ops.elementwise import cast

    return _finish(cast(out, dt), requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    dt = as_dtype(dtype) if dtype is not None else get_default_dtype()
    if steps < 0:
        raise errors.ShapeError(errors.at_user(f"linspace: steps must be >= 0, got {steps}"))
    idx = iota((steps,), 0, DType.float64, device=as_device(device))
    step = (end - start) / (steps - 1) if steps > 1 else 0.0
    from hybrid.ops.elementwise import cast, where

    # PyTorch computes the second half from the end, so the last value is exactly `end`
    out = where(idx < (steps + 1) // 2, idx * step + start, end - (steps - 1 - idx) * step)
    return _finish(cast(out, dt), requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    m = n if m is None else m
    dev = as_device(device)
    r = iota((n, m), 0, DType.int64, device=dev)
    c = iota((n, m), 1, DType.int64, device=dev)
    from hybrid.ops.elementwise import cast

    return _finish(cast(r == c, as_dtype(dtype) if dtype else get_default_dtype()), requires_grad)


def scalar_tensor(value, dtype: DType, like: Any):
    from hybrid.ops.elementwise import scalar

    return scalar(value, dtype, like)
