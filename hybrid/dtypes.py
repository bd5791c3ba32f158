"""hybrid's dtypes and PyTorch's type promotion (dimensioned tensors > 0-d tensors > Python scalars)."""

from __future__ import annotations

import builtins

from compiler.ir.types import DType

bool_ = DType.bool
uint8 = DType.uint8
int8 = DType.int8
int16 = DType.int16
int32 = DType.int32
int64 = DType.int64
float16 = DType.float16
bfloat16 = DType.bfloat16
float32 = DType.float32
float64 = DType.float64

# aliases PyTorch users type
int = int32  # noqa: A001  (torch.int is int32)
long = int64
short = int16
half = float16
float = float32  # noqa: A001
double = float64

_ORDER = {DType.bool: 0, DType.uint8: 1, DType.int8: 1, DType.int16: 2, DType.int32: 3,
          DType.int64: 4, DType.float16: 5, DType.bfloat16: 5, DType.float32: 6,
          DType.float64: 7}
_default = DType.float32


def get_default_dtype() -> DType:
    """The dtype of Python floats and of factories called without a dtype (float32)."""
    return _default


def set_default_dtype(dtype: DType) -> None:
    """Set the default floating dtype (float32 or float64, as in PyTorch)."""
    global _default
    if not isinstance(dtype, DType) or not dtype.is_floating:
        raise TypeError(f"set_default_dtype: expected a floating dtype, got {dtype!r}")
    _default = dtype


def promote_types(a: DType | None, b: DType | None) -> DType | None:
    """The smallest dtype both promote to: bool < uint8, int8 < int16 < int32 < int64 < float16 <
    float32 < float64 (uint8 with int8 gives int16, float16 with bfloat16 float32, as in
    PyTorch)."""
    if a is None:
        return b
    if b is None:
        return a
    if {a, b} == {DType.uint8, DType.int8}:
        return DType.int16
    if {a, b} == {DType.float16, DType.bfloat16}:  # neither holds the other: float32, as PyTorch
        return DType.float32
    return a if _ORDER[a] >= _ORDER[b] else b


def _combine(higher: DType | None, lower: DType | None) -> DType | None:
    # PyTorch's combine_categories: a lower-priority group only matters if its category is higher.
    if higher is None:
        return lower
    if lower is None or higher.is_floating:
        return higher
    if higher.is_bool or lower.is_floating:
        return promote_types(higher, lower)
    return higher


def scalar_dtype(x: object) -> DType:
    """The dtype a Python scalar takes as an operand: bool, int64, or the default float."""
    if x is True or x is False:
        return DType.bool
    if isinstance(x, builtins.int):
        return DType.int64
    return _default


def result_type(*operands: object) -> DType:
    """PyTorch's result type of an op on tensors and Python scalars."""
    dim = zero = wrapped = None
    for x in operands:
        d = getattr(x, "dtype", None)
        if isinstance(d, DType):
            if x.ndim:
                dim = promote_types(dim, d)
            else:
                zero = promote_types(zero, d)
        else:
            wrapped = promote_types(wrapped, scalar_dtype(x))
    return _combine(dim, _combine(zero, wrapped))


def as_dtype(dtype: object) -> DType:
    """A DType from a DType, a numpy dtype, or a name like 'float32'."""
    if isinstance(dtype, DType):
        return dtype
    if isinstance(dtype, str) and hasattr(DType, dtype):
        return DType[dtype]
    if dtype is builtins.float:
        return DType.float64
    if dtype is builtins.int:
        return DType.int64
    if dtype is builtins.bool:
        return DType.bool
    try:
        return DType.from_np(dtype)
    except TypeError as e:  # e.g. complex64, float128, str: a DTypeError at the user's line
        from hybrid import errors

        raise errors.DTypeError(errors.at_user(str(e))) from None


class finfo:  # noqa: N801  (PyTorch's name)
    """Machine limits of a floating dtype (torch.finfo): bits, eps, max, min, tiny, resolution."""

    def __init__(self, type: object = None) -> None:  # noqa: A002
        d = _default if type is None else as_dtype(type)
        if not d.is_floating:
            raise TypeError(f"finfo: expected a floating dtype, got {d!r}; use hybrid.iinfo")
        import numpy as np

        info = np.finfo(d.np)
        self.dtype = d.name
        self.bits = info.bits
        self.eps = builtins.float(info.eps)
        self.max = builtins.float(info.max)
        self.min = builtins.float(info.min)
        self.tiny = self.smallest_normal = builtins.float(info.tiny)
        self.resolution = 10.0 ** -info.precision

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min}, max={self.max}, "
                f"eps={self.eps}, smallest_normal={self.tiny}, tiny={self.tiny}, "
                f"dtype={self.dtype})")


class iinfo:  # noqa: N801  (PyTorch's name)
    """Machine limits of an integer dtype (torch.iinfo): bits, max, min."""

    def __init__(self, type: object) -> None:  # noqa: A002
        d = as_dtype(type)
        if not d.is_integer:
            raise TypeError(f"iinfo: expected an integer dtype, got {d!r}; use hybrid.finfo")
        import numpy as np

        info = np.iinfo(d.np)
        self.dtype = d.name
        self.bits = info.bits
        self.max = builtins.int(info.max)
        self.min = builtins.int(info.min)

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"
