"""Tensor methods of the extra ops (new_*, norms, scans, sorting, trig, linalg, dtype
conversions) and the in-place variants PyTorch has (sin_, unsqueeze_, t_, ...), bound onto
hybrid.Tensor when hybrid is imported."""

from __future__ import annotations

from typing import Any

from compiler.ir.types import DType
from hybrid import errors
from hybrid.ops import creation as cr
from hybrid.ops import elementwise as ew
from hybrid.ops import hyperbolic as hy
from hybrid.ops import matrix as mx
from hybrid.ops import norms as nm
from hybrid.ops import scan
from hybrid.ops import shape as sh
from hybrid.ops import sorting as so
from hybrid.ops.core import STATE


def _new_factory(fill: Any):
    def method(self, *size, dtype=None, device=None, requires_grad=False, **kw):
        if "size" in kw:
            size = (kw.pop("size"),)
        if kw:
            raise errors.DTypeError(
                errors.at_user(f"new_{fill.__name__}: unexpected arguments {sorted(kw)}"))
        return fill(*size, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    return method


def new_full(self, size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor of `size` filled with `fill_value`, with this tensor's dtype and device."""
    return cr.full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                   requires_grad=requires_grad)


def new_tensor(self, data, *, dtype=None, device=None, requires_grad=False):
    """A new tensor from `data`, with this tensor's dtype and device unless given."""
    return cr.tensor(data.detach() if hasattr(data, "detach") else data,
                     dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)


def _lifted_outside(x: Any) -> bool:
    """True inside a trace when x existed before it (its storage keeps its shape)."""
    # NOTE: reads Tracer._by_id (the lifted tensors), which hybrid/tracing.py keeps; a tensor not
    # lifted yet still holds its array, which is how one from before the trace looks.
    tracer = STATE.tracer
    return tracer is not None and (not getattr(x._value, "traced", False)
                                   or id(x) in getattr(tracer, "_by_id", {}))


def reshape_inplace(x: Any, fn, name: str) -> Any:
    """x becomes the view fn(x) (unsqueeze_, squeeze_, t_, transpose_): the same storage with
    new metadata, a version bump, and the view's autograd history."""
    from hybrid.tensor import _snapshot, check_inplace

    check_inplace(x)
    if _lifted_outside(x):
        raise errors.TraceError(
            errors.at_user(f"{name} on a tensor from outside the compiled function changes its "
                           "shape in place, which a compiled call cannot write back; use the "
                           "out-of-place form (x = x.unsqueeze(0)) instead")
        )
    src = _snapshot(x) if (STATE.grad and x._rg) or STATE.tracer is not None else x
    r = fn(src)
    x._value = r._value
    if STATE.grad or r._node is not None:
        if r._node is not x._node or r._rg != x._rg:
            if x._history is None:
                x._history = {}
            x._history[x._version] = (x._node, x._rg)
        x._node, x._rg = r._node, r._rg
    x._version += 1
    return x


def _inplace_method(f):
    from hybrid.tensor import inplace_op

    def method(self, *args, **kwargs):
        return inplace_op(self, lambda x: f(x, *args, **kwargs))

    return method


def _reshape_method(f, name):
    def method(self, *args, **kwargs):
        return reshape_inplace(self, lambda x: f(x, *args, **kwargs), name)

    method.__name__ = name
    return method


def bind(Tensor: Any) -> None:  # noqa: N803
    """Attach the methods to the Tensor class (called once by hybrid.tensor)."""
    from hybrid import linalg

    Tensor.new_zeros = _new_factory(cr.zeros)
    Tensor.new_ones = _new_factory(cr.ones)
    Tensor.new_empty = _new_factory(cr.empty)
    Tensor.new_full = new_full
    Tensor.new_tensor = new_tensor
    Tensor.byte = lambda self: ew.cast(self, DType.uint8)
    Tensor.char = lambda self: ew.cast(self, DType.int8)
    Tensor.short = lambda self: ew.cast(self, DType.int16)
    plain = {
        hy: "asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan arcsinh arccosh "
            "arctanh",
        scan: "cumsum cumprod",
        so: "sort argsort msort topk kthvalue unique bincount histc nonzero argwhere "
            "masked_select",
        mx: "tril triu cross addmm addmv baddbmm addbmm",
        nm: "norm dist",
    }
    for mod, names in plain.items():
        for n in names.split():
            setattr(Tensor, n, getattr(mod, n))
    Tensor.inverse = linalg.inv
    Tensor.det = linalg.det
    Tensor.logdet = linalg.logdet
    Tensor.slogdet = linalg.slogdet
    from hybrid import api_extra

    for n in ("pinverse", "cholesky", "qr", "svd"):
        setattr(Tensor, n, getattr(api_extra, n))
    Tensor.arctan2 = ew.atan2
    inplace = ("sin cos tan asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan "
               "log2 log10 exp2 floor_divide atan2 bitwise_and bitwise_or "
               "bitwise_xor bitwise_not logical_and logical_or logical_xor logical_not "
               "nan_to_num clip cumsum cumprod tril triu addmm baddbmm negative absolute "
               "multiply subtract divide").split()
    for n in inplace:
        if not hasattr(Tensor, n + "_"):
            setattr(Tensor, n + "_", _inplace_method(getattr(Tensor, n)))
    for n, f in (("unsqueeze", sh.unsqueeze), ("squeeze", sh.squeeze), ("t", sh.t),
                 ("transpose", sh.transpose)):
        setattr(Tensor, n + "_", _reshape_method(f, n + "_"))
