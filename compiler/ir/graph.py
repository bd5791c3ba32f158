"""The graph IR: SSA values, nodes (one primitive each, with the user's source line), graphs.

A Graph is built once (by tracing or by hand) and treated as immutable afterwards: passes return
new graphs and may share unchanged Node and Value objects with their input."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from compiler.ir.ops import Op, infer_type
from compiler.ir.types import DType, Shape, TensorType

_ids = itertools.count()


class Value:
    """An SSA value: a graph input or the output of one node. Has a static type."""

    __slots__ = ("id", "type", "__weakref__")
    traced = True  # a Tensor holding a Value is a tracer: reading its data in Python is an error

    def __init__(self, type_: TensorType, id_: int | None = None):
        self.id = next(_ids) if id_ is None else id_
        self.type = type_

    @property
    def shape(self) -> Shape:
        return self.type.shape

    @property
    def dtype(self) -> DType:
        return self.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.type.shape)

    @property
    def size(self) -> int:
        return self.type.numel

    def __repr__(self) -> str:
        return f"%{self.id}: {self.type}"


@dataclass(eq=False)
class Node:
    """One primitive applied to values: `out = op(*inputs, **attrs)`, traced at `loc`."""

    op: Op
    inputs: tuple[Value, ...]
    attrs: dict[str, Any]
    out: Value
    loc: str = ""

    def key(self) -> tuple:
        """What makes two nodes compute the same value (for CSE): op, inputs, attributes."""
        return (self.op, tuple(v.id for v in self.inputs), tuple(sorted(self.attrs.items())))


@dataclass(eq=False)
class Graph:
    """A program: named inputs, nodes in topological order, outputs (values of the graph)."""

    inputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    input_names: list[str] = field(default_factory=list)
    output_names: list[str] = field(default_factory=list)
    name: str = "graph"

    # --- building ---------------------------------------------------------------------------

    def add_input(self, type_: TensorType, name: str = "") -> Value:
        v = Value(type_)
        self.inputs.append(v)
        self.input_names.append(name or f"in{len(self.inputs) - 1}")
        return v

    def add(self, op: Op, inputs: Sequence[Value] = (), loc: str = "", **attrs: Any) -> Value:
        """Append `op(*inputs, **attrs)`; its type comes from the op's rule (OpError if rejected)."""
        t = infer_type(op, [v.type for v in inputs], attrs)
        out = Value(t)
        self.nodes.append(Node(op, tuple(inputs), attrs, out, loc))
        return out

    def set_outputs(self, values: Iterable[Value], names: Sequence[str] | None = None) -> None:
        self.outputs = list(values)
        self.output_names = list(names) if names is not None else [
            f"out{i}" for i in range(len(self.outputs))
        ]

    # --- queries ------------------------------------------------------------------------------

    def producers(self) -> dict[int, Node]:
        """Value id -> the node that computes it."""
        return {n.out.id: n for n in self.nodes}

    def users(self) -> dict[int, list[Node]]:
        """Value id -> the nodes that read it, in program order."""
        out: dict[int, list[Node]] = {}
        for n in self.nodes:
            for v in n.inputs:
                out.setdefault(v.id, []).append(n)
        return out

    def replace(self, nodes: list[Node] | None = None, outputs: list[Value] | None = None) -> Graph:
        """A new graph with the same inputs and the given nodes / outputs."""
        return Graph(
            inputs=list(self.inputs),
            nodes=list(self.nodes if nodes is None else nodes),
            outputs=list(self.outputs if outputs is None else outputs),
            input_names=list(self.input_names),
            output_names=list(self.output_names),
            name=self.name,
        )

    def __str__(self) -> str:
        from compiler.ir.printer import format_graph

        return format_graph(self)

    __repr__ = __str__

    def to_dot(self) -> str:
        """Graphviz source of the graph (render with `dot -Tsvg`)."""
        from compiler.ir.printer import format_dot

        return format_dot(self)


def substitute(values: Sequence[Value], mapping: dict[int, Value]) -> tuple[Value, ...]:
    """`values` with each value replaced by mapping[id] when present."""
    return tuple(mapping.get(v.id, v) for v in values)
