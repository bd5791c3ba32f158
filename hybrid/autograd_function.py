"""Custom autograd functions (PyTorch's torch.autograd.Function): a user-written `forward(ctx, ...)`
and `backward(ctx, *grads)` that autograd calls in place of the primitives' vjp rules.

`MyFn.apply(*args)` runs `forward` with grad recording off and, when an input requires grad, puts
one tape node on the outputs whose vjp calls the user's `backward`. Inside @hybrid.compile the
forward is traced like any code; `loss.backward()` inside the compiled function calls `backward`
on tracer tensors, so the user's backward lands in the graph. A function with several
differentiable outputs gets one node per output feeding one shared node, so that `backward` runs
once with every output's gradient (as PyTorch does)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.ops.core import STATE, TapeNode, wrap


class _FunctionOp:
    """The autograd "op" of custom-function tape nodes (the key of their vjp rule)."""

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return f"<{self.value}>"


FUNCTION = _FunctionOp("custom_function")  # the node that calls the user's backward
OUTPUT = _FunctionOp("custom_function_output")  # output k of a multi-output function
ONCE = _FunctionOp("once_differentiable")  # the result of a @once_differentiable backward


class FunctionNode(TapeNode):
    """The grad_fn of a custom function's outputs; prints as `<MyFnBackward>`."""

    __slots__ = ()

    def name(self) -> str:
        return self.attrs["cls"].__name__ + "Backward"


class FunctionCtx:
    """The `ctx` passed to forward and backward: saved tensors, flags, and any attribute."""

    def __init__(self) -> None:
        self.needs_input_grad: tuple = ()
        self._saved: tuple = ()
        self._saved_versions: tuple = ()
        self._non_differentiable: list = []
        self.materialize_grads = True

    def save_for_backward(self, *tensors: Any) -> None:
        """Keep tensors (or None) for backward; read them back with `ctx.saved_tensors`."""
        from hybrid.tensor import Tensor

        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise errors.DTypeError(errors.at_user(
                    f"save_for_backward: argument {i} is a {type(t).__name__}, not a tensor; "
                    "store other values as attributes of ctx (ctx.value = ...)"))
        self._saved = tensors
        self._saved_versions = tuple(None if t is None else t._version for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to save_for_backward (checked for in-place changes since)."""
        for i, (t, v) in enumerate(zip(self._saved, self._saved_versions)):
            if t is not None and t._version != v:
                raise errors.AutogradError(errors.at_user(
                    f"one of the tensors saved for backward (index {i}, {t.dtype.short}"
                    f"{list(t.shape)}) was modified by an in-place operation (version {v} -> "
                    f"{t._version}); clone it before saving, or use out-of-place ops"))
        return tuple(self._saved)

    saved_variables = saved_tensors

    def mark_non_differentiable(self, *tensors: Any) -> None:
        """Outputs that do not require grad (indices, masks); their gradient is zero/None."""
        self._non_differentiable.extend(tensors)

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward gets None (not zeros) for outputs that received no gradient."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors: Any) -> None:
        """In-place custom functions are not supported: raises a clear error."""
        raise errors.AutogradError(errors.at_user(
            "ctx.mark_dirty: custom functions that modify their inputs in place are not "
            "supported; return a new tensor from forward instead"))


class Function:
    """Subclass with `@staticmethod forward(ctx, *args)` and `@staticmethod backward(ctx, *grads)`
    (or forward(*args) plus setup_context(ctx, inputs, output)), then call `MyFn.apply(*args)`."""

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        """The computation (runs with grad recording off)."""
        raise NotImplementedError("a custom Function must define forward as a @staticmethod")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        """One gradient (or None) per forward input, given one gradient per forward output."""
        raise NotImplementedError("a custom Function must define backward as a @staticmethod")

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Any) -> None:
        """Optional (PyTorch 2 style): save what backward needs, when forward takes no ctx."""
        raise NotImplementedError

    vjp = backward

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = type(self).__name__
        raise errors.AutogradError(errors.at_user(
            f"{name}()(...) calls a legacy (non-static) autograd Function; define forward and "
            f"backward as @staticmethod and call {name}.apply(...)"))

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Run forward on `args` and record the node that calls backward (see the module doc)."""
        return _apply(cls, args, kwargs)


def _apply(cls: type, args: tuple, kwargs: dict) -> Any:
    from hybrid.autograd import no_grad
    from hybrid.tensor import Tensor

    ctx = FunctionCtx()
    grad_on = STATE.grad
    ctx.needs_input_grad = tuple(bool(grad_on and isinstance(a, Tensor) and a._rg) for a in args)
    with no_grad():
        if cls.setup_context is not Function.setup_context:
            out = cls.forward(*args, **kwargs)
            cls.setup_context(ctx, args, out)
        else:
            out = cls.forward(ctx, *args, **kwargs)
    if not any(ctx.needs_input_grad):
        return out
    is_tuple = isinstance(out, tuple)
    outs = list(out) if is_tuple else [out]
    inputs = [a for a in args if isinstance(a, Tensor)]
    frozen = {id(t) for t in ctx._non_differentiable}
    meta, diff = [], []
    for k, o in enumerate(outs):
        if not isinstance(o, Tensor):
            meta.append(None)
            continue
        if o._node is not None or o._rg or any(o is a for a in inputs):
            # NOTE: an input (or a tensor with its own history) returned as is: the output is a
            # new tensor sharing its storage, so the input keeps its own grad_fn.
            was_frozen = id(o) in frozen
            o = wrap(o._value)
            outs[k] = o
            if was_frozen:
                frozen.add(id(o))
        meta.append((tuple(o.shape), o.dtype, o.device))
        if o.dtype.is_floating and id(o) not in frozen:
            diff.append(k)
    if not diff:
        return tuple(outs) if is_tuple else outs[0]
    attrs = {"cls": cls, "ctx": ctx, "arg_pos": [i for i, a in enumerate(args)
                                                  if isinstance(a, Tensor)],
             "n_args": len(args), "meta": meta, "single": diff[0] if len(diff) == 1 else None}
    node = FunctionNode(FUNCTION, tuple(inputs), attrs, None)
    if len(diff) == 1:
        outs[diff[0]]._rg = True
        outs[diff[0]]._node = node
    else:
        bundle = wrap(np.zeros(()))  # stands for "all outputs" on the tape; never computed on
        bundle._rg = True
        bundle._node = node
        for k in diff:
            outs[k]._rg = True
            outs[k]._node = FunctionNode(OUTPUT, (bundle,), {"cls": cls, "index": k}, None)
    if STATE.tracer is not None:  # for the backward of the compiled call (see that module)
        from hybrid.autograd_function_compiled import note

        note(STATE.tracer, cls, args, kwargs, outs, inputs)
    return tuple(outs) if is_tuple else outs[0]


class _Grads:
    """The gradients of several outputs of one function, merged by `+` on the tape."""

    __slots__ = ("parts",)

    def __init__(self, parts: dict):
        self.parts = parts

    def __add__(self, other: _Grads) -> _Grads:
        merged = dict(self.parts)
        for k, g in other.parts.items():
            merged[k] = g if k not in merged else merged[k] + g
        return _Grads(merged)


def _output_vjp(g: Any, node: TapeNode) -> tuple:
    return (_Grads({node.attrs["index"]: g}),)


def _function_vjp(g: Any, node: TapeNode) -> tuple:
    """Call the user's backward with one gradient per forward output; check what it returns."""
    from hybrid.ops.creation import zeros

    a = node.attrs
    cls, ctx, meta = a["cls"], a["ctx"], a["meta"]
    parts = g.parts if isinstance(g, _Grads) else {a["single"]: g}
    grads = []
    for k, m in enumerate(meta):
        if k in parts:
            grads.append(parts[k])
        elif m is not None and ctx.materialize_grads:
            grads.append(zeros(m[0], dtype=m[1], device=m[2]))
        else:
            grads.append(None)
    res = cls.backward(ctx, *grads)
    if not isinstance(res, tuple):
        res = (res,)
    return _check_result(cls, res, node)


def _check_result(cls: type, res: tuple, node: TapeNode) -> tuple:
    from hybrid.ops.elementwise import cast
    from hybrid.ops.vjp import unbroadcast
    from hybrid.tensor import Tensor

    a = node.attrs
    name = cls.__name__ + "Backward"
    n_args = a["n_args"]
    if len(res) < n_args or any(r is not None for r in res[n_args:]):
        raise errors.AutogradError(errors.at_user(
            f"{name}: backward returned {len(res)} gradients, expected {n_args} (one per "
            "forward input, None for inputs that need none)"))
    out = []
    pos = set(a["arg_pos"])
    for i, r in enumerate(res[:n_args]):
        if i not in pos and r is not None:
            raise errors.AutogradError(errors.at_user(
                f"{name}: backward returned a gradient at position {i}, but forward input "
                f"{i} is not a tensor; return None there"))
    for i, x in zip(a["arg_pos"], node.inputs):
        r = res[i]
        if r is None or not a["ctx"].needs_input_grad[i]:
            out.append(None)
            continue
        if not isinstance(r, Tensor):
            raise errors.DTypeError(errors.at_user(
                f"{name}: backward returned a {type(r).__name__} at position {i}; expected a "
                "tensor or None"))
        if tuple(r.shape) != tuple(x.shape):
            if not _sums_to(tuple(r.shape), tuple(x.shape)):
                raise errors.ShapeError(errors.at_user(
                    f"{name}: backward returned a gradient of shape {list(r.shape)} at position "
                    f"{i}, but the input has shape {list(x.shape)}"))
            r = unbroadcast(r, tuple(x.shape))
        if r.dtype is not x.dtype:
            r = cast(r, x.dtype)
        out.append(r)
    return tuple(out)


def _sums_to(shape: tuple, target: tuple) -> bool:
    """Whether `target` broadcasts to `shape` (so a gradient of `shape` sums down to it)."""
    if len(target) > len(shape):
        return False
    tail = shape[len(shape) - len(target):]
    return all(t == s or t == 1 for t, s in zip(target, tail))


def once_differentiable(fn: Any) -> Any:
    """Decorate a backward that is not itself differentiable: it runs without recording, and a
    second-order gradient through its results raises a clear error."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *grads: Any) -> Any:
        from hybrid.autograd import no_grad
        from hybrid.tensor import Tensor

        with no_grad():
            res = fn(ctx, *grads)
        if not STATE.grad:
            return res
        sources = tuple(t for t in list(grads) + list(ctx._saved)
                        if isinstance(t, Tensor) and t._rg)
        if not sources:
            return res
        tup = res if isinstance(res, tuple) else (res,)
        marked = []
        for r in tup:
            if isinstance(r, Tensor) and r.dtype.is_floating:
                r = wrap(r._value)
                r._rg = True
                r._node = FunctionNode(ONCE, sources, {"cls": _Once}, None)
            marked.append(r)
        return tuple(marked) if isinstance(res, tuple) else marked[0]

    return wrapper


class _Once:
    """Names the error node of a once_differentiable backward."""


def _once_vjp(g: Any, node: TapeNode) -> tuple:
    raise errors.AutogradError(errors.at_user(
        "trying to differentiate twice a function whose backward is @once_differentiable; "
        "remove the decorator if its backward is written with differentiable tensor ops"))


def register() -> None:
    """Put the custom-function node kinds into the vjp table (as compile_backward does)."""
    from hybrid.ops.vjp import READS, VJP

    VJP[FUNCTION] = _function_vjp  # type: ignore[index]
    VJP[OUTPUT] = _output_vjp  # type: ignore[index]
    VJP[ONCE] = _once_vjp  # type: ignore[index]
    # NOTE: saved tensors are checked for in-place changes by ctx.saved_tensors itself, so the
    # engine need not check the inputs (PyTorch does the same)
    for op in (FUNCTION, OUTPUT, ONCE):
        READS[op] = ()  # type: ignore[index]


register()
