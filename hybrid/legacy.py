"""Old PyTorch spellings that tutorials still use, as thin aliases: `hybrid.Tensor(*sizes)`,
`FloatTensor`/`DoubleTensor`/`LongTensor`/`IntTensor`/`BoolTensor` constructors (and isinstance
checks by dtype), and `hybrid.autograd.Variable(t, requires_grad=)`."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.ir.types import DType
from hybrid import errors


def _is_size(args: tuple) -> bool:
    return bool(args) and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool)
                              for a in args)


def construct(args: tuple, kwargs: dict, dtype: DType | None) -> Any:
    """What `Tensor(...)` / `FloatTensor(...)` build: `(*sizes)` -> a zero-filled tensor of that
    shape (PyTorch leaves it uninitialized), `(data)` -> a copy of data, `()` -> shape (0,)."""
    from hybrid.dtypes import get_default_dtype
    from hybrid.ops.creation import tensor, zeros

    dt = dtype or get_default_dtype()
    device = kwargs.pop("device", None)
    if kwargs:
        raise errors.DTypeError(errors.at_user(
            f"Tensor(): unexpected keyword arguments {sorted(kwargs)}; only device= is accepted "
            "(use hybrid.tensor(data, dtype=..., requires_grad=...) for more)"))
    if not args:
        return zeros(0, dtype=dt, device=device)
    if _is_size(args):
        if any(int(a) < 0 for a in args):
            raise errors.ShapeError(errors.at_user(
                f"Tensor(*sizes): negative dimension in {list(args)}"))
        return zeros(tuple(int(a) for a in args), dtype=dt, device=device)
    if len(args) != 1:
        raise errors.DTypeError(errors.at_user(
            f"Tensor(): expected sizes (ints) or one sequence of data, got {len(args)} "
            f"arguments of types {[type(a).__name__ for a in args]}"))
    return tensor(args[0], dtype=dt, device=device)


class _LegacyType(type):
    """`isinstance(x, hybrid.LongTensor)` checks the dtype, as PyTorch's tensor types do."""

    _dtype: DType

    def __instancecheck__(cls, obj: object) -> bool:
        from hybrid.tensor import Tensor

        return isinstance(obj, Tensor) and obj.dtype is cls._dtype

    def __repr__(cls) -> str:
        return f"<class 'hybrid.{cls.__name__}'>"


def _legacy(name: str, dtype: DType) -> type:
    def new(cls: type, *args: Any, **kwargs: Any) -> Any:
        return construct(args, dict(kwargs), dtype)

    # NOTE: `dtype` (a numpy dtype) lets hybrid.as_dtype / np.dtype read the class as its dtype,
    # so `x.type(hybrid.LongTensor)` casts as in PyTorch.
    return _LegacyType(name, (), {"__new__": new, "_dtype": dtype, "dtype": np.dtype(dtype.np),
                                  "__doc__": f"Legacy constructor of {dtype.name} tensors."})


FloatTensor = _legacy("FloatTensor", DType.float32)
DoubleTensor = _legacy("DoubleTensor", DType.float64)
HalfTensor = _legacy("HalfTensor", DType.float16)
LongTensor = _legacy("LongTensor", DType.int64)
IntTensor = _legacy("IntTensor", DType.int32)
BoolTensor = _legacy("BoolTensor", DType.bool)
ByteTensor = _legacy("ByteTensor", DType.uint8) if hasattr(DType, "uint8") else None


class _VariableType(type):
    def __instancecheck__(cls, obj: object) -> bool:
        from hybrid.tensor import Tensor

        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableType):
    """`Variable(t, requires_grad=False)`: since PyTorch 0.4 a plain tensor; here a tensor that
    shares `t`'s storage, a leaf that requires grad when asked."""

    def __new__(cls, data: Any, requires_grad: bool = False, volatile: bool = False) -> Any:
        from hybrid.ops.creation import tensor
        from hybrid.tensor import Tensor

        t = data.detach() if isinstance(data, Tensor) else tensor(data)
        if requires_grad:
            t.requires_grad_(True)
        return t
