"""Unrolling: every `scan` node (compiler/ir/control.py) replaced by copies of its body, one per
step, so that a consumer without loops (the exported artifact's plan, ONNX export) can run a
graph with scans (nn.LSTM/GRU/RNN use them). The copies read slices of the scanned inputs and
their ys are concatenated; nested scans are unrolled too. `while` and `cond` nodes stay (their
trip count or branch is only known at run time): `remaining_control` names them."""

from __future__ import annotations

from compiler.ir.graph import Graph, Node, Value
from compiler.ir.ops import CONTROL, Op


def remaining_control(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if n.op in CONTROL]


def unroll_scans(graph: Graph) -> Graph:
    """`graph` with its scans unrolled (the same graph when it has none)."""
    if not any(n.op is Op.SCAN for n in graph.nodes):
        return graph
    out = Graph(inputs=list(graph.inputs), input_names=list(graph.input_names), name=graph.name)
    env: dict[int, Value] = {v.id: v for v in graph.inputs}
    done: dict[tuple, list[Value]] = {}
    from compiler.ir.control import group_key

    for n in graph.nodes:
        ins = [env[v.id] for v in n.inputs]
        if n.op is not Op.SCAN:
            env[n.out.id] = out.add(n.op, ins, loc=n.loc, **n.attrs)
            continue
        key = group_key(n)
        if key not in done:
            done[key] = _unroll(out, n, ins)
        env[n.out.id] = done[key][n.attrs.get("index", 0)]
    out.set_outputs([env[v.id] for v in graph.outputs], list(graph.output_names))
    return unroll_scans(out)  # a body's nested scans were copied as nodes: unroll them too


def _unroll(out: Graph, node: Node, ins: list[Value]) -> list[Value]:
    a = node.attrs
    body, nc, nx, length = a["body"].graph, a["n_carry"], a["n_x"], a["length"]
    carries, xs, consts = ins[:nc], ins[nc:nc + nx], ins[nc + nx:]
    loc = node.loc
    ys: list[list[Value]] = [[] for _ in body.outputs[nc:]]
    hist: list[list[Value]] = [[] for _ in range(nc)]
    order = range(length - 1, -1, -1) if a["reverse"] else range(length)
    for t in order:
        for h, c in zip(hist, carries):
            h.append(_row(out, c, loc))
        x_t = [_take(out, x, t, loc) for x in xs]
        res = _inline(out, body, carries + x_t + consts, loc)
        carries = res[:nc]
        for y, r in zip(ys, res[nc:]):
            y.append(_row(out, r, loc))
    if a["reverse"]:
        ys = [list(reversed(y)) for y in ys]
        hist = [list(reversed(h)) for h in hist]
    results = list(carries)
    for t_out, parts in zip(body.outputs[nc:], ys):
        results.append(_stack(out, parts, t_out.type, length, loc))
    if a.get("history"):
        for v, parts in zip(body.inputs[:nc], hist):
            results.append(_stack(out, parts, v.type, length, loc))
    return results


def _inline(out: Graph, body: Graph, ins: list[Value], loc: str) -> list[Value]:
    env = {v.id: x for v, x in zip(body.inputs, ins)}
    for n in body.nodes:
        env[n.out.id] = out.add(n.op, [env[v.id] for v in n.inputs], loc=n.loc or loc, **n.attrs)
    return [env[v.id] for v in body.outputs]


def _take(out: Graph, x: Value, t: int, loc: str) -> Value:
    """x[t] along dim 0."""
    nd = x.ndim
    s = out.add(Op.SLICE, [x], loc=loc, starts=(t,) + (0,) * (nd - 1),
                stops=(t + 1,) + tuple(x.shape[1:]), steps=(1,) * nd)
    return out.add(Op.RESHAPE, [s], loc=loc, shape=tuple(x.shape[1:]))


def _row(out: Graph, v: Value, loc: str) -> Value:
    return out.add(Op.RESHAPE, [v], loc=loc, shape=(1,) + tuple(v.shape))


def _stack(out: Graph, rows: list[Value], t, length: int, loc: str) -> Value:
    if not rows:
        return out.add(Op.FULL, [], loc=loc, value=0, shape=(length,) + tuple(t.shape),
                       dtype=t.dtype)
    return rows[0] if len(rows) == 1 else out.add(Op.CONCAT, rows, loc=loc, axis=0)
