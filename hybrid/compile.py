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
import inspect
import sys
import threading
import time
import types
import warnings
from collections import OrderedDict
from typing import Any

from compiler.ir.graph import Graph
from compiler.passes.manager import PassRecord
from hybrid import errors
from hybrid.compile_backward import register
from hybrid.compile_entry import Entry, hyper_guards, meta_of, run_entry
from hybrid.compile_key import KeyBuilder, _is_optimizer, explain_change, nearest_key
from hybrid.compile_stability import check_stability
from hybrid.compile_trace import trace_call
from hybrid.config import config
from hybrid.config import logger
from hybrid.ops import core
from hybrid.ops.core import STATE
from hybrid.tensor import _TENSOR_CLASSES


# NOTE: tracing swaps the arrays of the tensors it reads for graph values while it runs, so two
# traces at once could see each other's; compiling is rare, so one lock serialises it.
_COMPILE_LOCK = threading.RLock()


class RecompileWarning(UserWarning):
    """A compiled function keeps being recompiled because some argument keeps changing."""


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
        self._cache: OrderedDict[tuple, list[Entry]] = OrderedDict()  # LRU: newest last
        self._eager_keys: set[tuple] = set()
        self._last_key: tuple | None = None
        self._mru: list | None = None  # the entries list of the most recently used key
        self._warned_budget = False
        self._compiles = 0
        self._changes: dict[str, int] = {}  # part of the key -> recompiles it caused
        self.last_entry: Entry | None = None

    # --- calling -------------------------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        key, tensors = self._keys.key(args, kwargs)
        entries = self._cache.get(key)
        if entries is not None and STATE.tracer is None:
            for entry in entries:
                targets = entry.targets(tensors)
                if not entry.guarded or entry.mismatch(targets) is None:
                    if not entry.checked and check_stability(self, entry, args, kwargs):
                        self._eager_keys.add(key)  # unstable, fallback='eager': run eagerly
                        del self._cache[key]
                        return self.fn(*args, **kwargs)
                    if entries is not self._mru:  # the same key again costs nothing
                        self._touch(key, entries)
                    return run_entry(entry, targets)
        return self._miss(key, tensors, args, kwargs, entries)

    def _touch(self, key: tuple, entries: list) -> None:
        """Mark `key` (holding `entries`) most recently used, so the cap drops the variant used
        least recently."""
        try:
            self._cache.move_to_end(key)  # one C call: atomic under the GIL
        except KeyError:  # another thread's compile evicted it meanwhile
            pass
        self._mru = entries

    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return self if obj is None else types.MethodType(self, obj)

    def _miss(self, key: tuple, tensors: list, args: tuple, kwargs: dict,
              stale: list[Entry] | None) -> Any:
        if key in self._eager_keys:
            return self.fn(*args, **kwargs)
        if STATE.tracer is not None:  # called from inside another trace: inline it
            return self.fn(*args, **kwargs)
        with _COMPILE_LOCK:  # concurrent first calls compile once; one trace at a time
            entries = self._cache.get(key)
            if entries is not None and entries is not stale:
                for entry in entries:
                    targets = entry.targets(tensors)
                    if entry.mismatch(targets) is None:
                        self._touch(key, entries)
                        return run_entry(entry, targets)
            return self._compile_and_run(key, tensors, args, kwargs, entries)

    def _compile_and_run(self, key: tuple, tensors: list, args: tuple, kwargs: dict,
                         stale: list[Entry] | None) -> Any:
        if stale:
            why = stale[-1].mismatch(stale[-1].targets(tensors)) or "a guard"
            part = why.split(":")[0] if "hyperparameter" in why else why.split(" (")[0]
            reason = why if "hyperparameter" in why else f"{why} changed"
        else:
            near = nearest_key(list(self._cache), key)
            part, reason = explain_change(near, key, self._keys) if near else (None, None)
        if part is not None:
            self._changes[part] = self._changes.get(part, 0) + 1
        if reason is not None and config.log_recompiles:
            logger.info("recompiling %s: %s (called at %s)", self.name, reason,
                        errors.user_location(2) or "?")
        if self._compiles >= config.recompile_limit:
            self._over_budget(reason)
        self._check_arguments(args, kwargs)
        try:
            entry = self._compile(args, kwargs)
        except errors.TraceError as e:
            if self.fallback != "eager":
                raise
            warnings.warn(f"hybrid.compile({self.name}): running eagerly because tracing "
                          f"failed: {e}", RuntimeWarning, stacklevel=_user_stacklevel())
            self._eager_keys.add(key)
            return self.fn(*args, **kwargs)
        self._store(key, entry)
        return run_entry(entry, entry.targets(tensors))

    def _check_arguments(self, args: tuple, kwargs: dict) -> None:
        """A call that does not fit the function's signature is a HybridError at the call."""
        try:
            sig = inspect.signature(self.fn)
        except (TypeError, ValueError):
            return
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise errors.error(TypeError, f"hybrid.compile({self.name}): {e}; the function's "
                               f"signature is {self.name}{sig}") from None

    def _store(self, key: tuple, entry: Entry) -> None:
        """Keep `entry` under `key`, dropping the least recently used variants past the cap.

        Calls that hit move their key to the end (`_touch`) without the lock, so the cache is
        only read here through single C calls (`list(...)`, `next(iter(...))`).
        """
        self._compiles += 1
        self._mru = self._cache.setdefault(key, [])
        self._mru.append(entry)
        self._cache.move_to_end(key)
        while sum(map(len, list(self._cache.values()))) > max(1, config.cache_size_limit):
            oldest = next(iter(self._cache))
            self._cache[oldest].pop(0)
            if not self._cache[oldest]:
                del self._cache[oldest]
        self._last_key = key
        self.last_entry = entry

    def _over_budget(self, reason: str | None) -> None:
        if self._warned_budget:
            return
        self._warned_budget = True
        part = max(self._changes, key=self._changes.get) if self._changes else "some argument"
        count = self._changes.get(part, 0)
        warnings.warn(
            f"hybrid.compile({self.name}) has been compiled {self._compiles} times "
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
        traced = trace_call(self, args, kwargs)
        tracer = traced.tracer
        graph = tracer.graph
        stages = [PassRecord("trace", graph, time.perf_counter() - t0)]
        graph, pass_stages = _optimize(graph, self._passes)
        stages += pass_stages
        if config.log_graphs:
            logger.info("compiled %s:\n%s", self.name, graph)
        n_out = traced.n_out
        donate = {n_out + oi: li for li, oi in traced.effects.writes}
        run = _executable(graph, [rec.array for rec in tracer.lifted], donate,
                          views=traced.views)
        stages += [PassRecord(f"native: {name}", graph, seconds)
                   for name, seconds in getattr(run, "timings", ())]
        n_args = traced.n_args
        captured = [rec.tensor for rec in tracer.lifted[n_args:]]
        grad_sources = [(i, rec.grad_of) for i, rec in enumerate(tracer.lifted)
                        if i >= n_args and rec.grad_of is not None]
        runtime = {(id(h.group), h.key, h.index) for h in tracer.hypers}
        optimizers = [o for _, o in self._keys.roots_named(args, kwargs) if _is_optimizer(o)]
        simple = not kwargs and all(a.__class__ in _TENSOR_CLASSES for a in args) and len(
            {id(a) for a in args}) == len(args)
        return Entry(
            graph=graph, stages=stages, run=run, captured=captured,
            captured_meta=[meta_of(rec.tensor if rec.grad_of is None else rec.tensor)
                           for rec in tracer.lifted[n_args:]],
            effects=traced.effects, out_spec=traced.out_spec, n_out=n_out, n_args=n_args,
            out_requires_grad=traced.out_rg, out_kinds=traced.out_kinds,
            grad_sources=grad_sources, grad_guards=tracer.grad_guards(), hypers=tracer.hypers,
            hyper_guards=hyper_guards(list({id(o): o for o in optimizers}.values()), runtime),
            simple_args=simple, backend=getattr(run, "backend", "interpreter"),
        )

# --- inspecting ----------------------------------------------------------------------------

    def graph_for(self, *args: Any, **kwargs: Any) -> Graph:
        """The optimized graph this function runs for these arguments (compiling if needed)."""
        key, tensors = self._keys.key(args, kwargs)
        for entry in self._cache.get(key, ()):
            if entry.mismatch(entry.targets(tensors)) is None:
                self.last_entry = entry
                return entry.graph
        entry = self._compile(args, kwargs)
        self._store(key, entry)
        return entry.graph

    def profile(self, *args: Any, repeats: int = 10, **kwargs: Any) -> str:
        """Every step of the native plan for these arguments (compiling if needed) with its
        median time over `repeats` runs. The runs write copies of what the function updates in
        place (parameters, optimizer state), which are left as they were."""
        self.graph_for(*args, **kwargs)
        entry = self.last_entry
        if not hasattr(entry.run, "profile"):
            return f"{self.name}: runs on the interpreter (HYBRID_BACKEND=native to profile)"
        arrays = [t._value for t in entry.targets(self._keys.key(args, kwargs)[1])]
        for i in entry.run.executor.donated_inputs:
            arrays[i] = arrays[i].copy()
        return entry.run.profile(arrays, repeats)

    @property
    def graphs(self) -> list[PassRecord]:
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
        """How many compiled variants are cached."""
        return sum(len(v) for v in self._cache.values())

    @property
    def compile_count(self) -> int:
        """How many times this function has been compiled (traced and built) in all."""
        return self._compiles

    def clear_cache(self) -> None:
        self._cache.clear()
        self._compiles = 0
        self._eager_keys.clear()
        self._last_key = None
        self._mru = None
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


def _optimize(graph: Graph, passes: Any) -> tuple[Graph, list[PassRecord]]:
    from compiler.passes import DEFAULT_PIPELINE, run_passes

    return run_passes(graph, DEFAULT_PIPELINE if passes is None else passes)


def _executable(graph: Graph, example: list | None = None,
                donate: dict[int, int] | None = None, views: frozenset[int] = frozenset(),
                backend: str | None = None) -> Any:
    """How to run `graph`: on `backend` (default config.backend) when it takes the example
    arrays and supports the graph, else on the reference interpreter (numpy or CuPy). Outputs
    that are constants, inputs, repeats or views of inputs are split off first
    (compiler.outputs); the executable's `backend` names the backend that runs it."""
    from compiler.outputs import RUN, is_trivial, split_outputs

    reduced, sources = split_outputs(graph, views, donate)
    if is_trivial(sources):
        return _backend_for(graph, example, donate, backend)
    new_index = {k: s.index for k, s in enumerate(sources) if s.kind == RUN}
    donate = {new_index[k]: li for k, li in (donate or {}).items() if k in new_index}
    if reduced.outputs:
        inner = _backend_for(reduced, example, donate, backend)
        return _Assembled(inner, sources, inner.backend)
    from compiler import backends  # nothing left to run: the backend the rest would run on

    return _Assembled(None, sources, backends.choose(
        graph, example, backend or config.backend)[0].name)


class _Assembled:
    """An executable whose outputs are rebuilt from the backend's (compiler.outputs)."""

    def __init__(self, inner: Any, sources: list, backend: str):
        from compiler.outputs import INPUT

        self.inner = inner
        self.backend = backend
        self.sources = sources
        self.has_inputs = any(s.kind == INPUT for s in sources)

    def __call__(self, arrays: list) -> list:
        from compiler.outputs import assemble, input_copies

        copies = input_copies(self.sources, arrays) if self.has_inputs else None
        outs = self.inner(arrays) if self.inner is not None else []
        return assemble(self.sources, outs, arrays, copies)

    def __getattr__(self, name: str) -> Any:
        if self.__dict__.get("inner") is None:
            raise AttributeError(name)
        return getattr(self.inner, name)


def _backend_for(graph: Graph, example: list | None, donate: dict[int, int] | None,
                 backend: str | None = None) -> Any:
    """The executable of `graph` from `backend` (default hybrid.config.backend) through the
    backend protocol (compiler/backends): the interpreter, with a warning, when that backend
    cannot run the graph (it says so before fusion, or raises NotImplementedError)."""
    from compiler import backends

    try:
        chosen, why = backends.choose(graph, example, backend or config.backend)
    except ValueError as e:  # an unknown backend name
        raise errors.error(ValueError, f"hybrid.compile: {e} (hybrid.config.backend / "
                                       "HYBRID_BACKEND)") from None
    if why is None and chosen.name != "interpreter":
        try:
            return chosen.compile(graph, donate)
        except NotImplementedError as e:  # an op the code generator lacks: stay correct
            why, chosen = str(e), backends.get("interpreter")
    if why is not None:
        warnings.warn(f"hybrid.compile: running {graph.name} on the interpreter ({why})",
                      RuntimeWarning, stacklevel=2)
    return chosen.compile(graph, donate)


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
