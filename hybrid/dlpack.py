"""Zero-copy exchange with numpy, CuPy and PyTorch through DLPack."""

from __future__ import annotations

from typing import Any

import numpy as np

from hybrid import errors
from hybrid.ops.core import wrap

_DL_CPU, _DL_CUDA = 1, 2


def from_dlpack(obj: Any):
    """A tensor sharing memory with any object that implements `__dlpack__` (numpy, CuPy, torch)."""
    if not hasattr(obj, "__dlpack__"):
        raise errors.DTypeError(
            errors.at_user(f"from_dlpack: {type(obj).__name__} does not implement __dlpack__")
        )
    kind = obj.__dlpack_device__()[0] if hasattr(obj, "__dlpack_device__") else _DL_CPU
    if kind == _DL_CPU:
        arr = np.from_dlpack(obj)
    elif kind == _DL_CUDA:
        from hybrid.device import _cupy

        arr = _cupy().from_dlpack(obj)
    else:
        raise errors.DeviceError(errors.at_user(f"from_dlpack: unsupported DLPack device type {kind}"))
    from compiler.ir.types import DType

    DType.from_np(arr.dtype)
    return wrap(arr)


def to_dlpack(t: Any):
    """A DLPack capsule of the tensor's data (prefer passing the tensor itself to from_dlpack)."""
    return t.__dlpack__()
