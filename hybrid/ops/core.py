"""Dispatch: run a primitive on tensors, eagerly (numpy / CuPy reference implementations) or into a
trace, and record it on the autograd tape. Every frontend op goes through `apply` or `source`."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from compiler.ir.ops import OPS, Op, OpError, impls, infer_type
from compiler.ir.types import DType, TensorType
from hybrid import errors

ndarray = np.ndarray
NP = impls(np)


_VERIFY = os.environ.get("HYBRID_VERIFY", "") not in ("", "0")


class _State(threading.local):
    """Dispatch state, one per thread as PyTorch's grad mode: a trace on one thread never
    records (or changes the grad mode of) another thread's eager ops."""

    def __init__(self) -> None:
        self.grad = True  # grad mode: record ops on the tape
        self.tracer: Any = None  # this thread's active trace, or None (eager)
        self.fast = True  # eager numpy fast paths allowed (no trace active)
        self.verify = _VERIFY  # HYBRID_VERIFY / hybrid.config.verify (see set_verify)


STATE = _State()

# Ops whose vjp rule uses the op's output; only those keep it alive on the tape. Filled by the
# rules' registration (hybrid/ops/vjp.py: rule(..., saves_output=True)), imported by hybrid.tensor.
SAVES_OUTPUT: set[Op] = set()


class TapeNode:
    """A tape entry (PyTorch's grad_fn): the op, its inputs and their versions, attributes."""

    __slots__ = ("op", "inputs", "versions", "attrs", "out", "__weakref__")

    def __init__(self, op: Op, inputs: tuple, attrs: dict, out: Any):
        self.op = op
        self.inputs = inputs
        self.versions = tuple(x._version for x in inputs)
        self.attrs = attrs
        self.out = out

    def name(self) -> str:
        return "".join(p.capitalize() for p in self.op.value.split("_")) + "Backward"

    def __repr__(self) -> str:
        return f"<{self.name()}>"


Tensor: Any = None  # bound by hybrid.tensor at import (avoids a circular import)
_new = object.__new__


def wrap(value: Any) -> Any:
    """A Tensor holding `value` (an array or a traced value), with no autograd history."""
    if value.__class__ is not ndarray and isinstance(value, np.generic):
        value = np.asarray(value)
    t = _new(Tensor)
    t._value = value
    return t


def type_of(x: Any) -> TensorType:
    """The static type of a tensor (eager or traced)."""
    v = x._value
    d = v.dtype
    return TensorType(tuple(v.shape), d if d.__class__ is DType else DType.from_np(d))


def describe(xs: tuple) -> str:
    return " and ".join(str(type_of(x)) for x in xs)


def explain(op: Op, xs: tuple, attrs: dict, cause: BaseException | None = None) -> Exception:
    """The clear error for a failed primitive: its rule's message when the rule rejects the inputs,
    else what the array library said, always with the op, the input types and the user's line."""
    try:
        infer_type(op, [type_of(x) for x in xs], attrs)
    except OpError as e:
        return errors.error(e.kind, str(e))
    kind = type(cause) if isinstance(cause, (ValueError, TypeError, IndexError)) else ValueError
    return errors.error(kind, f"{op.value}: failed on {describe(xs)}: {cause}")


def _backend(vals: list) -> dict:
    cls = vals[0].__class__
    for v in vals[1:]:
        if v.__class__ is not cls:
            return _mixed(vals)
    if cls is ndarray:
        return NP
    return _device_impls(vals[0])


def _mixed(vals: list) -> dict:
    for v in vals:
        if getattr(v, "traced", False):
            _device_impls(v)  # raises: an escaped traced value
    devs = sorted({_device_name(v) for v in vals})
    if len(devs) > 1:
        raise errors.DeviceError(
            errors.at_user(
                f"expected all tensors on one device, got {' and '.join(devs)}; "
                "move them with .to(device)"
            )
        )
    return _device_impls(vals[0])


def _device_name(v: Any) -> str:
    if getattr(v, "traced", False):
        return "a traced value"
    return "cpu" if isinstance(v, (ndarray, np.generic)) else f"cuda:{v.device.id}"


def _device_impls(v: Any) -> dict:
    if isinstance(v, ndarray):
        return NP
    if getattr(v, "traced", False):
        raise errors.TraceError(errors.at_user(
            "a tensor created while tracing a compiled function escaped it (it was stored in a "
            "Python object or global) and holds no value; return it from the function instead"))
    import cupy

    return impls(cupy)


def _verify(op: Op, xs: tuple, attrs: dict, out: Any) -> None:
    """HYBRID_VERIFY=1: the eager result has exactly the type the op's rule promises."""
    want = infer_type(op, [type_of(x) for x in xs], attrs)
    got = type_of(wrap(out))
    if want != got:
        raise AssertionError(f"{op.value}: rule says {want}, implementation gave {got}")


def apply(op: Op, *xs: Any, **attrs: Any) -> Any:
    """Run primitive `op` on tensors `xs`: eagerly, or recorded into the active trace; then put it
    on the autograd tape when grad mode is on and an input requires grad."""
    if STATE.tracer is not None:
        out = STATE.tracer.record(op, xs, attrs)
    else:
        vals = [x._value for x in xs]
        try:
            out = _backend(vals)[op](*vals, **attrs)
        except errors.HybridError:
            raise
        except Exception as e:  # numpy/CuPy rejected it: say why in the op's terms
            raise explain(op, xs, attrs, e) from None
        if STATE.verify:
            _verify(op, xs, attrs, out)
    t = wrap(out)
    if STATE.grad:
        for x in xs:
            if x._rg:
                d = out.dtype
                floating = (d.is_floating if d.__class__ is DType
                            else d.kind == "f" or d == DType.bfloat16.np)
                if floating and OPS[op].differentiable:
                    t._rg = True
                    t._node = TapeNode(op, xs, attrs, wrap(out) if op in SAVES_OUTPUT else None)
                break
    return t


def source(op: Op, device: Any, **attrs: Any) -> Any:
    """Run a source primitive (full, iota, constant) on `device`."""
    if STATE.tracer is not None:
        return wrap(STATE.tracer.record(op, (), attrs))
    from hybrid.device import xp_of

    xp = np if device.type == "cpu" else xp_of(device)
    return wrap(impls(xp)[op](**attrs))
