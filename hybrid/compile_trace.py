"""Tracing one call of a compiled function: lift the arguments, run the function on tracer
tensors, and say how each returned tensor is made (a new value, an input returned as it is,
the same object twice, a view of an input)."""

from __future__ import annotations

import contextlib
import random as _random
from dataclasses import dataclass
from typing import Any

from hybrid import errors
from hybrid.compile_entry import NEW, SAME, TARGET
from hybrid.compile_tree import call_leaves, flatten
from hybrid.ops.core import STATE
from hybrid.tensor import _TENSOR_CLASSES
from hybrid.tracing import Effects, Tracer, is_traced


@dataclass
class Traced:
    """A finished trace: the tracer (graph, lifted tensors) and how outputs map to it."""

    tracer: Tracer
    n_args: int
    out_spec: Any
    out_kinds: list[tuple[int, int]]
    out_rg: list[bool]
    effects: Effects
    views: frozenset[int] = frozenset()

    @property
    def n_out(self) -> int:
        return len(self.out_rg)


def trace_call(cf: Any, args: tuple, kwargs: dict) -> Traced:
    """Trace `cf.fn(*args, **kwargs)` into a graph whose outputs are the new tensors it returns,
    then the values its effects write back."""
    tracer = Tracer(cf.name, namer=cf._keys.namer(args, kwargs))
    leaves = call_leaves(args, kwargs)
    names = cf._keys.arg_paths(args, kwargs)
    n_args = 0
    random_state = _random.getstate()
    with tracer, _watch_random() as random_calls:
        for t, path in zip(leaves, names):
            if t.__class__ in _TENSOR_CLASSES and not is_traced(t):
                tracer.lift(t, path)
                n_args += 1
        result = cf.fn(*args, **kwargs)
        out_leaves, out_spec = flatten(result)
        kinds, values, rg, views = _outputs(tracer, out_leaves)
        extra, extra_names, fx = tracer.effects()
        tracer.graph.set_outputs(values + extra,
                                 [f"out{i}" for i in range(len(values))] + extra_names)
    if random_calls:
        _random.setstate(random_state)  # an eager run after this (fallback) draws as eager would
        raise errors.error(errors.TraceError, _random_message(cf.name, random_calls))
    return Traced(tracer, n_args, out_spec, kinds, rg, fx, frozenset(views))


def _outputs(tracer: Tracer, leaves: list) -> tuple[list, list, list, set]:
    kinds: list[tuple[int, int]] = []
    values: list = []
    rg: list[bool] = []
    views: set[int] = set()
    first: dict[int, int] = {}
    for t in leaves:
        if t.__class__ not in _TENSOR_CLASSES:
            continue
        if id(t) in first:  # the same tensor object returned again
            kinds.append((SAME, first[id(t)]))
            continue
        first[id(t)] = len(kinds)
        li = tracer._by_id.get(id(t))
        if li is not None:  # an input (argument or captured tensor) returned as it is
            kinds.append((TARGET, li))
            continue
        if _views_an_input(tracer, t):
            views.add(len(values))
        kinds.append((NEW, len(values)))
        values.append(tracer.value_of(t))
        rg.append(bool(t._rg))
    return kinds, values, rg, views


def _views_an_input(tracer: Tracer, t: Any) -> bool:
    """Eager would return a tensor sharing memory with an input (a view or detach() of it)."""
    b = t
    while True:
        nxt = b._base if b._base is not None else b._alias_of
        if nxt is None:
            break
        b = nxt
    return b is not t and id(b) in tracer._by_id


# --- Python randomness while tracing ---------------------------------------------------------

_RANDOM_FUNCTIONS = ("random", "randint", "randrange", "uniform", "choice", "choices", "shuffle",
                     "sample", "gauss", "normalvariate", "betavariate", "expovariate")


def _random_message(name: str, calls: list[str]) -> str:
    more = f" (and {len(calls) - 1} more)" if len(calls) > 1 else ""
    return (f"hybrid.compile({name}): the traced code called {calls[0]}{more}; a compiled graph "
            "would bake the value drawn while tracing into every call, where eager draws a new "
            "one each time. What to do: pass the value as an argument (a changed argument "
            "recompiles), draw it with hybrid.rand*/randint (fresh on every call), or compile "
            "with fallback='eager' (this function then runs eagerly, drawing as eager does)")


@contextlib.contextmanager
def _watch_random():
    """Record calls of Python's `random` module made by the traced code on this thread: the
    value drawn while tracing would be baked into the graph."""
    calls: list[str] = []
    saved = {}

    def watch(fn_name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            if STATE.tracer is not None:
                calls.append(f"random.{fn_name} at {errors.user_location(1) or '?'}")
            return fn(*a, **k)

        return wrapper

    for fn_name in _RANDOM_FUNCTIONS:
        fn = getattr(_random, fn_name, None)
        if fn is not None and not getattr(fn, "_hybrid_watch", False):
            saved[fn_name] = fn
            w = watch(fn_name, fn)
            w._hybrid_watch = True  # type: ignore[attr-defined]
            setattr(_random, fn_name, w)
    try:
        yield calls
    finally:
        for fn_name, fn in saved.items():
            setattr(_random, fn_name, fn)


class TraceStabilityWarning(UserWarning):
    """A compiled function's graph depends on Python state that is not part of its cache key."""
