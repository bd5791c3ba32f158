"""@hybrid.compile: trace a function into a graph once per distinct cache key, optimize it, and
run the compiled graph on later calls with the same key.

The cache key (documented in the README) is: every tensor argument's shape, dtype, device and
requires_grad; the values of non-tensor arguments (and the identity of objects such as modules
and optimizers); grad mode; the values of scalars the function reads from its closure or module
globals; the structure and train/eval mode of the modules it can reach; optimizer
hyperparameters. Tensors it reaches other than through its arguments (parameters, optimizer
state, closure tensors) are graph inputs read afresh on every call, guarded by their metadata."""

from __future__ import annotations

import functools
import sys
import time
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

from compiler.ir.graph import Graph
from hybrid import errors
from hybrid.compile_backward import attach, register
from hybrid.compile_key import KeyBuilder, explain_change, flatten, nearest_key, unflatten
from hybrid.config import config, logger
from hybrid.ops import core
from hybrid.ops.core import STATE, wrap
from hybrid.tensor import _TENSOR_CLASSES
from hybrid.tracing import Effects, Tracer


class RecompileWarning(UserWarning):
    """A compiled function keeps being recompiled because some argument keeps changing."""


@dataclass
class Stage:
    """One step of compiling: the graph after it and the seconds it took."""

    name: str
    graph: Graph
    seconds: float

    def __str__(self) -> str:
        return f"# {self.name} ({self.seconds * 1e3:.2f} ms)\n{self.graph}"


@dataclass
class Entry:
    """A compiled variant: the graph, how to run it, and how to map Python objects to its I/O."""

    graph: Graph
    stages: list[Stage]
    run: Any  # list of arrays -> list of arrays
    captured: list  # tensors reached outside the arguments, read on every call
    captured_meta: list[tuple]
    effects: Effects
    out_spec: Any
    n_out: int
    out_requires_grad: list[bool] = field(default_factory=list)
    backward: Any = None  # compiled on the first backward through a call (compile_backward)
    # constant per entry, precomputed for the hit path (see _run)
    simple_args: bool = False  # no keywords, every argument a distinct tensor
    any_out_rg: bool = False
    has_effects: bool = False
    single_out: bool = False  # the function returns one tensor

    def __post_init__(self) -> None:
        self.captured = tuple(self.captured)
        self.any_out_rg = any(self.out_requires_grad)
        fx = self.effects
        self.has_effects = bool(fx.writes or fx.grads or fx.rng)
        self.single_out = self.out_spec == ("T",)

    def captured_changed(self) -> str | None:
        """Why a captured tensor no longer matches the trace (None when all match)."""
        for t, meta in zip(self.captured, self.captured_meta):
            now = _meta(t)
            if now != meta:
                return _explain_meta(t, meta, now)
        return None


def _meta(t: Any) -> tuple:
    v = t._value
    return (v.__class__, v.shape, v.dtype, t._rg, t.grad is None)


def _explain_meta(t: Any, old: tuple, new: tuple) -> str:
    labels = ("device", "shape", "dtype", "requires_grad", "grad is None")
    for label, a, b in zip(labels, old, new):
        if a != b:
            return f"a tensor it reads ({label}: {a} -> {b})"
    return "a tensor it reads"


class CompiledFunction:
    """The result of @hybrid.compile: call it like the original function."""

    def __init__(self, fn: Any, *, fallback: str = "error", name: str | None = None,
                 passes: Any = None):
        if fallback not in ("error", "eager"):
            raise ValueError(f"compile: fallback must be 'error' or 'eager', got {fallback!r}")
        functools.update_wrapper(self, fn, updated=())
        self.fn = fn
        self.fallback = fallback
        self.name = name or getattr(fn, "__name__", "fn")
        self._passes = passes
        self._keys = KeyBuilder(fn)
        self._cache: dict[tuple, Entry] = {}
        self._eager_keys: set[tuple] = set()
        self._last_key: tuple | None = None
        self._warned_budget = False
        self._changes: dict[str, int] = {}  # part of the key -> recompiles it caused
        self.last_entry: Entry | None = None

    # --- calling -------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key = self._keys.key(args, kwargs)
        entry = self._cache.get(key)
        if entry is not None and (not entry.captured or entry.captured_changed() is None):
            return _run(entry, args, kwargs)
        return self._miss(key, args, kwargs, entry)

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def _miss(self, key: tuple, args: tuple, kwargs: dict, stale: Entry | None) -> Any:
        if key in self._eager_keys:
            return self.fn(*args, **kwargs)
        if STATE.tracer is not None:  # called from inside another trace: inline it
            return self.fn(*args, **kwargs)
        near = nearest_key(list(self._cache), key) if stale is None else None
        if stale is not None:
            part, reason = "a tensor it reads", f"{stale.captured_changed()} changed"
        elif near is not None:
            part, reason = explain_change(near, key, self._keys)
        else:
            part = reason = None
        if part is not None:
            self._changes[part] = self._changes.get(part, 0) + 1
        if reason is not None and config.log_recompiles:
            logger.info("recompiling %s: %s (called at %s)", self.name, reason,
                        errors.user_location(2) or "?")
        if len(self._cache) >= config.recompile_limit and stale is None:
            self._over_budget(reason)
        try:
            entry = self._compile(args, kwargs)
        except errors.TraceError as e:
            if self.fallback != "eager":
                raise
            warnings.warn(f"hybrid.compile({self.name}): running eagerly because tracing "
                          f"failed: {e}", RuntimeWarning, stacklevel=_user_stacklevel())
            self._eager_keys.add(key)
            return self.fn(*args, **kwargs)
        self._cache[key] = entry
        self._last_key = key
        self.last_entry = entry
        return _run(entry, args, kwargs)

    def _over_budget(self, reason: str | None) -> None:
        if self._warned_budget:
            return
        self._warned_budget = True
        part = max(self._changes, key=self._changes.get) if self._changes else "some argument"
        count = self._changes.get(part, 0)
        warnings.warn(
            f"hybrid.compile({self.name}) has been compiled {len(self._cache)} times "
            f"(limit {config.recompile_limit}): {part} keeps changing ({count} recompiles "
            f"because of it; the last change: {reason or 'unknown'}). What to do: if it is a "
            "Python number that varies from call to call, pass it as a tensor (a graph input, "
            "e.g. hybrid.tensor(value)) instead; if it is meant to be static (a setting), keep "
            "it to a few values; if a tensor's shape keeps changing, pad it to a few fixed "
            "sizes; if the variants are intended, raise hybrid.config.recompile_limit "
            "(HYBRID_RECOMPILE_LIMIT).",
            RecompileWarning, stacklevel=_user_stacklevel())

    # --- compiling -----------------------------------------------------------------------------

    def _compile(self, args: tuple, kwargs: dict) -> Entry:
        t0 = time.perf_counter()
        tracer = Tracer(self.name, namer=self._keys.namer(args, kwargs))
        leaves, _ = flatten((args, kwargs))
        names = self._keys.arg_paths(args, kwargs)
        n_args = 0
        with tracer:
            for t, path in zip(leaves, names):
                if t.__class__ in _TENSOR_CLASSES and not getattr(t._value, "traced", False):
                    tracer.lift(t, path)
                    n_args += 1
            result = self.fn(*args, **kwargs)
            out_leaves, out_spec = flatten(result)
            out_vals, out_rg = [], []
            for t in out_leaves:
                if t.__class__ in _TENSOR_CLASSES:
                    out_vals.append(tracer.value_of(t))
                    out_rg.append(bool(t._rg))
            extra, extra_names, fx = tracer.effects()
            tracer.graph.set_outputs(out_vals + extra,
                                     [f"out{i}" for i in range(len(out_vals))] + extra_names)
        graph = tracer.graph
        captured = [rec.tensor for rec in tracer.lifted[n_args:]]
        stages = [Stage("trace", graph, time.perf_counter() - t0)]
        graph, pass_stages = _optimize(graph, self._passes)
        stages += pass_stages
        if config.log_graphs:
            logger.info("compiled %s:\n%s", self.name, graph)
        simple = not kwargs and all(a.__class__ in _TENSOR_CLASSES for a in args) and len(
            {id(a) for a in args}) == len(args)
        t1 = time.perf_counter()
        donate = {len(out_vals) + oi: li for li, oi in fx.writes}
        run = _executable(graph, [rec.array for rec in tracer.lifted], donate)
        if hasattr(run, "kernel_count"):
            where = "native, from the disk cache" if run.from_cache else "native: fuse, plan, LLVM"
            stages.append(Stage(where, graph, time.perf_counter() - t1))
        return Entry(
            graph=graph, stages=stages, run=run, captured=captured,
            captured_meta=[_meta(t) for t in captured], effects=fx, out_spec=out_spec,
            n_out=len(out_vals), out_requires_grad=out_rg, simple_args=simple,
        )

    # --- inspecting ----------------------------------------------------------------------------

    def graph_for(self, *args: Any, **kwargs: Any) -> Graph:
        """The optimized graph this function runs for these arguments (compiling if needed)."""
        key = self._keys.key(args, kwargs)
        entry = self._cache.get(key)
        if entry is None or (entry.captured and entry.captured_changed()):
            entry = self._compile(args, kwargs)
            self._cache[key] = entry
            self._last_key = key
            self.last_entry = entry
        return entry.graph

    def profile(self, *args: Any, repeats: int = 10, **kwargs: Any) -> str:
        """Every step of the native plan for these arguments (compiling if needed) with its
        median time over `repeats` runs. The runs write copies of what the function updates in
        place (parameters, optimizer state), which are left as they were."""
        self.graph_for(*args, **kwargs)
        entry = self.last_entry
        if not hasattr(entry.run, "profile"):
            return f"{self.name}: runs on the interpreter (HYBRID_BACKEND=native to profile)"
        leaves, _ = flatten((args, kwargs))
        targets = tuple(_unique_tensors(leaves)) + entry.captured
        arrays = [t._value for t in targets]
        for i in entry.run.executor.in_place_inputs:
            arrays[i] = arrays[i].copy()
        return entry.run.profile(arrays, repeats)

    @property
    def graphs(self) -> list[Stage]:
        """Every stage of the most recent compilation: the traced graph, then each pass."""
        return list(self.last_entry.stages) if self.last_entry else []

    @property
    def kernel_count(self) -> int | None:
        """Fused kernels of the most recent compilation (None on the interpreter)."""
        run = self.last_entry.run if self.last_entry else None
        return getattr(run, "kernel_count", None)

    @property
    def memory_plan(self) -> Any:
        """The most recent compilation's memory plan (arena, peak, naive bytes; `.describe()`),
        or None on the interpreter."""
        run = self.last_entry.run if self.last_entry else None
        return getattr(run, "memory", None)

    def describe(self) -> str:
        """The most recent compilation: the graph with the kernel that holds each node, the
        kernels, the native plan and the memory plan."""
        if self.last_entry is None:
            return f"{self.name}: not compiled yet"
        run = self.last_entry.run
        return run.describe() if hasattr(run, "describe") else str(self.last_entry.graph)

    def cache_size(self) -> int:
        return len(self._cache)

    def clear_cache(self) -> None:
        self._cache.clear()
        self._eager_keys.clear()
        self._last_key = None
        self._changes.clear()
        self._warned_budget = False
        self.last_entry = None


def _user_stacklevel() -> int:
    """The `stacklevel` for warnings.warn that points at the innermost frame of user code."""
    f = sys._getframe(1)
    level = 1
    while f is not None and errors._in_package(f.f_code.co_filename):
        f = f.f_back
        level += 1
    return level


def _optimize(graph: Graph, passes: Any) -> tuple[Graph, list[Stage]]:
    from compiler.passes import DEFAULT_PIPELINE, run_passes

    out, stages = run_passes(graph, DEFAULT_PIPELINE if passes is None else passes)
    return out, [Stage(s.name, s.graph, s.seconds) for s in stages]


def _executable(graph: Graph, example: list | None = None,
                donate: dict[int, int] | None = None) -> Any:
    """How to run `graph`: the native CPU backend for numpy arrays (config.backend 'native'),
    else the reference interpreter (numpy or CuPy)."""
    import numpy as np

    from compiler.ir.interpret import interpret

    on_cpu = example is None or all(a.__class__ is np.ndarray for a in example)
    if config.backend == "native" and on_cpu:
        try:
            from compiler.backend_cpu import CpuExecutable

            return CpuExecutable(graph, donate=donate)
        except NotImplementedError as e:  # an op the code generator lacks: stay correct
            warnings.warn(f"hybrid.compile: running {graph.name} on the interpreter ({e})",
                          RuntimeWarning, stacklevel=2)

    def run(arrays: list) -> list:
        xp = np if not arrays or arrays[0].__class__ is np.ndarray else _xp(arrays[0])
        return interpret(graph, arrays, xp)

    return run


def _xp(a: Any) -> Any:
    import cupy

    return cupy


def _run(entry: Entry, args: tuple, kwargs: dict) -> Any:
    """One compiled call: gather input arrays, run, apply effects, rebuild the outputs."""
    # NOTE: the cache-hit path. The key fixes the argument structure, so whether the arguments
    # are exactly the graph's leading inputs (entry.simple_args) is decided once per entry.
    if entry.simple_args:
        targets = args + entry.captured if entry.captured else args
    else:
        leaves, _ = flatten((args, kwargs))
        targets = tuple(_unique_tensors(leaves)) + entry.captured
    primals = [t._value for t in targets]
    outs = entry.run(primals)
    if entry.single_out and not entry.has_effects and not (STATE.grad and entry.any_out_rg):
        return wrap(outs[0])
    n = entry.n_out
    results = [wrap(o) for o in outs[:n]]
    if entry.any_out_rg and STATE.grad:
        attach(entry, targets, primals, results)
    if entry.has_effects:
        fx = entry.effects
        for li, oi in fx.writes:
            t = targets[li]
            out = outs[n + oi]
            if out is not t._value:  # the native backend may have updated it in place
                t._value[...] = out
            t._version += 1
        for li, oi in fx.grads:
            targets[li].grad = None if oi is None else wrap(outs[n + oi])
        for gen, draws in fx.rng:
            gen._state._value[1] += draws
    return results[0] if entry.single_out else unflatten(entry.out_spec, results)


def _unique_tensors(leaves: Any) -> list:
    seen: set[int] = set()
    out = []
    for t in leaves:
        if t.__class__ in _TENSOR_CLASSES and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def compile(fn: Any = None, *, fallback: str = "error", passes: Any = None) -> Any:
    """Compile `fn` (a function or an nn.Module): `@hybrid.compile`, `hybrid.compile(fn)`,
    `@hybrid.compile(fallback="eager")`. Returns a callable with the same signature."""
    if fn is None:
        return lambda f: compile(f, fallback=fallback, passes=passes)
    if hasattr(fn, "forward") and hasattr(fn, "named_parameters"):
        return CompiledModule(fn, fallback=fallback, passes=passes)
    if not callable(fn):
        raise errors.DTypeError(errors.at_user(f"compile: expected a function or a Module, got "
                                               f"{type(fn).__name__}"))
    return CompiledFunction(fn, fallback=fallback, passes=passes)


class CompiledModule:
    """hybrid.compile(module): calls run the module's forward compiled; attributes pass through."""

    def __init__(self, module: Any, **options: Any):
        self.__dict__["module"] = module
        self.__dict__["forward"] = CompiledFunction(module.__call__, name=type(module).__name__,
                                                    **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["module"], name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.module, name, value)

    # NOTE: special methods are looked up on the type, not through __getattr__: forward the
    # container protocol so `compiled[0]`, `len(compiled)` and iteration reach the module.
    def __getitem__(self, index: Any) -> Any:
        return self.module[index]

    def __len__(self) -> int:
        return len(self.module)

    def __iter__(self) -> Any:
        return iter(self.module)

    def __repr__(self) -> str:
        return f"CompiledModule({self.module!r})"


core.compile = compile
register()
