"""Reverse-mode autograd: walk the tape from the outputs in reverse topological order, applying
each primitive's vjp rule (itself Tensor ops, so create_graph=True gives higher-order grads)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import numpy as _np

from hybrid import errors
from hybrid.ops.core import STATE, TapeNode


class _GradMode(contextlib.ContextDecorator):
    """Set grad mode in a block or decorated function; restores the mode found on entry."""

    mode = True
    _fresh = False  # set_grad_enabled(...) already switched the mode and saved the previous one

    def __enter__(self) -> None:
        if self._fresh:
            self._fresh = False
        else:
            self.prev = STATE.grad
        STATE.grad = self.mode

    def __exit__(self, *exc: Any) -> None:
        STATE.grad = self.prev

    def _recreate_cm(self):  # NOTE: a fresh instance per decorated call, so recursion nests
        new = object.__new__(type(self))
        new.mode = self.mode
        return new


class set_grad_enabled(_GradMode):  # noqa: N801  (PyTorch's name)
    """Turn gradient recording on or off: as a call, in a block, or as a decorator."""

    def __init__(self, mode: bool):
        self.prev = STATE.grad
        STATE.grad = bool(mode)  # as PyTorch: `set_grad_enabled(False)` alone takes effect
        self.mode = bool(mode)
        self._fresh = True

    def __call__(self, fn):
        STATE.grad = self.prev  # used as a decorator: only calls of fn change the mode
        self._fresh = False
        return super().__call__(fn)


class no_grad(_GradMode):  # noqa: N801
    """Do not record operations for autograd inside this block (or decorated function)."""

    mode = False


class enable_grad(_GradMode):  # noqa: N801
    """Record operations for autograd inside this block, even within no_grad."""

    mode = True


inference_mode = no_grad


def is_grad_enabled() -> bool:
    return STATE.grad


def _edge(x: Any, version: int) -> tuple:
    """(grad_fn, requires_grad) of input `x` as it was when a node recorded it at `version`: an
    in-place op since then gave x a new history (kept in x._history), which that node must not
    follow."""
    if x._version == version or x._history is None:
        return x._node, x._rg
    later = [v for v in x._history if v >= version]
    return x._history[min(later)] if later else (x._node, x._rg)


def _topo_order(roots: list[TapeNode]) -> list[TapeNode]:
    """Nodes reachable from `roots`, each after every node that consumes it."""
    order: list[TapeNode] = []
    seen: set[int] = set()
    stack = [(r, False) for r in roots]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack.append((node, True))
        if node.inputs is None:
            continue
        for x, v in zip(node.inputs, node.versions):
            n = _edge(x, v)[0]
            if n is not None and id(n) not in seen:
                stack.append((n, False))
    order.reverse()
    return order


def _accumulate(store: dict, key: Any, g: Any) -> None:
    prev = store.get(key)
    store[key] = g if prev is None else prev + g


def _check_versions(node: TapeNode) -> None:
    from hybrid.ops.vjp import READS

    reads = READS.get(node.op)
    for i, (x, v) in enumerate(zip(node.inputs, node.versions)):
        if x._version != v and (reads is None or i in reads):
            raise errors.AutogradError(
                errors.at_user(
                    f"one of the tensors needed for the gradient of {node.op.value} "
                    f"({x.dtype.short}{list(x.shape)}) was modified by an in-place operation "
                    f"(version {v} -> {x._version}); use an out-of-place op (x = x + y, not x += y)"
                )
            )


def _run_backward(outputs: Sequence, grads: Sequence, retain_graph: bool, create_graph: bool,
                  wanted: dict[int, Any] | None) -> dict[int, Any]:
    """Propagate `grads` from `outputs`. With `wanted` (id(tensor) -> tensor), return the grads of
    those tensors; otherwise accumulate into the .grad of leaves (and retained non-leaves)."""
    node_grads: dict[int, Any] = {}
    leaf_grads: dict[int, Any] = {}
    leaves: dict[int, Any] = {}
    roots = []
    for out, g in zip(outputs, grads):
        if out._node is None:
            leaves[id(out)] = out
            _accumulate(leaf_grads, id(out), g)
        else:
            roots.append(out._node)
            _accumulate(node_grads, id(out._node), g)
    # tensors whose grad was asked for and which have a node: read it off when the node is reached
    wanted_nodes = {}
    if wanted:
        for t in wanted.values():
            if t._node is not None:
                wanted_nodes[id(t._node)] = t
    captured: dict[int, Any] = {}
    from hybrid.ops.vjp import VJP

    with set_grad_enabled(create_graph):
        for node in _topo_order(roots):
            g = node_grads.pop(id(node), None)
            if g is None:
                continue
            if node.inputs is None:
                raise errors.AutogradError(
                    errors.at_user(
                        "trying to backward through the graph a second time (its saved tensors "
                        "were freed); pass retain_graph=True to the first backward()"
                    )
                )
            t = wanted_nodes.get(id(node))
            if t is not None:
                captured[id(t)] = g
            for hook_owner in _retained.get(id(node), ()):
                hook_owner.grad = g if hook_owner.grad is None else hook_owner.grad + g
            _check_versions(node)
            in_grads = VJP[node.op](g, node)
            for x, v, gx in zip(node.inputs, node.versions, in_grads):
                x_node, x_rg = _edge(x, v)
                if gx is None or not x_rg:
                    continue
                if x_node is not None:
                    _accumulate(node_grads, id(x_node), gx)
                else:
                    leaves[id(x)] = x
                    _accumulate(leaf_grads, id(x), gx)
            if not retain_graph:
                node.inputs = None
                node.out = None
    if wanted is not None:
        result = dict(captured)
        for k in wanted:
            if k in leaf_grads:
                result[k] = leaf_grads[k]
        return result
    for k, g in leaf_grads.items():
        leaf = leaves[k]
        if not create_graph:
            # NOTE: under a trace a gradient is a fresh value (no storage to share), so .grad is
            # a plain tensor, not an alias: in-place updates of it (p.grad.mul_(c)) just work.
            g = _laid_out_like(g.detach(), leaf) if STATE.tracer is None else _fresh(g)
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    return {}


def _laid_out_like(g: Any, leaf: Any) -> Any:
    """PyTorch's gradient layout contract: a C-contiguous leaf gets a C-contiguous .grad (a
    linear layer's weight gradient arrives as a transposed view otherwise), so optimizer updates
    and compiled steps read it without a strided pass or a copy per call."""
    v = g._value
    if v.__class__ is _np.ndarray and not v.flags.c_contiguous \
            and leaf._value.__class__ is _np.ndarray and leaf._value.flags.c_contiguous:
        from hybrid.ops.core import wrap

        return wrap(_np.ascontiguousarray(v))
    return g


def _fresh(g: Any) -> Any:
    from hybrid.ops.core import wrap

    return wrap(g._value)


# non-leaf tensors that called retain_grad(), keyed by id of their node
_retained: dict[int, list] = {}


def retain_grad(t: Any) -> None:
    if t._node is not None:
        owners = _retained.setdefault(id(t._node), [])
        if t not in owners:
            owners.append(t)
        import weakref

        weakref.finalize(t._node, _retained.pop, id(t._node), None)


def _default_grads(outputs: Sequence, grad_outputs: Sequence | None, op: str) -> list:
    from hybrid.ops.creation import ones_like

    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    grads = []
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            if out.numel() != 1:
                raise errors.AutogradError(
                    errors.at_user(
                        f"{op}: grad can be implicitly created only for a single-element output, "
                        f"got shape {list(out.shape)}; pass gradient= (or grad_outputs=)"
                    )
                )
            g = ones_like(out)
        elif tuple(g.shape) != tuple(out.shape):
            raise errors.ShapeError(
                errors.at_user(f"{op}: gradient shape {list(g.shape)} does not match output shape "
                               f"{list(out.shape)}")
            )
        grads.append(g)
    return grads


def _check_outputs(outputs: Sequence, op: str) -> None:
    for out in outputs:
        if not out._rg:
            raise errors.AutogradError(
                errors.at_user(
                    f"{op}: the tensor {out.dtype.short}{list(out.shape)} does not require grad "
                    "and has no grad_fn; set requires_grad=True on an input it depends on, "
                    "and do not compute it under no_grad()"
                )
            )


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False) -> None:
    """Accumulate d(tensors)/d(leaf) into each leaf's .grad."""
    outputs = [tensors] if not isinstance(tensors, (list, tuple)) else list(tensors)
    if grad_tensors is not None and not isinstance(grad_tensors, (list, tuple)):
        grad_tensors = [grad_tensors]
    _check_outputs(outputs, "backward")
    grads = _default_grads(outputs, grad_tensors, "backward")
    retain = create_graph if retain_graph is None else retain_graph
    _run_backward(outputs, grads, retain, create_graph, None)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False) -> tuple:
    """The gradients of `outputs` with respect to `inputs` (leaves' .grad is not touched)."""
    outs = [outputs] if not isinstance(outputs, (list, tuple)) else list(outputs)
    ins = [inputs] if not isinstance(inputs, (list, tuple)) else list(inputs)
    if grad_outputs is not None and not isinstance(grad_outputs, (list, tuple)):
        grad_outputs = [grad_outputs]
    _check_outputs(outs, "grad")
    for x in ins:
        if not x._rg:
            raise errors.AutogradError(
                errors.at_user(f"grad: an input {x.dtype.short}{list(x.shape)} does not require grad")
            )
    grads = _default_grads(outs, grad_outputs, "grad")
    retain = create_graph if retain_graph is None else retain_graph
    wanted = {id(x): x for x in ins}
    found = _run_backward(outs, grads, retain, create_graph, wanted)
    result = []
    for x in ins:
        g = found.get(id(x))
        if g is None and not allow_unused:
            raise errors.AutogradError(
                errors.at_user(
                    "grad: one of the inputs was not used to compute the outputs; "
                    "pass allow_unused=True to get None for it"
                )
            )
        result.append(g)
    return tuple(result)


# Custom functions, gradient checks, legacy Variable and grad_fn.next_functions (other files).
from hybrid.autograd_function import Function, FunctionCtx, once_differentiable  # noqa: E402,F401
from hybrid.gradcheck import GradcheckError, gradcheck, gradgradcheck  # noqa: E402,F401
from hybrid.legacy import Variable  # noqa: E402,F401
from hybrid import grad_fn as _grad_fn  # noqa: E402,F401  (adds TapeNode.next_functions)
from hybrid import autograd_function as function  # noqa: E402,F401  (hybrid.autograd.function)

import sys as _sys  # noqa: E402

_sys.modules.setdefault(__name__ + ".function", function)
from hybrid import autograd_functional as functional  # noqa: E402,F401  (jacobian, hessian, ...)

_sys.modules.setdefault(__name__ + ".functional", functional)
from hybrid import autograd_profiler as profiler  # noqa: E402,F401

_sys.modules.setdefault(__name__ + ".profiler", profiler)
