"""A small rule engine for graph rewrites (in the spirit of tinygrad's PatternMatcher).

A `Rule` names the ops it applies to and a function `(node, ctx) -> replacement | None`:
  * None: the rule does not match;
  * a Value already in the graph: the node's result is that value (the node goes);
  * `New(op, inputs, attrs)`: a new node (with the old node's source line) computes the result.
A replacement must have the node's exact type; the engine checks it. `rewrite` applies a table of
rules in one forward sweep, re-trying the rules on each new node, and repeats sweeps until
nothing changes (a fixed point)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from compiler.ir.graph import Graph, Node, Value, substitute
from compiler.ir.ops import Op, infer_type


@dataclass(frozen=True)
class New:
    """A replacement computed by a new node `op(*inputs, **attrs)`."""

    op: Op
    inputs: tuple[Value, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


Replacement = Union[Value, New, None]


@dataclass(frozen=True)
class Rule:
    """`name` for messages and tests; `ops` the node ops it looks at; `fn(node, ctx)` rewrites."""

    name: str
    ops: frozenset[Op]
    fn: Callable[[Node, "Context"], Replacement]


class Context:
    """What a rule may ask about the graph being rewritten: producers and constant values."""

    def __init__(self) -> None:
        self.producers: dict[int, Node] = {}

    def producer(self, v: Value) -> Node | None:
        """The node that computes `v` (None for a graph input)."""
        return self.producers.get(v.id)

    def scalar(self, v: Value) -> np.generic | None:
        """The one value every element of `v` holds, when `v` is a `full` or a uniform `constant`
        (same bits everywhere); else None. Returned in v's dtype, exactly as stored."""
        node = self.producers.get(v.id)
        if node is None or v.type.numel == 0:
            return None
        dtype = v.type.dtype.np
        if node.op is Op.FULL:
            return np.full((), node.attrs["value"], dtype=dtype)[()]
        if node.op is Op.CONSTANT:
            flat = np.asarray(node.attrs["value"].array, dtype=dtype).reshape(-1)
            bits = flat.view(np.uint8).reshape(flat.size, -1)
            if (bits == bits[0]).all():
                return flat[0]
        return None


def _match(node: Node, table: dict[Op, list[Rule]], ctx: Context) -> tuple[Rule | None, Any]:
    for rule in table.get(node.op, ()):
        rep = rule.fn(node, ctx)
        if rep is not None:
            return rule, rep
    return None, None


def _apply_rules(node: Node, table: dict[Op, list[Rule]], ctx: Context, emit) -> Value | None:
    """Rewrite `node` until no rule matches; return the value replacing its result, or None."""
    want = node.out.type
    result: Value | None = None
    for _ in range(64):  # a bound against rules that undo each other
        rule, rep = _match(node, table, ctx)
        if rule is None:
            break
        got = rep.type if isinstance(rep, Value) else infer_type(
            rep.op, [v.type for v in rep.inputs], rep.attrs
        )
        if got != want:
            raise AssertionError(f"rule {rule.name!r} replaced {want} {node.op.value} by {got}")
        if isinstance(rep, Value):
            return rep
        node = Node(rep.op, tuple(rep.inputs), dict(rep.attrs), Value(got), node.loc)
        emit(node)
        result = node.out
    return result


def rewrite(graph: Graph, rules: Sequence[Rule], max_sweeps: int = 16) -> Graph:
    """Apply `rules` to `graph` until none matches; returns a new graph (the input is untouched).

    Nodes made redundant (a replaced node's old inputs) are left for `dce`."""
    table: dict[Op, list[Rule]] = {}
    for r in rules:
        for op in sorted(r.ops, key=lambda o: o.value):
            table.setdefault(op, []).append(r)
    for _ in range(max_sweeps):
        ctx = Context()
        mapping: dict[int, Value] = {}
        nodes: list[Node] = []
        changed = False

        def emit(n: Node) -> None:
            nodes.append(n)
            ctx.producers[n.out.id] = n

        for n in graph.nodes:
            inputs = substitute(n.inputs, mapping)
            if inputs != n.inputs:
                n = Node(n.op, inputs, n.attrs, n.out, n.loc)
            new = _apply_rules(n, table, ctx, emit)
            if new is None:
                emit(n)
                continue
            mapping[n.out.id] = new
            changed = True
        graph = graph.replace(nodes=nodes, outputs=list(substitute(graph.outputs, mapping)))
        if not changed:
            break
    return graph
