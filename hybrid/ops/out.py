"""The `out=` keyword of PyTorch's functions: compute, then write the result into `out` (resized,
with PyTorch's warning, when its shape differs and it is not empty) and return `out`."""

from __future__ import annotations

import functools
import warnings
from typing import Any

from hybrid import errors
from hybrid.ops import core
from hybrid.ops.core import STATE


def _tensors(args: tuple, kwargs: dict) -> list:
    found = []
    for a in list(args) + list(kwargs.values()):
        if isinstance(a, core.Tensor):
            found.append(a)
        elif isinstance(a, (list, tuple)):
            found.extend(t for t in a if isinstance(t, core.Tensor))
    return found


def write_out(name: str, out: Any, result: Any, inputs: list) -> Any:
    """Write `result` into tensor `out` as PyTorch's out= does, and return `out`."""
    from hybrid.tensor import inplace

    if not isinstance(out, core.Tensor):
        raise errors.DTypeError(
            errors.at_user(f"{name}: out= must be a tensor, got {type(out).__name__}")
        )
    if STATE.grad and (out._rg or any(t._rg for t in inputs)):
        raise errors.AutogradError(
            errors.at_user(f"{name}(): functions with out=... arguments don't support automatic "
                           "differentiation, but one of the arguments requires grad; drop out= "
                           "(use the returned tensor) or run under hybrid.no_grad()")
        )
    if tuple(out.shape) != tuple(result.shape):
        if STATE.tracer is not None:
            raise errors.TraceError(
                errors.at_user(f"{name}: out= of shape {list(out.shape)} does not match the "
                               f"result's shape {list(result.shape)}; resizing out= is not "
                               "supported inside @hybrid.compile")
            )
        if out._base is not None:
            raise errors.ShapeError(
                errors.at_user(f"{name}: out= is a view of shape {list(out.shape)} and cannot be "
                               f"resized to {list(result.shape)}")
            )
        if out.numel() != 0:
            warnings.warn(
                f"{name}: an output with one or more elements was resized since it had shape "
                f"{list(out.shape)}, which does not match the required output shape "
                f"{list(result.shape)} (as PyTorch, which deprecates this)", UserWarning,
                stacklevel=3)
        _check_cast(name, out, result)
        out._value = result._value.astype(out._value.dtype, copy=True)
        out._version += 1
        return out
    _check_cast(name, out, result)
    inplace(out, result)
    return out


def _check_cast(name: str, out: Any, result: Any) -> Any:
    rd, od = result.dtype, out.dtype
    if (rd.is_floating and not od.is_floating) or (not rd.is_bool and od.is_bool):
        raise errors.DTypeError(
            errors.at_user(f"{name}: result type {rd.name} can't be cast to the desired output "
                           f"type {od.name} (out=)")
        )
    return out


def with_out(fn: Any, name: str | None = None) -> Any:
    """`fn` accepting an `out=` keyword."""
    op = name or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, out: Any = None, **kwargs: Any) -> Any:
        if out is None:
            return fn(*args, **kwargs)
        return write_out(op, out, fn(*args, **kwargs), _tensors(args, kwargs))

    return wrapper


def factory_with_out(fn: Any, name: str | None = None) -> Any:
    """A factory (zeros, rand, ...) accepting `out=`: the result takes out's dtype and device
    unless dtype= is given."""
    op = name or fn.__name__

    @functools.wraps(fn)
    def wrapper(*args: Any, out: Any = None, **kwargs: Any) -> Any:
        if out is None:
            return fn(*args, **kwargs)
        kwargs.setdefault("dtype", out.dtype)
        kwargs.setdefault("device", out.device)
        return write_out(op, out, fn(*args, **kwargs), [])

    return wrapper
