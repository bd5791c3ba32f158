"""Module hooks (PyTorch's semantics): forward pre-hooks and forward hooks (optionally with the
keyword arguments), and full backward hooks / backward pre-hooks.

Backward hooks wrap the module's tensor inputs and outputs in identity autograd Functions: the
one on the outputs sees grad_output first (and runs the backward pre-hooks), the one on the inputs
then sees grad_input and runs the backward hooks, which may replace either. A module that has no
hook runs `forward` directly (Module.__call__ checks for a hook table first)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Self

from hybrid import errors
from hybrid.autograd_function import Function
from hybrid.tensor import Tensor

_ids = itertools.count()


class Hooks:
    """A module's hook tables: id -> (fn, with_kwargs) in registration order."""

    __slots__ = ("backward", "backward_pre", "forward", "forward_pre")

    def __init__(self) -> None:
        self.forward_pre: dict[int, tuple] = {}
        self.forward: dict[int, tuple] = {}
        self.backward: dict[int, tuple] = {}
        self.backward_pre: dict[int, tuple] = {}

    def empty(self) -> bool:
        return not (self.forward_pre or self.forward or self.backward or self.backward_pre)


class RemovableHandle:
    """Returned by register_*_hook: `handle.remove()` (or `with handle:`) unregisters it."""

    def __init__(self, module: Any, table: str, hook_id: int):
        self._module, self._table, self.id = module, table, hook_id

    def remove(self) -> None:
        hooks = self._module.__dict__.get("_hooks")
        if hooks is None:
            return
        getattr(hooks, self._table).pop(self.id, None)
        if hooks.empty():
            del self._module.__dict__["_hooks"]  # back to the hook-free fast path

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def register(module: Any, table: str, fn: Callable, with_kwargs: bool = False,
             prepend: bool = False) -> RemovableHandle:
    """Add hook `fn` to `module`'s table `table`."""
    if not callable(fn):
        raise errors.DTypeError(errors.at_user(
            f"register hook: expected a callable, got {type(fn).__name__}"))
    hooks = module.__dict__.get("_hooks")
    if hooks is None:
        hooks = module.__dict__["_hooks"] = Hooks()
    hid = next(_ids)
    entries = getattr(hooks, table)
    entries[hid] = (fn, with_kwargs)
    if prepend:
        items = [(hid, entries.pop(hid))] + list(entries.items())
        entries.clear()
        entries.update(items)
    return RemovableHandle(module, table, hid)


def call(module: Any, hooks: Hooks, args: tuple, kwargs: dict) -> Any:
    """module(*args, **kwargs) with its hooks."""
    for fn, with_kwargs in list(hooks.forward_pre.values()):
        if with_kwargs:
            res = fn(module, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise errors.DTypeError(errors.at_user(
                        "forward pre-hook registered with with_kwargs=True must return None or "
                        f"a tuple (args, kwargs), got {type(res).__name__}"))
                args, kwargs = res
        else:
            res = fn(module, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)
    state = None
    if hooks.backward or hooks.backward_pre:
        state = _BackwardState(module, hooks)
        args = state.wrap_inputs(args)
    out = module.forward(*args, **kwargs)
    for fn, with_kwargs in list(hooks.forward.values()):
        res = fn(module, args, kwargs, out) if with_kwargs else fn(module, args, out)
        if res is not None:
            out = res
    if state is not None:
        out = state.wrap_outputs(out)
    return out


class _BackwardState:
    """What one call's backward hooks share: the module, its grad_output, its input positions."""

    def __init__(self, module: Any, hooks: Hooks):
        self.module, self.hooks = module, hooks
        self.grad_output: tuple | None = None
        self.n_inputs = 0
        self.tracks_inputs = False

    def wrap_inputs(self, args: tuple) -> tuple:
        pos = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.n_inputs = len(pos)
        if not any(args[i].requires_grad and args[i].dtype.is_floating for i in pos):
            return args
        self.tracks_inputs = True
        wrapped = _InputsHook.apply(self, *[args[i] for i in pos])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        out = list(args)
        for i, w in zip(pos, wrapped):
            out[i] = w
        return tuple(out)

    def wrap_outputs(self, out: Any) -> Any:
        if isinstance(out, Tensor):
            return _OutputsHook.apply(self, out)
        if isinstance(out, tuple) and out and all(isinstance(o, Tensor) for o in out):
            res = _OutputsHook.apply(self, *out)
            return res if isinstance(res, tuple) else (res,)
        raise errors.DTypeError(errors.at_user(
            f"{type(self.module).__name__}: full backward hooks need forward to return a tensor "
            f"or a tuple of tensors, got {type(out).__name__}"))

    def run_backward_hooks(self, grad_input: tuple) -> tuple:
        for fn, _ in list(self.hooks.backward.values()):
            res = fn(self.module, grad_input, self.grad_output)
            if res is not None:
                res = res if isinstance(res, tuple) else (res,)
                if len(res) != len(grad_input):
                    raise errors.AutogradError(errors.at_user(
                        f"backward hook of {type(self.module).__name__} returned {len(res)} "
                        f"gradients, expected {len(grad_input)} (one per tensor input)"))
                grad_input = res
        return grad_input


class _OutputsHook(Function):
    """Identity on the module's outputs; its backward sees grad_output first."""

    @staticmethod
    def forward(ctx: Any, state: _BackwardState, *outs: Any) -> Any:
        ctx.state = state
        ctx.set_materialize_grads(False)
        return outs if len(outs) > 1 else outs[0]

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> tuple:
        state = ctx.state
        for fn, _ in list(state.hooks.backward_pre.values()):
            res = fn(state.module, grads)
            if res is not None:
                grads = res if isinstance(res, tuple) else (res,)
        state.grad_output = grads
        if not state.tracks_inputs:  # no input requires grad: PyTorch calls the hooks here
            state.run_backward_hooks((None,) * state.n_inputs)
        return (None, *grads)


class _InputsHook(Function):
    """Identity on the module's tensor inputs; its backward sees grad_input."""

    @staticmethod
    def forward(ctx: Any, state: _BackwardState, *ins: Any) -> Any:
        ctx.state = state
        ctx.set_materialize_grads(False)
        return ins if len(ins) > 1 else ins[0]

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> tuple:
        return (None, *ctx.state.run_backward_hooks(grads))
