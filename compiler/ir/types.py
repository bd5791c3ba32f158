"""Element types and tensor types of the IR: `DType` and `TensorType` (static shape + dtype)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    """An element type. Its value is the short name used when printing the IR."""

    bool = "b8"
    uint8 = "u8"
    int8 = "i8"
    int16 = "i16"
    int32 = "i32"
    int64 = "i64"
    float16 = "f16"
    bfloat16 = "bf16"
    float32 = "f32"
    float64 = "f64"

    @property
    def short(self) -> str:
        """The short name printed in the IR, e.g. `f32`."""
        return self.value

    @property
    def np(self) -> np.dtype:
        """The numpy dtype with the same layout."""
        return _TO_NP[self]

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return _TO_NP[self].itemsize

    @property
    def is_floating(self) -> bool:
        """True for float16/bfloat16/float32/float64."""
        return self in _FLOATS

    @property
    def is_integer(self) -> bool:
        """True for uint8/int8/int16/int32/int64 (not bool)."""
        return self in _INTS

    @property
    def is_bool(self) -> bool:
        """True for bool."""
        return self is DType.bool

    def __repr__(self) -> str:
        return f"hybrid.{self.name}"

    __str__ = __repr__

    @staticmethod
    def from_np(dtype: object) -> DType:
        """The DType of a numpy (or CuPy) dtype; TypeError for one hybrid does not support."""
        found = _FROM_NP.get(dtype)  # numpy dtype objects: no conversion needed
        if found is not None:
            return found
        try:
            return _FROM_NP[np.dtype(dtype)]
        except (KeyError, TypeError):
            names = ", ".join(d.name for d in DType)
            raise TypeError(f"dtype {dtype} is not supported; use one of: {names}") from None


_FLOATS = frozenset({DType.float16, DType.bfloat16, DType.float32, DType.float64})
_INTS = frozenset({DType.uint8, DType.int8, DType.int16, DType.int32, DType.int64})
# NOTE: the dtypes the native CPU backend (code generator and C++ runtime) handles; graphs with
# any other dtype run on the reference interpreter (see compiler.backend_cpu).
NATIVE = frozenset({DType.bool, DType.int32, DType.int64, DType.float16, DType.float32,
                    DType.float64})
# NOTE: bfloat16 is ml_dtypes' numpy dtype (the one JAX and TensorFlow use); no backend
# generates code for it yet: graphs with it run on the reference interpreter
_TO_NP = {d: np.dtype(ml_dtypes.bfloat16 if d is DType.bfloat16 else d.name) for d in DType}
_FROM_NP = {v: k for k, v in _TO_NP.items()}


Shape = tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TensorType:
    """A static shape and an element type: printed as `f32[128,512]`."""

    shape: Shape
    dtype: DType

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    def __str__(self) -> str:
        return f"{self.dtype.short}[{','.join(map(str, self.shape))}]"


class OpError(Exception):
    """A primitive was given inputs its shape/dtype rule rejects (raised by `infer`)."""

    def __init__(self, op_name: str, message: str, kind: type[Exception] = ValueError):
        super().__init__(f"{op_name}: {message}")
        self.op_name = op_name
        self.message = message
        self.kind = kind


def broadcast_shapes(op_name: str, *shapes: Shape) -> Shape:
    """numpy broadcasting of shapes; OpError naming the shapes when they do not broadcast."""
    ndim = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(-ndim, 0):
        size = 1
        for s in shapes:
            d = s[i] if -i <= len(s) else 1
            if d != 1:
                if size != 1 and d != size:
                    shown = " and ".join("[" + ",".join(map(str, s)) + "]" for s in shapes)
                    raise OpError(
                        op_name,
                        f"shapes {shown} cannot be broadcast together "
                        f"(dimension {i}: {size} vs {d})",
                    )
                size = d
        out.append(size)
    return tuple(out)
