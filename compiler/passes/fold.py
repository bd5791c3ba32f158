"""Constant folding: a node whose inputs are all constants is evaluated at compile time with the
numpy reference implementation and replaced by a `full` (one repeated value) or `constant` node.

Constants are the results of `constant`, `full` and `iota` nodes, and of nodes folded before.
Two bounds keep compile time and memory small:
  * a node is evaluated only when its inputs and its result have at most FOLD_LIMIT elements;
  * elementwise ops and movement ops whose inputs are all `full` are folded whatever their size,
    by computing one element (`exp(full(2.0, [4096,4096]))` -> `full(7.389.., [4096,4096])`).
`rand` is never folded. A node whose evaluation fails (e.g. an out-of-range gather) is left for
run time to report. The replacement keeps the node's result value, type and source line."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import ELEMENTWISE, Literal, Op, impls

FOLD_LIMIT = 4096

SOURCES = frozenset({Op.CONSTANT, Op.FULL, Op.IOTA})
NEVER = frozenset({Op.RAND, Op.SCAN, Op.WHILE, Op.COND}) | SOURCES
# Movement ops that map a `full` to a `full` of their output shape (pad may add other values).
SHAPE_ONLY = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.SLICE})


def full_scalar(node: Node) -> np.ndarray:
    """The one value of a `full` node, as a 0-d array of its dtype (exactly what it holds)."""
    return np.full((), node.attrs["value"], dtype=node.attrs["dtype"].np)


def as_source(result: np.ndarray, like: Node) -> Node:
    """A `full` node when every element of `result` has the same bits, else a `constant` node."""
    t = like.out.type
    flat = np.ascontiguousarray(result).reshape(-1)
    bits = flat.view(np.uint8).reshape(flat.size, -1)
    if flat.size == 0 or (bits == bits[0]).all():
        value = flat[0].item() if flat.size else 0
        attrs = {"value": value, "shape": t.shape, "dtype": t.dtype}
        return Node(Op.FULL, (), attrs, like.out, like.loc)
    attrs = {"value": Literal(result), "shape": t.shape, "dtype": t.dtype}
    return Node(Op.CONSTANT, (), attrs, like.out, like.loc)


class _Constants:
    """Compile-time values of constant nodes, materialized lazily and only when small."""

    def __init__(self) -> None:
        self.nodes: dict[int, Node] = {}  # value id -> its constant-producing node
        self.arrays: dict[int, np.ndarray] = {}

    def add(self, node: Node) -> None:
        self.nodes[node.out.id] = node

    def is_full(self, v: Any) -> bool:
        node = self.nodes.get(v.id)
        return node is not None and node.op is Op.FULL

    def array(self, v: Any) -> np.ndarray:
        if v.id not in self.arrays:
            node = self.nodes[v.id]
            self.arrays[v.id] = np.asarray(impls(np)[node.op](**node.attrs))
        return self.arrays[v.id]


def _evaluate(node: Node, consts: _Constants) -> Node | None:
    """The folded replacement of `node`, or None when it must stay."""
    ins = node.inputs
    if all(consts.is_full(v) for v in ins) and (node.op in ELEMENTWISE or node.op in SHAPE_ONLY):
        if node.op in SHAPE_ONLY:
            scalar = full_scalar(consts.nodes[ins[0].id])
        else:
            args = [full_scalar(consts.nodes[v.id]) for v in ins]
            scalar = np.asarray(impls(np)[node.op](*args, **node.attrs))
        return as_source(scalar.reshape(1), node)
    if node.out.type.numel > FOLD_LIMIT or any(v.type.numel > FOLD_LIMIT for v in ins):
        return None
    result = impls(np)[node.op](*(consts.array(v) for v in ins), **node.attrs)
    return as_source(np.asarray(result), node)


def fold(graph: Graph) -> Graph:
    """The graph with every foldable node replaced by a `full` or `constant` node."""
    consts = _Constants()
    nodes = []
    for n in graph.nodes:  # a folded node keeps its result value, so no input needs renaming
        if n.op in SOURCES:
            consts.add(n)
        elif n.op not in NEVER and all(v.id in consts.nodes for v in n.inputs):
            try:
                with np.errstate(all="ignore"):  # NaN/inf are results, not compile-time news
                    folded = _evaluate(n, consts)
            except Exception:  # noqa: BLE001 — e.g. gather out of range: run time reports it
                folded = None
            if folded is not None:
                n = folded
                consts.add(n)
        nodes.append(n)
    return graph.replace(nodes=nodes)
