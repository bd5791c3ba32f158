"""Control flow in the graph: `scan`, `while` and `cond` nodes whose bodies are graphs.

A node of these ops runs its body graph(s) instead of one array function. The IR has one
result per node, so a loop with several results is several sibling nodes that share the body,
the inputs and every attribute but `index` (which result the node is); a backend runs the loop
once for all of them (`group_key`).

- `scan(*carries, *xs, *consts, body, n_carry, n_x, length, reverse, history, index)`: the body
  maps (carries, one slice of each x along dim 0, consts) to (new carries, ys). Results: the
  final carries, then each y stacked along a new dim 0, then (when `history`) each carry as it
  was at the start of every step, stacked (the backward of a scan reads them).
- `while(*carries, *consts, cond, body, n_carry, index)`: `cond` maps (carries, consts) to a
  0-d bool, `body` to new carries; results: the carries when cond is false.
- `cond(pred, *operands, then, else_, index)`: pred is a 0-d bool; both branches map the
  operands to results of one type; result `index` of the branch pred picks.

`run(node_op, arrays, attrs, run_graph)` is the reference semantics, with `run_graph(graph,
arrays)` the evaluator of a body (the reference interpreter, or a compiled body)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from compiler.ir.types import DType, OpError, TensorType


class Body:
    """A body graph held by a control-flow node. Compared by identity (siblings share one);
    printed in full, so two programs with different bodies never print alike."""

    __slots__ = ("graph",)

    def __init__(self, graph: Any):
        self.graph = graph

    def __repr__(self) -> str:
        text = str(self.graph).replace("\n", "\n    ")
        return "{\n    " + text + "\n  }"

    @property
    def in_types(self) -> list[TensorType]:
        return [v.type for v in self.graph.inputs]

    @property
    def out_types(self) -> list[TensorType]:
        return [v.type for v in self.graph.outputs]


def _stacked(t: TensorType, n: int) -> TensorType:
    return TensorType((n,) + tuple(t.shape), t.dtype)


def _check(name: str, what: str, got: Sequence[TensorType], want: Sequence[TensorType]) -> None:
    if list(got) != list(want):
        raise OpError(name, f"{what}: got {', '.join(map(str, got)) or 'nothing'}, the body "
                            f"takes {', '.join(map(str, want)) or 'nothing'}", TypeError)


def scan_types(name: str, ts: Sequence[TensorType], *, body: Body, n_carry: int, n_x: int,
               length: int, reverse: bool = False, history: bool = False,
               index: int = 0) -> list[TensorType]:
    """All result types of a scan (see the module doc), after checking its inputs."""
    ins, outs = body.in_types, body.out_types
    if len(ts) != len(ins):
        raise OpError(name, f"takes {len(ins)} inputs, got {len(ts)}", TypeError)
    carries, xs, consts = ts[:n_carry], ts[n_carry:n_carry + n_x], ts[n_carry + n_x:]
    _check(name, "carries", carries, ins[:n_carry])
    _check(name, "carries out", outs[:n_carry], ins[:n_carry])
    _check(name, "consts", consts, ins[n_carry + n_x:])
    for x, want in zip(xs, ins[n_carry:n_carry + n_x]):
        if x.shape[:1] != (length,) or TensorType(x.shape[1:], x.dtype) != want:
            raise OpError(name, f"scanned input {x} does not give {length} slices of {want}",
                          TypeError)
    res = list(outs[:n_carry]) + [_stacked(t, length) for t in outs[n_carry:]]
    if history:
        res += [_stacked(t, length) for t in ins[:n_carry]]
    return res


def while_types(name: str, ts: Sequence[TensorType], *, cond: Body, body: Body, n_carry: int,
                index: int = 0) -> list[TensorType]:
    _check(name, "inputs", ts, body.in_types)
    _check(name, "condition inputs", ts, cond.in_types)
    _check(name, "body results", body.out_types, body.in_types[:n_carry])
    if cond.out_types != [TensorType((), DType.bool)]:
        raise OpError(name, f"the condition must give one bool scalar, got "
                            f"{', '.join(map(str, cond.out_types))}", TypeError)
    return list(body.out_types)


def cond_types(name: str, ts: Sequence[TensorType], *, then: Body, else_: Body,
               index: int = 0) -> list[TensorType]:
    if not ts or ts[0] != TensorType((), DType.bool):
        raise OpError(name, f"the predicate must be a bool scalar, got {ts[0] if ts else None}",
                      TypeError)
    _check(name, "operands", ts[1:], then.in_types)
    _check(name, "operands", ts[1:], else_.in_types)
    _check(name, "branch results", else_.out_types, then.out_types)
    return list(then.out_types)


TYPES = {"scan": scan_types, "while": while_types, "cond": cond_types}


def result_type(name: str, ts: Sequence[TensorType], **attrs: Any) -> TensorType:
    """The op table's rule: the type of result `index`."""
    res = TYPES[name](name, ts, **attrs)
    index = attrs.get("index", 0)
    if not 0 <= index < len(res):
        raise OpError(name, f"has {len(res)} results, index {index} is out of range", IndexError)
    return res[index]


def group_key(node: Any) -> tuple:
    """What sibling nodes of one loop share: op, inputs, and every attribute but `index`."""
    attrs = tuple(sorted((k, v) for k, v in node.attrs.items() if k != "index"))
    return (node.op, tuple(v.id for v in node.inputs), attrs)


RunGraph = Callable[[Any, list], list]


def run(name: str, arrays: list, attrs: dict, run_graph: RunGraph, xp: Any = np) -> list:
    """Every result of a control-flow node on `arrays` (see the module doc). A result never
    shares memory with an input (a branch or a zero-step loop that returns one gets a copy),
    as on every backend."""
    if name == "scan":
        res = _run_scan(arrays, run_graph, xp, **attrs)
    elif name == "while":
        res = _run_while(arrays, run_graph, **attrs)
    else:
        a = {k: v for k, v in attrs.items() if k != "index"}
        branch = a["then"] if bool(arrays[0]) else a["else_"]
        res = list(run_graph(branch.graph, list(arrays[1:])))
    return [r.copy() if any(xp.shares_memory(r, x) for x in arrays) else r for r in res]


def _run_scan(arrays: list, run_graph: RunGraph, xp: Any, *, body: Body, n_carry: int, n_x: int,
              length: int, reverse: bool = False, history: bool = False,
              index: int = 0) -> list:
    carries = list(arrays[:n_carry])
    xs, consts = arrays[n_carry:n_carry + n_x], list(arrays[n_carry + n_x:])
    outs = body.out_types
    ys = [xp.empty((length,) + tuple(t.shape), t.dtype.np) for t in outs[n_carry:]]
    hist = [xp.empty((length,) + tuple(c.shape), c.dtype) for c in carries] if history else []
    for step in range(length):
        t = length - 1 - step if reverse else step
        for h, c in zip(hist, carries):
            h[t] = c
        res = run_graph(body.graph, carries + [x[t, ...] for x in xs] + consts)
        carries = [xp.asarray(r) for r in res[:n_carry]]
        for y, r in zip(ys, res[n_carry:]):
            y[t] = r
    return carries + ys + hist


def _run_while(arrays: list, run_graph: RunGraph, *, cond: Body, body: Body, n_carry: int,
               index: int = 0) -> list:
    carries, consts = list(arrays[:n_carry]), list(arrays[n_carry:])
    while bool(run_graph(cond.graph, carries + consts)[0]):
        carries = list(run_graph(body.graph, carries + consts))
    return carries


def bodies(node: Any) -> list[Any]:
    """The body graphs of a control-flow node (none for other nodes)."""
    return [v.graph for v in node.attrs.values() if isinstance(v, Body)]
