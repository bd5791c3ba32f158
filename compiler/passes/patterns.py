"""A small rule engine for graph rewrites (in the spirit of tinygrad's PatternMatcher).

A `Rule` names the ops it applies to and a function `(node, ctx) -> replacement | None`:
  * None: the rule does not match;
  * a Value already in the graph: the node's result is that value (the node goes);
  * `New(op, inputs, attrs)`: a new node (with the old node's source line) computes the result;
    its inputs may themselves be `New` (nodes made first, left to the next sweep's rules).
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
    inputs: tuple[Value | New, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)

    def type(self) -> Any:
        """The type the new node would have (nested New inputs included)."""
        return infer_type(self.op, [v.type() if isinstance(v, New) else v.type
                                    for v in self.inputs], self.attrs)


Replacement = Union[Value, New, None]


@dataclass(frozen=True)
class Rule:
    """`name` for messages and tests; `ops` the node ops it looks at; `fn(node, ctx)` rewrites."""

    name: str
    ops: frozenset[Op]
    fn: Callable[[Node, "Context"], Replacement]


class Context:
    """What a rule may ask about the graph being rewritten: producers, uses and constant
    values."""

    def __init__(self, graph: Graph | None = None) -> None:
        self.producers: dict[int, Node] = {}
        self._uses: dict[int, int] = {}
        if graph is not None:
            for n in graph.nodes:
                for v in n.inputs:
                    self._uses[v.id] = self._uses.get(v.id, 0) + 1
            for v in graph.outputs:
                self._uses[v.id] = self._uses.get(v.id, 0) + 1

    def uses(self, v: Value) -> int:
        """How many node inputs and graph outputs read `v` in the graph this sweep started from
        (values made during the sweep count 0)."""
        return self._uses.get(v.id, 0)

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


def _made(v: Value | New, loc: str, emit) -> Value:
    """`v` itself, or the value of a new node made (and emitted) for a nested New."""
    if isinstance(v, Value):
        return v
    node = Node(v.op, tuple(_made(w, loc, emit) for w in v.inputs), dict(v.attrs),
                Value(v.type()), loc)
    emit(node)
    return node.out


def _apply_rules(node: Node, table: dict[Op, list[Rule]], ctx: Context, emit) -> Value | None:
    """Rewrite `node` until no rule matches; return the value replacing its result, or None."""
    want = node.out.type
    result: Value | None = None
    for _ in range(64):  # a bound against rules that undo each other
        rule, rep = _match(node, table, ctx)
        if rule is None:
            break
        got = rep.type if isinstance(rep, Value) else rep.type()
        if got != want:
            raise AssertionError(f"rule {rule.name!r} replaced {want} {node.op.value} by {got}")
        if isinstance(rep, Value):
            return rep
        inputs = tuple(_made(v, node.loc, emit) for v in rep.inputs)
        node = Node(rep.op, inputs, dict(rep.attrs), Value(got), node.loc)
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
        ctx = Context(graph)
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
