"""Matrix products with PyTorch's matmul semantics (1-d operands, broadcast batch dims)."""

from __future__ import annotations

from compiler.ir.ops import Op
from compiler.ir.types import OpError, broadcast_shapes
from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import shape as sh
from hybrid.ops.core import apply


def _t(x) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


def matmul(input, other):
    """a @ b: dot (1-d, 1-d), matrix-vector, and batched matrix products with broadcasting."""
    a, b = input, other
    ew.need_tensor("matmul", a)
    ew.need_tensor("matmul", b)
    if a.ndim == 0 or b.ndim == 0:
        raise errors.ShapeError(
            errors.at_user(f"matmul: both operands need at least 1 dim, got {_t(a)} and {_t(b)}; "
                           "use * for scalars")
        )
    if a.dtype is not b.dtype:
        raise errors.DTypeError(
            errors.at_user(f"matmul: dtypes differ ({_t(a)} and {_t(b)}); cast one with .to(dtype)")
        )
    if a.dtype.is_bool:
        raise errors.DTypeError(errors.at_user(f"matmul: not defined for bool ({_t(a)} @ {_t(b)})"))
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise errors.ShapeError(
            errors.at_user(f"matmul: cannot multiply {_t(a)} by {_t(b)} ({k_a} != {k_b})")
        )
    if a.ndim == 2 and b.ndim == 2:
        return apply(Op.MATMUL, a, b)
    a2 = sh.unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = sh.unsqueeze(b, -1) if b.ndim == 1 else b
    try:
        batch = broadcast_shapes("matmul", a2.shape[:-2], b2.shape[:-2])
    except OpError:
        raise errors.ShapeError(
            errors.at_user(f"matmul: batch dims of {_t(a)} and {_t(b)} do not broadcast")
        ) from None
    a2 = sh.expand(a2, batch + a2.shape[-2:])
    b2 = sh.expand(b2, batch + b2.shape[-2:])
    out = apply(Op.MATMUL, a2, b2)
    if b.ndim == 1:
        out = sh.squeeze(out, -1)
    if a.ndim == 1:
        out = sh.squeeze(out, -2 if b.ndim > 1 else -1)
    return out


def mm(input, mat2):
    a, b = input, mat2
    if a.ndim != 2 or b.ndim != 2:
        raise errors.ShapeError(errors.at_user(f"mm: expects 2-d tensors, got {_t(a)} and {_t(b)}"))
    return matmul(a, b)


def bmm(input, mat2):
    a, b = input, mat2
    if a.ndim != 3 or b.ndim != 3:
        raise errors.ShapeError(errors.at_user(f"bmm: expects 3-d tensors, got {_t(a)} and {_t(b)}"))
    return matmul(a, b)


def dot(input, other):
    a, b = input, other
    if a.ndim != 1 or b.ndim != 1:
        raise errors.ShapeError(errors.at_user(f"dot: expects 1-d tensors, got {_t(a)} and {_t(b)}"))
    return matmul(a, b)


def outer(input, vec2):
    a, b = input, vec2
    return sh.unsqueeze(a, 1) * sh.unsqueeze(b, 0)
