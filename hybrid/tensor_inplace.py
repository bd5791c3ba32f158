"""In-place updates of a Tensor with PyTorch's semantics: the leaf rule, the value written into
the tensor's storage (so views see it), the autograd history kept for earlier readers, and the
version counter."""

from __future__ import annotations

from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops.core import STATE, wrap
from hybrid.tensor import Tensor


def check_inplace(x: Tensor) -> None:
    """PyTorch's rule: a leaf that requires grad cannot be changed in place while grad is on."""
    if STATE.grad and x._rg and x._node is None:
        raise errors.AutogradError(
            errors.at_user(
                f"a leaf tensor that requires grad ({x.dtype.short}{list(x.shape)}) is used in an "
                "in-place operation; wrap the update in `with hybrid.no_grad():`"
            )
        )


def _snapshot(x: Tensor) -> Tensor:
    """A new Tensor object standing for x's current value and history (for in-place ops)."""
    s = wrap(x._value)
    s._node, s._rg, s._version = x._node, x._rg, x._version
    return s


def inplace(x: Tensor, r: Tensor) -> Tensor:
    """Make x take the value (and autograd history) of r, in place: copied into x's storage in
    eager mode (so views see it, as in PyTorch), rebound when tracing or recording grads."""
    if tuple(r.shape) != tuple(x.shape):
        raise errors.ShapeError(
            errors.at_user(f"in-place: the result of shape {list(r.shape)} does not fit the "
                           f"tensor of shape {list(x.shape)} being updated")
        )
    if r.dtype is not x.dtype:
        if (r.dtype.is_floating and not x.dtype.is_floating) or (
            r.dtype.is_integer and x.dtype.is_bool
        ):
            raise errors.DTypeError(
                errors.at_user(f"in-place: result type {r.dtype.name} can't be cast to the "
                               f"tensor's dtype {x.dtype.name}")
            )
        r = ew.cast(r, x.dtype)
    if STATE.tracer is not None:
        STATE.tracer.assign(x, r)
    elif r._node is not None:
        if x._base is not None:
            # NOTE: rebinding a view would silently detach it from its base (the base would not
            # see the write, nor its gradient); PyTorch replays the view on the base instead.
            raise errors.AutogradError(
                errors.at_user(
                    f"in-place update of a view ({x.dtype.short}{list(x.shape)}) with a result "
                    "that requires grad is not supported; assign through the base instead, "
                    "e.g. `y[1:] = y[1:] * 2` rather than `y[1:].mul_(2)`"
                )
            )
        x._value = r._value
    else:
        xv = x._value
        try:
            xv[...] = r._value
        except ValueError as e:
            raise errors.ShapeError(
                errors.at_user(f"in-place: cannot write into this tensor ({e}); it is probably an "
                               "expand()ed view; use .clone() first")
            ) from None
    if STATE.grad or r._node is not None:  # under no_grad, x keeps its history (as PyTorch)
        node, rg = r._node, r._rg or (x._rg and r._node is None and x._node is None)
        if node is not x._node or rg != x._rg:
            # nodes that recorded x before this op keep following its old history (autograd)
            if x._history is None:
                x._history = {}
            x._history[x._version] = (x._node, x._rg)
        x._node, x._rg = node, rg
    x._version += 1
    return x


def inplace_op(x: Tensor, fn) -> Tensor:
    """x = fn(x), in place, with PyTorch's in-place autograd semantics."""
    check_inplace(x)
    if STATE.tracer is not None:
        STATE.tracer.value_of(x)  # lift x itself (not only its snapshot) into the graph
    src = _snapshot(x) if (STATE.grad and x._rg) or STATE.tracer is not None else x
    r = fn(src)
    if not isinstance(r, Tensor):
        r = ew.operand(r, x.dtype, x)
    return inplace(x, r)
