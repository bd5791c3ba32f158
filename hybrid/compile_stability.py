"""Trace stability: a compiled graph must not depend on Python state outside its cache key.

A value that changes the traced program without passing through a guard (`random`, `time`, a
counter, Python state the function mutates) would make a compiled function silently run the
program of its first call forever. So the second call of every new variant traces the function
again and compares the two programs node by node; when they differ, it warns once, naming the
first differing line and what to do. `hybrid.config.check_retrace` ("first", the default;
"always" compares on every call, slow, for debugging; "off")."""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import numpy as np

from compiler.ir.graph import Graph
from hybrid import errors
from hybrid.compile_trace import TraceStabilityWarning, trace_call
from hybrid.config import config


def check_stability(cf: Any, entry: Any, args: tuple, kwargs: dict) -> bool:
    """Retrace `cf` for this call and warn (once per function) if the program differs from the
    one `entry` was compiled from. True when the caller should run this call eagerly (the
    programs differ and `cf` was compiled with fallback='eager')."""
    mode = config.check_retrace
    entry.checked = mode != "always"
    if mode == "off" or getattr(cf, "_warned_unstable", False):
        return getattr(cf, "_warned_unstable", False) and cf.fallback == "eager"
    try:
        again = trace_call(cf, args, kwargs).tracer.graph
    except errors.HybridError:
        return False  # the first trace succeeded; a failing retrace is reported on recompiling
    diff = first_difference(entry.stages[0].graph, again)
    if diff is None:
        return False
    cf._warned_unstable = True
    if cf.fallback == "eager":
        warnings.warn(
            f"hybrid.compile({cf.name}): tracing the function again gave a different program "
            f"({diff}). Something the cache key does not see changes the program (Python's "
            "random module, time, a counter or other Python state): as fallback='eager' asks, "
            "the function runs eagerly from now on. To compile it, make the value an argument "
            "or draw random numbers with hybrid.rand*/randint.",
            TraceStabilityWarning, stacklevel=3)
        return True
    warnings.warn(
        f"hybrid.compile({cf.name}): tracing the function again gave a different program "
        f"({diff}). Something the cache key does not see changes the program: Python's random "
        "module, time, a counter or other Python state the function reads or mutates. The "
        "compiled function keeps running the program of its first trace. What to do: make "
        "the value an argument, draw random numbers with hybrid.rand*/randint, or compile "
        "with fallback='eager' (or call the function undecorated).",
        TraceStabilityWarning, stacklevel=3)
    return False


def first_difference(a: Graph, b: Graph) -> str | None:
    """Where two traces first differ, in words (None when they are the same program)."""
    sa, sb = _signature(a), _signature(b)
    if len(a.inputs) != len(b.inputs) or sa[0] != sb[0]:
        return f"the inputs differ: {len(a.inputs)} vs {len(b.inputs)}"
    for i, (x, y) in enumerate(zip(sa[1], sb[1])):
        if x != y:
            na = a.nodes[i]
            nb = b.nodes[i]
            return (f"first at node {i}: {na.op.value} at {na.loc or '?'} in the first trace, "
                    f"{nb.op.value} at {nb.loc or '?'} now")
    if len(sa[1]) != len(sb[1]):
        short = a if len(sa[1]) < len(sb[1]) else b
        at = len(short.nodes)
        longer = b if short is a else a
        return (f"one trace has {len(sa[1])} nodes, the other {len(sb[1])}; the first extra "
                f"node is {longer.nodes[at].op.value} at {longer.nodes[at].loc or '?'}")
    if sa[2] != sb[2]:
        return "the outputs differ"
    return None


def _signature(g: Graph) -> tuple:
    ids: dict[int, int] = {}
    for v in g.inputs:
        ids[v.id] = len(ids)
    ins = tuple(str(v.type) for v in g.inputs)
    nodes = []
    for n in g.nodes:
        args = tuple(ids.get(v.id, -1) for v in n.inputs)
        nodes.append((n.op.value, args, _canon(n.attrs), str(n.out.type)))
        ids[n.out.id] = len(ids)
    outs = tuple(ids.get(v.id, -1) for v in g.outputs)
    return ins, nodes, outs


def _canon(v: Any) -> Any:
    if isinstance(v, dict):
        return tuple((k, _canon(x)) for k, x in sorted(v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_canon(x) for x in v)
    arr = getattr(v, "array", None)
    if isinstance(v, np.ndarray) or isinstance(arr, np.ndarray):
        a = np.ascontiguousarray(v if isinstance(v, np.ndarray) else arr)
        return ("array", a.shape, a.dtype.str, hashlib.sha1(a.tobytes()).hexdigest())
    return repr(v)
