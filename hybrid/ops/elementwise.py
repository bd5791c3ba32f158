"""Elementwise ops with PyTorch's type promotion and broadcasting, composed of primitives."""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from compiler.ir.ops import OPS, Op
from compiler.ir.types import DType
from hybrid import errors
from hybrid.device import array_module
from hybrid.dtypes import get_default_dtype, result_type
from hybrid.ops import core
from hybrid.ops.core import STATE, apply, wrap


def is_tensor(x: Any) -> bool:
    return isinstance(x, core.Tensor)


def scalar(value: Any, dtype: DType, like: Any) -> Any:
    """A 0-d tensor holding a Python scalar, on the device of tensor `like`."""
    if STATE.tracer is not None:
        return core.source(Op.FULL, None, value=value, shape=(), dtype=dtype)
    v = like._value
    xp = np if v.__class__ is core.ndarray else _xp(v)
    return wrap(xp.asarray(value, dtype=dtype.np))


_xp = array_module


def need_tensor(op: str, x: Any) -> None:
    """DTypeError unless `x` is a hybrid Tensor (a numpy array, a list, ... are refused with
    what to do, as PyTorch's ops refuse numpy arrays)."""
    if not isinstance(x, core.Tensor):
        kind = f"{type(x).__module__}.{type(x).__name__}" if isinstance(x, np.ndarray) else \
            type(x).__name__
        raise errors.DTypeError(errors.at_user(
            f"{op}: expected a hybrid Tensor, got {kind}; wrap it with hybrid.tensor(...) "
            "(or hybrid.from_numpy(...) to share a numpy array's memory)"))


def cast(x: Any, dtype: DType) -> Any:
    """`x` as `dtype` (the same tensor when it already is)."""
    if x.dtype is dtype:
        return x
    need_tensor("cast", x)
    return apply(Op.CAST, x, dtype=dtype)


def operand(x: Any, dtype: DType, other: Any) -> Any:
    """`x` (a tensor or a Python scalar) as a tensor of `dtype`."""
    if is_tensor(x):
        return cast(x, dtype)
    if not isinstance(x, (builtins.bool, builtins.int, builtins.float)):
        if isinstance(x, np.generic) or (isinstance(x, np.ndarray) and x.ndim == 0):
            x = x.item()
        else:
            raise errors.DTypeError(
                errors.at_user(
                    f"expected a tensor or a Python number, got {type(x).__name__}; "
                    "wrap arrays with hybrid.tensor(...)"
                )
            )
    return scalar(x, dtype, other)


def binary(op: Op, a: Any, b: Any, dtype: DType | None = None) -> Any:
    """`op(a, b)` after promoting both to their PyTorch result type (or `dtype`)."""
    if dtype is None and isinstance(a, core.Tensor) and isinstance(b, core.Tensor):
        if a._value.dtype is b._value.dtype:  # nothing to promote (the common case)
            return apply(op, a, b)
    if not is_tensor(a) and not is_tensor(b):
        raise errors.DTypeError(errors.at_user(f"{op.value}: needs at least one tensor operand"))
    dt = dtype or result_type(a, b)
    anchor = a if is_tensor(a) else b
    return apply(op, operand(a, dt, anchor), operand(b, dt, anchor))


def float_binary(op: Op, a: Any, b: Any) -> Any:
    """A binary op defined on floats: integer operands promote to the default float dtype."""
    dt = result_type(a, b)
    return binary(op, a, b, dt if dt.is_floating else get_default_dtype())


def to_float(x: Any) -> Any:
    """`x`, cast to the default float dtype if it is an integer or bool tensor."""
    try:
        floating = x.dtype.is_floating
    except AttributeError:  # not a hybrid Tensor: say so
        need_tensor("op", x)
        raise
    return x if floating else cast(x, get_default_dtype())


def unary(op: Op, x: Any) -> Any:
    return apply(op, x)


def unary_float(op: Op, x: Any) -> Any:
    return apply(op, to_float(x))


# --- the public functions (also bound as Tensor methods) -------------------------------------


def add(a, b, *, alpha=1):
    return binary(Op.ADD, a, b if alpha == 1 else b * alpha)


def sub(a, b, *, alpha=1):
    if is_tensor(a) and a.dtype.is_bool:
        raise errors.DTypeError(
            errors.at_user("sub: subtracting bool tensors is not supported; use logical_xor or ~")
        )
    return binary(Op.SUB, a, b if alpha == 1 else b * alpha)


def mul(a, b):
    return binary(Op.MUL, a, b)


def div(a, b, *, rounding_mode=None):
    if rounding_mode is None:
        return float_binary(Op.DIV, a, b)
    if rounding_mode == "floor":
        return floor_divide(a, b)
    if rounding_mode == "trunc":
        q = float_binary(Op.DIV, a, b)
        dt = result_type(a, b)
        return trunc(q) if dt.is_floating else cast(trunc(q), dt)
    raise errors.ShapeError(errors.at_user(f"div: rounding_mode must be None, 'floor' or 'trunc', "
                                           f"got {rounding_mode!r}"))


def floor_divide(a, b):
    dt = result_type(a, b)
    if dt.is_floating:
        return floor(binary(Op.DIV, a, b, dt))
    return binary(Op.FLOORDIV, a, b, dt)


def remainder(a, b):
    return binary(Op.REMAINDER, a, b)


def pow(a, b):  # noqa: A001
    if is_tensor(a) and not is_tensor(b) and isinstance(b, (builtins.int, builtins.float)):
        if isinstance(b, builtins.int) and b < 0 and not a.dtype.is_floating:
            raise errors.ShapeError(errors.at_user(
                f"pow: Integers to negative integer powers are not allowed ({a.dtype.name} "
                f"tensor ** {b}, as PyTorch); use a float tensor, e.g. x.float() ** {b}"))
        if b == 2:
            return a * a
        if b == 1:
            return a * 1
        if b == 0.5 and a.dtype.is_floating:
            return apply(Op.SQRT, a)
    return binary(Op.POW, a, b)


def maximum(a, b):
    return binary(Op.MAXIMUM, a, b)


def minimum(a, b):
    return binary(Op.MINIMUM, a, b)


def atan2(a, b):
    return float_binary(Op.ATAN2, a, b)


def _bitwise(op: Op, a, b):
    dt = result_type(a, b)
    if dt.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"{op.value}: needs bool or integer tensors, got {dt.name}")
        )
    return binary(op, a, b, dt)


def bitwise_and(a, b):
    return _bitwise(Op.AND, a, b)


def bitwise_or(a, b):
    return _bitwise(Op.OR, a, b)


def bitwise_xor(a, b):
    return _bitwise(Op.XOR, a, b)


def _as_bool(x):
    return cast(x, DType.bool) if is_tensor(x) else builtins.bool(x)


def logical_and(a, b):
    return binary(Op.AND, _as_bool(a), _as_bool(b), DType.bool)


def logical_or(a, b):
    return binary(Op.OR, _as_bool(a), _as_bool(b), DType.bool)


def logical_xor(a, b):
    return binary(Op.XOR, _as_bool(a), _as_bool(b), DType.bool)


def logical_not(x):
    return apply(Op.NOT, cast(x, DType.bool))


def bitwise_not(x):
    if x.dtype.is_bool:
        return apply(Op.NOT, x)
    if x.dtype.is_integer:
        return -x - 1
    raise errors.DTypeError(errors.at_user(f"bitwise_not: needs a bool or integer tensor, got {x.dtype.name}"))


def eq(a, b):
    return binary(Op.EQ, a, b, result_type(a, b))


def ne(a, b):
    return binary(Op.NE, a, b, result_type(a, b))


def lt(a, b):
    return binary(Op.LT, a, b, result_type(a, b))


def le(a, b):
    return binary(Op.LE, a, b, result_type(a, b))


def gt(a, b):
    return binary(Op.GT, a, b, result_type(a, b))


def ge(a, b):
    return binary(Op.GE, a, b, result_type(a, b))


def neg(x):
    if x.dtype.is_bool:
        raise errors.DTypeError(errors.at_user("neg: negating a bool tensor is not supported; use ~"))
    return apply(Op.NEG, x)


def abs(x):  # noqa: A001
    return x if x.dtype.is_bool else apply(Op.ABS, x)


def sign(x):
    return x if x.dtype.is_bool else apply(Op.SIGN, x)


def _rounding(op: Op):
    def fn(x):
        return apply(op, x) if x.dtype.is_floating else x

    fn.__name__ = op.value
    return fn


floor = _rounding(Op.FLOOR)
ceil = _rounding(Op.CEIL)
trunc = _rounding(Op.TRUNC)
round = _rounding(Op.ROUND)  # noqa: A001


def _float_unary(op: Op):
    def fn(x):
        return apply(op, to_float(x))

    fn.__name__ = fn.__qualname__ = op.value
    fn.__doc__ = f"Elementwise {op.value}; integer and bool tensors promote to the default float."
    return fn


# The public functions made from the op table (compiler/ir/ops.py rows with frontend="float"):
# exp, log, sqrt, erf, ... Each is also bound as a Tensor method and an in-place method
# (hybrid/tensor.py), and exported with out= and as an in-place function form (api_extra.py).
FROM_TABLE = {op.value: _float_unary(op) for op, d in OPS.items() if d.frontend == "float"}
globals().update(FROM_TABLE)


def tan(x):
    x = to_float(x)
    return apply(Op.SIN, x) / apply(Op.COS, x)


def log2(x):
    return apply(Op.LOG, to_float(x)) * (1 / math.log(2))


def log10(x):
    return apply(Op.LOG, to_float(x)) * (1 / math.log(10))


def exp2(x):
    return apply(Op.EXP, to_float(x) * math.log(2))


def square(x):
    return x * x


def relu(x):
    # NOTE: where, not maximum: PyTorch's relu has gradient 0 at 0 (maximum splits ties); and
    # x <= 0 rather than x > 0 so that NaN stays NaN, as PyTorch's relu keeps it.
    return where(x <= 0, 0, x)


def where(cond, a, b):
    """`a` where `cond` else `b`, broadcast, promoted like a binary op."""
    if not is_tensor(cond):
        raise errors.DTypeError(errors.at_user("where: the condition must be a bool tensor"))
    if cond.dtype is not DType.bool:  # as PyTorch: no silent truthiness of numbers
        raise errors.DTypeError(errors.at_user(
            f"where: expected the condition to be a bool tensor, got {core.type_of(cond)}; compare "
            "it (cond != 0) or convert it (cond.bool())"))
    dt = result_type(a, b)
    return apply(Op.WHERE, cond, operand(a, dt, cond), operand(b, dt, cond))


def clamp(x, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise errors.ShapeError(errors.at_user("clamp: give at least one of min and max"))
    if min is not None:
        x = maximum(x, min)
    if max is not None:
        x = minimum(x, max)
    return x


def isnan(x):
    return x != x


def isinf(x):
    return abs(x) == math.inf if x.dtype.is_floating else x != x


def isfinite(x):
    return logical_not(isnan(x) | isinf(x)) if x.dtype.is_floating else x == x


def lerp(a, b, w):
    return a + (b - a) * w


def nan_to_num(x, nan=0.0, posinf=None, neginf=None):
    if not x.dtype.is_floating:
        return x
    info = np.finfo(x.dtype.np)
    x = where(isnan(x), nan, x)
    x = where(x == math.inf, info.max if posinf is None else posinf, x)
    return where(x == -math.inf, info.min if neginf is None else neginf, x)
