"""PyTorch-like printing of tensors: `tensor([[1., 2.], [3., 4.]], dtype=hybrid.float64)`."""

from __future__ import annotations

import numpy as np

from compiler.ir.types import DType
from hybrid.dtypes import get_default_dtype


def _body(arr: np.ndarray) -> str:
    prefix = "tensor("
    kind = arr.dtype.kind
    opts = dict(separator=", ", prefix=prefix, threshold=1000, edgeitems=3)
    if kind == "f":
        finite = (arr[np.isfinite(arr)] if arr.size else arr).astype(np.float64)
        if finite.size and np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e8:
            opts["formatter"] = {"float_kind": lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)}
        else:
            opts["precision"] = 4
            opts["floatmode"] = "fixed"
            if finite.size and (np.abs(finite).max() >= 1e8 or
                                (np.abs(finite[finite != 0]).min(initial=1) < 1e-4)):
                opts["formatter"] = {"float_kind": lambda v: f"{v:.4e}"}
    if kind == "b":
        width = 4 if arr.all() else 5  # PyTorch right-aligns: tensor([ True, False])
        opts["formatter"] = {"bool": lambda v: ("True" if v else "False").rjust(width)}
    return prefix + np.array2string(arr, **opts)


def tensor_repr(t) -> str:
    v = t._value
    if getattr(v, "traced", False):
        return f"tensor(<traced {v}>{', requires_grad=True' if t._rg else ''})"
    arr = v if isinstance(v, np.ndarray) else v.get()
    dt = t.dtype
    if dt is DType.bfloat16:  # numpy prints ml_dtypes' bfloat16 as an opaque kind: as float32
        arr = arr.astype(np.float32)
    extras = []
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    implicit = (dt is get_default_dtype()) or dt in (DType.int64, DType.bool)
    if arr.size == 0:
        body = f"tensor([], size={tuple(arr.shape)}" if arr.ndim > 1 else "tensor(["
        body += "" if arr.ndim > 1 else "]"
    else:
        body = _body(arr)
    if not implicit:
        extras.append(f"dtype=hybrid.{dt.name}")
    if t._node is not None:
        extras.append(f"grad_fn=<{t._node.name()}>")
    elif t._rg:
        extras.append("requires_grad=True")
    return body + "".join(", " + e for e in extras) + ")"
