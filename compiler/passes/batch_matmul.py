"""Batch matmuls with a shared right operand over consecutive slices of one tensor.

`x[t] @ w` for t = t0 .. t1 (each `x[t]` a `slice` of one index along x's first axis, then a
`reshape` to a matrix) becomes one matmul of the rows of x[t0:t1+1] with w, whose result is
sliced back into the per-t products: an unrolled RNN's input projection is then one GEMM of
T*B rows instead of T GEMMs of B rows (cuDNN's RNNs do the same). The products are the same
sums of the same terms; only how BLAS blocks them differs.

Matmuls whose left operands are computed from earlier results (the recurrent `h @ W`) never
qualify: they are not slices of one tensor."""

from __future__ import annotations

from compiler.ir.graph import Graph, Node, Value, substitute
from compiler.ir.ops import Op, infer_type


def _slice_row(a: Value, prod: dict[int, Node]) -> tuple[Value, int] | None:
    """(x, t) when matrix `a` is reshape(slice(x, t:t+1 along axis 0, all of the rest))."""
    r = prod.get(a.id)
    if r is None or r.op is not Op.RESHAPE or len(a.shape) != 2:
        return None
    s = prod.get(r.inputs[0].id)
    if s is None or s.op is not Op.SLICE:
        return None
    x = s.inputs[0]
    starts, stops, steps = s.attrs["starts"], s.attrs["stops"], s.attrs["steps"]
    whole_rest = all(lo == 0 and hi == n for lo, hi, n in zip(starts[1:], stops[1:], x.shape[1:]))
    if stops[0] - starts[0] != 1 or any(st != 1 for st in steps) or not whole_rest:
        return None
    if x.ndim < 2 or a.shape[1] != x.shape[-1] or a.type.numel * x.shape[0] != x.type.numel:
        return None
    return x, starts[0]


def _node(op: Op, inputs: tuple[Value, ...], loc: str, **attrs) -> Node:
    return Node(op, inputs, attrs, Value(infer_type(op, [v.type for v in inputs], attrs)), loc)


def batch_matmuls(graph: Graph) -> Graph:
    """The graph with each group of >= 2 such matmuls (consecutive t, one x, one w) replaced."""
    prod = graph.producers()
    pos = {n.out.id: i for i, n in enumerate(graph.nodes)}
    groups: dict[tuple[int, int], list[tuple[int, Node]]] = {}
    bases: dict[tuple[int, int], Value] = {}
    for n in graph.nodes:
        if n.op is not Op.MATMUL:
            continue
        found = _slice_row(n.inputs[0], prod)
        if found is not None:
            x, t = found
            groups.setdefault((x.id, n.inputs[1].id), []).append((t, n))
            bases[(x.id, n.inputs[1].id)] = x
    first_of: dict[int, list[Node]] = {}  # id of the group's first matmul -> nodes made for it
    mapping: dict[int, Value] = {}
    for key, members in groups.items():
        ts = sorted(t for t, _ in members)
        if len(members) < 2 or ts != list(range(ts[0], ts[0] + len(ts))):
            continue  # a repeated or missing t: leave the group alone
        t0, count = ts[0], len(ts)
        first = members[0][1]
        x, w = bases[key], first.inputs[1]
        rows, loc = first.inputs[0].shape[0], first.loc
        made = []
        stops = (t0 + count,) + tuple(x.shape[1:])
        part = _node(Op.SLICE, (x,), loc, starts=(t0,) + (0,) * (x.ndim - 1), stops=stops,
                     steps=(1,) * x.ndim)
        flat = _node(Op.RESHAPE, (part.out,), loc, shape=(count * rows, x.shape[-1]))
        big = _node(Op.MATMUL, (flat.out, w), loc)
        n_out = w.shape[1]
        cube = _node(Op.RESHAPE, (big.out,), loc, shape=(count, rows, n_out))
        made += [part, flat, big, cube]
        for t, n in members:
            i = t - t0
            one = _node(Op.SLICE, (cube.out,), n.loc, starts=(i, 0, 0), stops=(i + 1, rows, n_out),
                        steps=(1, 1, 1))
            mat = _node(Op.RESHAPE, (one.out,), n.loc, shape=(rows, n_out))
            made += [one, mat]
            mapping[n.out.id] = mat.out
        first_of[min((n for _, n in members), key=lambda n: pos[n.out.id]).out.id] = made
    if not mapping:
        return graph
    nodes: list[Node] = []
    for n in graph.nodes:
        nodes += first_of.get(n.out.id, [])
        if n.out.id in mapping:
            continue  # its product is now a slice of the batched one
        inputs = substitute(n.inputs, mapping)
        nodes.append(n if inputs == n.inputs else Node(n.op, inputs, n.attrs, n.out, n.loc))
    return graph.replace(nodes=nodes, outputs=list(substitute(graph.outputs, mapping)))
