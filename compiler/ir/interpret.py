"""The reference interpreter: runs a graph node by node with the primitives' reference
implementations. It is the spec: every backend is tested against it on the same graph."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from compiler.errors import run_error
from compiler.ir.graph import Graph
from compiler.ir import control
from compiler.ir.ops import CONTROL, impls
from compiler.ir.types import DType, TensorType


def node_note(graph: Graph, node: Any) -> str:
    """Which node failed, with its input types and the user's line that traced it (added to a
    failing reference implementation's exception, as torch.fx's Interpreter does)."""
    ins = ", ".join(f"%{v.id}: {v.type}" for v in node.inputs)
    attrs = "".join(f", {k}={v!r}" for k, v in node.attrs.items())
    where = f", traced at {node.loc}" if node.loc else ""
    return (f"while running {graph.name}: %{node.out.id} = {node.op.value}({ins}{attrs}) in the "
            f"reference interpreter{where}")


def _type_of(x: Any) -> str:
    try:
        return str(TensorType(tuple(x.shape), DType.from_np(x.dtype)))
    except TypeError:
        return f"{x.dtype}[{','.join(map(str, x.shape))}]"


def check_inputs(graph: Graph, inputs: Sequence[Any], xp: Any = np) -> list[Any]:
    """The inputs as `xp` arrays; ValueError naming the input whose count/shape/dtype is off."""
    g = graph
    if len(inputs) != len(g.inputs):
        names = ", ".join(g.input_names)
        raise ValueError(f"{g.name} takes {len(g.inputs)} inputs ({names}), got {len(inputs)}")
    arrays = []
    for i, (x, v, name) in enumerate(zip(inputs, g.inputs, g.input_names)):
        a = xp.asarray(x)
        if tuple(a.shape) != v.type.shape or a.dtype != v.type.dtype.np:
            raise ValueError(
                f"{g.name}: input {i} ({name}) must be {v.type}, got {_type_of(a)}"
            )
        arrays.append(a)
    return arrays


def last_uses(graph: Graph) -> list[list[int]]:
    """For each node index, the ids of the values whose last reader it is (outputs excluded)."""
    keep = {v.id for v in graph.outputs}
    last: dict[int, int] = {}
    for i, n in enumerate(graph.nodes):
        last[n.out.id] = i  # an unread result dies where it is made
        for v in n.inputs:
            last[v.id] = i
    dies: list[list[int]] = [[] for _ in graph.nodes]
    for vid, i in last.items():
        if vid not in keep:
            dies[i].append(vid)
    return dies


def _control(n: Any, env: dict, loops: dict, xp: Any) -> Any:
    """Result `index` of a control-flow node; its siblings reuse the one run of the loop."""
    key = control.group_key(n)
    res = loops.get(key)
    if res is None:
        res = control.run(n.op.value, [env[v.id] for v in n.inputs], n.attrs,
                          lambda g, a: interpret(g, a, xp), xp)
        loops[key] = res
    return res[n.attrs.get("index", 0)]


def interpret(graph: Graph, inputs: Sequence[Any], xp: Any = np) -> list[Any]:
    """Run `graph` on `inputs` with the reference implementations of `xp` (numpy or cupy).

    Returns one array per graph output (0-d results as 0-d arrays). Each value is dropped after
    its last use, so peak memory is that of the live values, not of the whole graph."""
    table = impls(xp)
    env: dict[int, Any] = {v.id: a for v, a in zip(graph.inputs, check_inputs(graph, inputs, xp))}
    loops: dict[tuple, list] = {}  # control-flow siblings: every result of one run
    for n, dead in zip(graph.nodes, last_uses(graph)):
        try:
            if n.op in CONTROL:
                out = _control(n, env, loops, xp)
            else:
                out = table[n.op](*(env[v.id] for v in n.inputs), **n.attrs)
        except Exception as e:
            if hasattr(e, "run_kind"):
                # an index out of range, an integer division by zero: at the op's traced line
                raise run_error(e.run_kind, e.run_message, n.loc) from None
            if hasattr(e, "add_note"):  # Python >= 3.11; the exception keeps its type
                e.add_note(node_note(graph, n))
            raise
        out = xp.asarray(out)  # ufuncs on 0-d arrays return scalars
        t = n.out.type
        if tuple(out.shape) != t.shape or out.dtype != t.dtype.np:
            raise RuntimeError(
                f"{graph.name}: the reference {n.op.value} gave {_type_of(out)} where the IR says "
                f"{t} (a mismatch between its rule and its implementation)"
            )
        env[n.out.id] = out
        for vid in dead:
            env.pop(vid, None)
    return [env[v.id] for v in graph.outputs]
