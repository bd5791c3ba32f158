"""Native kernels for eager composites (softmax, gelu, layer_norm, ...).

An eager composite is a Python function of Tensor ops (`hybrid.nn.functional`). Run eagerly it
makes one numpy pass per primitive; here it is traced once per signature (composite, attributes,
input shapes and dtypes) into a graph and compiled by the native backend, the same fusion,
schedule and code generator as `hybrid.compile`, so an eager call is one fused kernel. The
kernels' object code is cached on disk by the code generator (`compiler.codegen.cache`), so a
new process rebuilds a signature from the cache without running LLVM.

A signature is compiled once it is hot: seen at least twice, with at least
`SETTINGS.min_elements` (2^18) input elements over its calls, since a compile costs about as much
as that many elements' worth of numpy passes (20-100 ms cold, 5 ms from the disk cache). A shape
used once in a notebook cell runs the numpy composite and compiles nothing; a (256, 1024)
activation compiles on its second call, a (64, 64) one after 64 calls. Outputs that require grad get one tape node; its
backward is the composite's backward graph, compiled the same way (and, under
create_graph=True, the composite replayed as Tensor ops, so higher-order gradients work).

Not used while tracing (the composite is traced into the user's graph as before), for arrays that
are not CPU float32/float64 (int64 for indices), when `hybrid.config.eager_kernels` is off (HYBRID_EAGER_KERNELS=0), or
when `hybrid.config.backend` is "interpreter": then every op runs on numpy, the reference, and
the interpreter's results are bit for bit eager's.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from hybrid.config import config as _config
from hybrid.ops.core import STATE, TapeNode, wrap

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64))  # int64: indices
_ndarray = np.ndarray


class _EagerKernelOp:
    """The autograd "op" of a native eager composite's output: `gelu` prints as GeluBackward."""

    __slots__ = ("value",)

    def __init__(self, name: str):
        self.value = name


_OPS: dict[str, _EagerKernelOp] = {}


def _op(name: str) -> _EagerKernelOp:
    op = _OPS.get(name)
    if op is None:
        from hybrid.ops.vjp import VJP

        op = _OPS[name] = _EagerKernelOp(name)
        VJP[op] = _vjp  # type: ignore[index]
    return op


class Settings:
    enabled = os.environ.get("HYBRID_EAGER_KERNELS", "1") not in ("0", "")
    min_calls = 2  # a signature compiles on its min_calls-th call at the earliest
    min_elements = 1 << 18  # ... once its calls have seen this many input elements


SETTINGS = Settings()


class Kernel:
    """One compiled signature: the traced graph, its executable and its backward executables
    (one per set of inputs that require grad)."""

    __slots__ = ("name", "op", "graph", "run", "backward", "calls")

    def __init__(self, name: str, graph: Any, run: Any):
        self.name = name
        self.op = _op(name)
        self.graph = graph
        self.run = run
        self.backward: dict[tuple[int, ...], Any] = {}
        self.calls = 0


_KERNELS: dict[tuple, Kernel | None] = {}  # None: the signature cannot run natively
_SEEN: dict[tuple, int] = {}


def active() -> bool:
    """Eager kernels are used: switched on, not tracing, and the native backend selected (with
    hybrid.config.backend = "interpreter" every op runs on numpy, the reference)."""
    return SETTINGS.enabled and STATE.tracer is None and _config.backend == "native"


def call(name: str, fn: Callable, attrs: tuple, tensors: tuple) -> Any:
    """`fn(*tensors, *attrs)` through a native kernel, or None when the caller should run the
    composite itself (tracing, a dtype or device without kernels, a signature not yet hot)."""
    if not active():
        return None
    vals = []
    for t in tensors:
        v = t._value
        if v.__class__ is not _ndarray or v.dtype not in _DTYPES or v.size == 0:
            return None
        vals.append(v)
    key = (name, attrs, tuple((v.shape, v.dtype.char) for v in vals))
    kernel = _KERNELS.get(key, False)
    if kernel is False:
        calls, elements = _SEEN.get(key, (0, 0))
        calls, elements = calls + 1, elements + sum(v.size for v in vals)
        _SEEN[key] = (calls, elements)
        if calls < SETTINGS.min_calls or elements < SETTINGS.min_elements:
            return None
        kernel = _KERNELS[key] = _build(name, fn, attrs, vals)
        _SEEN.pop(key, None)
    if kernel is None:
        return None
    kernel.calls += 1
    out = wrap(kernel.run(vals)[0])
    if STATE.grad:
        rg = tuple(i for i, t in enumerate(tensors) if t._rg)
        if rg:
            out._rg = True
            # NOTE: every input is on the node (gradients None for those that need none), so an
            # in-place change of any saved input before backward is the usual AutogradError
            out._node = TapeNode(kernel.op, tensors,
                                 {"kernel": kernel, "primals": vals, "rg": rg, "fn": fn,
                                  "attrs": attrs}, None)
    return out


def _build(name: str, fn: Callable, attrs: tuple, vals: list) -> Kernel | None:
    """Trace `fn` on inputs of the arrays' types and compile the graph natively (None when the
    native backend cannot run it: the composite stays on numpy)."""
    from compiler.ir.types import DType, TensorType
    from hybrid.tracing import GRAD_MARKS, Tracer

    tracer = Tracer(f"eager_{name}")
    with tracer:
        ins = [wrap(tracer.new_input(TensorType(tuple(v.shape), DType.from_np(v.dtype)), f"x{i}"))
               for i, v in enumerate(vals)]
        prev = STATE.grad
        STATE.grad = False
        try:
            out = fn(*ins, *attrs)
        finally:
            STATE.grad = prev
        tracer.graph.set_outputs([tracer.value_of(out)], ["out"])
    graph = tracer.graph
    # traced with grad off on purpose: the kernel is differentiated as a whole (its backward
    # replays every node), not as code that ran under no_grad
    GRAD_MARKS.pop(graph, None)
    run = _compile_native(graph)
    return None if run is None else Kernel(name, graph, run)


def _compile_native(graph: Any) -> Any:
    import warnings

    from compiler import backends
    from hybrid.compile import _executable, _optimize

    if backends.choose(graph, None, "native")[1] is not None:
        return None
    optimized, _ = _optimize(graph, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run = _executable(optimized, backend="native")
    return run if run.backend == "native" else None


def _vjp(g: Any, node: TapeNode) -> tuple:
    a = node.attrs
    if STATE.grad:  # create_graph=True: the composite's own tape gives higher-order gradients
        from hybrid.autograd import grad

        inputs = node.inputs
        out = a["fn"](*inputs, *a["attrs"])
        return _spread(grad([out], [inputs[i] for i in a["rg"]], [g], create_graph=True,
                            allow_unused=True), a["rg"], len(inputs))
    kernel: Kernel = a["kernel"]
    rg = a["rg"]
    run = kernel.backward.get(rg)
    if run is None:
        from hybrid.compile_backward import backward_graph

        run = _compile_native(backward_graph(kernel.graph, list(rg), [0]))
        if run is None:  # pragma: no cover - a forward that compiled has a backward that does
            raise NotImplementedError(f"eager kernel {kernel.name}: backward did not compile")
        kernel.backward[rg] = run
    gv = g._value
    if gv.__class__ is not _ndarray or gv.dtype != kernel.graph.outputs[0].type.dtype.np:
        gv = np.asarray(gv, kernel.graph.outputs[0].type.dtype.np)
    return _spread([wrap(x) for x in run(list(a["primals"]) + [gv])], rg, len(node.inputs))


def _spread(grads: Any, rg: tuple, n: int) -> tuple:
    out: list = [None] * n
    for i, gx in zip(rg, grads):
        out[i] = gx
    return tuple(out)


def stats() -> dict:
    """Compiled signatures and their call counts (for tests and benchmarks)."""
    return {k: (v.calls if v is not None else None) for k, v in _KERNELS.items()}
