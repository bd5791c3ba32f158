"""Common-subexpression elimination: nodes with the same op, the same (merged) inputs and the
same attributes compute the same value, so later ones reuse the first.

Attributes are keyed exactly (`attr_key`): floats by their bits, so `pad(value=0.0)` and
`pad(value=-0.0)` stay apart, and numbers by type, so `full(value=1)` and `full(value=True)` do
not merge by Python's `1 == True`. One forward sweep, O(nodes)."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from compiler.ir.graph import Graph, Node, substitute


def attr_key(value: Any) -> Any:
    """A hashable key equal only for attribute values that mean the same thing, bit for bit."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, np.generic):
        return ("np", value.dtype.str, value.tobytes())
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(attr_key(v) for v in value))
    return (type(value).__name__, value)  # DType, Literal (hashed by content), str, None


def node_key(node: Node) -> tuple:
    """What makes two nodes compute the same value: op, input ids, attributes, result type."""
    attrs = tuple((k, attr_key(v)) for k, v in sorted(node.attrs.items()))
    return (node.op, tuple(v.id for v in node.inputs), attrs, node.out.type)


def cse(graph: Graph) -> Graph:
    """The graph with each repeated computation replaced by its first occurrence."""
    mapping = {}
    seen: dict[tuple, Node] = {}
    nodes = []
    for n in graph.nodes:
        inputs = substitute(n.inputs, mapping)
        if inputs != n.inputs:
            n = Node(n.op, inputs, n.attrs, n.out, n.loc)
        key = node_key(n)
        first = seen.get(key)
        if first is not None:
            mapping[n.out.id] = first.out
            continue
        seen[key] = n
        nodes.append(n)
    return graph.replace(nodes=nodes, outputs=list(substitute(graph.outputs, mapping)))
