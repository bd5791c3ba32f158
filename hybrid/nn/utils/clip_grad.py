"""Gradient clipping by total norm or by value, in place and with tensor math only, so that it
traces into a compiled training step (no tensor value is read into Python)."""

from __future__ import annotations

import math
from typing import Any

from compiler.ir.types import DType
from hybrid import errors
from hybrid.autograd import no_grad
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.core import STATE
from hybrid.ops.creation import tensor
from hybrid.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm"]


def _tensors(parameters: Any, what: str) -> list[Tensor]:
    items = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    for t in items:
        if not isinstance(t, Tensor):
            raise errors.DTypeError(errors.at_user(
                f"{what}: expected Tensors (e.g. model.parameters()), got {type(t).__name__}"))
    return items


def _norm_type(norm_type: Any, what: str) -> float:
    try:
        return float(norm_type)  # also 'inf' and '-inf', as PyTorch accepts
    except (TypeError, ValueError):
        raise errors.DTypeError(errors.at_user(
            f"{what}: norm_type must be a number or 'inf', got {norm_type!r}")) from None


def _vector_norm(x: Tensor, p: float) -> Tensor:
    """torch.linalg.vector_norm of the flattened x, a 0-d tensor of x's dtype."""
    a = ew.abs(x)
    if p == math.inf:
        return rd.amax(a)
    if p == -math.inf:
        return rd.amin(a)
    if p == 0:
        return ew.cast(rd.sum(ew.cast(x != 0, x.dtype)), x.dtype)
    if p == 1:
        return rd.sum(a)
    if p == 2:
        return ew.sqrt(rd.sum(a * a))
    return rd.sum(a**p) ** (1.0 / p)


def _widest(ts: list[Tensor]) -> DType:
    order = [DType.float16, DType.float32, DType.float64]
    return max((t.dtype for t in ts), key=lambda d: order.index(d) if d in order else -1)


def get_total_norm(tensors: Any, norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The norm of all `tensors` taken together as one vector (a 0-d tensor)."""
    ts = _tensors(tensors, "get_total_norm")
    p = _norm_type(norm_type, "get_total_norm")
    if not ts:
        return tensor(0.0)
    with no_grad():
        dt = _widest(ts)
        norms = [ew.cast(_vector_norm(t, p), dt) for t in ts]
        total = _vector_norm(sh.stack(norms), p)
    if error_if_nonfinite:
        if STATE.tracer is not None:
            raise errors.TraceError(errors.at_user(
                "clip_grad_norm_(error_if_nonfinite=True) reads the norm's value in Python, "
                "which cannot happen inside @hybrid.compile; pass error_if_nonfinite=False "
                "(and check the returned norm after the call)"))
        if not bool(ew.isfinite(total)):
            raise errors.AutogradError(errors.at_user(
                f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                "non-finite, so it cannot be clipped; to scale the gradients by it anyway, pass "
                "error_if_nonfinite=False"))
    return total


def _scale_grad(p: Tensor, factor: Tensor) -> None:
    g = p.grad
    if STATE.tracer is not None and g._base is not None:
        # NOTE: an in-place update of a view cannot be traced; a gradient that is a view (e.g.
        # the transpose a matmul's backward produced) is replaced by its scaled copy instead
        p.grad = g * ew.cast(factor, g.dtype)
    else:
        g.mul_(ew.cast(factor, g.dtype))


def clip_grad_norm_(parameters: Any, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients in place so that their total norm is at most max_norm; returns the
    total norm before clipping (a 0-d tensor). `foreach` is accepted and ignored."""
    params = _tensors(parameters, "clip_grad_norm_")
    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return tensor(0.0)
    total = get_total_norm([p.grad for p in with_grad], norm_type, error_if_nonfinite)
    with no_grad():
        coef = ew.clamp(float(max_norm) / (total + 1e-6), max=1.0)
        for p in with_grad:
            _scale_grad(p, coef)
    return total


def clip_grad_value_(parameters: Any, clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient in place to [-clip_value, clip_value]."""
    params = _tensors(parameters, "clip_grad_value_")
    value = float(clip_value)
    with no_grad():
        for p in params:
            g = p.grad
            if g is None:
                continue
            if STATE.tracer is not None and g._base is not None:
                p.grad = ew.clamp(g, -value, value)  # see the NOTE in _scale_grad
            else:
                g.clamp_(-value, value)
