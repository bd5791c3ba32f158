"""What a backend computes of a graph's outputs, and how the rest are had without it.

A backend's plan writes each output into a buffer of its own. Outputs that are not computed
values of their own are split off before the backend sees the graph, so every backend gets a
graph whose outputs are distinct computed values:
- an output that depends on no input (folded to a constant: `arange(5)`, the gradient of a
  sum) is evaluated once here and copied on every call (a caller may update it in place);
- an input returned as it is, or the same value returned twice (also after CSE merged two
  values), is taken from the input or the first occurrence, copied, so that distinct outputs
  never share memory;
- an output the caller asks to alias its input (`views`: eager returned a view of an input,
  `x[0]`, `x.T`) is evaluated on the input array by the reference movement ops, which give
  numpy views, so writes through it reach the input as in eager. A view of an input that the
  call also updates in place (`x.add_(1); return x[0]`) is a view of the input's array, which
  holds the updated value once the caller has written the update back (`updated`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import OPS, Kind, impls

RUN, INPUT, CONST, COPY, VIEW = "run", "input", "const", "copy", "view"


@dataclass
class OutputSource:
    """Where output k comes from: the backend's output `index` (RUN), input `index` (INPUT,
    copied), a constant `array` (CONST, copied), the backend's output `index` copied (COPY), or
    input `index` through movement `nodes` (VIEW, not copied; `after` >= 0: of the value graph
    output `after` writes back into that input, used when numpy cannot view it)."""

    kind: str
    index: int = -1
    array: Any = None
    nodes: tuple[Node, ...] = ()
    after: int = -1


def split_outputs(graph: Graph, views: frozenset[int] = frozenset(),
                  updated: dict[int, int] | None = None) -> tuple[Graph, list[OutputSource]]:
    """(the graph the backend compiles, where each of `graph`'s outputs comes from). `updated`:
    output position -> the input that output's value is written back into after the call."""
    producers = graph.producers()
    inputs = {v.id: i for i, v in enumerate(graph.inputs)}
    final = {graph.outputs[k].id: (i, k) for k, i in (updated or {}).items()}
    live = _input_dependent(graph, inputs)
    computed: list[Any] = []
    first: dict[int, int] = {}  # value id -> index in `computed`
    sources: list[OutputSource] = []
    constants: dict[int, Any] = {}
    for k, v in enumerate(graph.outputs):
        chain = _movement_chain(v, producers, inputs, final) if k in views else None
        if chain is not None:
            after = final[chain[0]][1] if chain[0] in final else -1
            i = final[chain[0]][0] if chain[0] in final else inputs[chain[0]]
            sources.append(OutputSource(VIEW, i, nodes=chain[1], after=after))
        elif v.id in inputs:
            sources.append(OutputSource(INPUT, inputs[v.id]))
        elif v.id not in live:
            if v.id not in constants:
                constants[v.id] = _evaluate(v, producers)
            sources.append(OutputSource(CONST, array=constants[v.id]))
        elif v.id in first:
            sources.append(OutputSource(COPY, first[v.id]))
        else:
            first[v.id] = len(computed)
            sources.append(OutputSource(RUN, len(computed)))
            computed.append(v)
    names = [graph.output_names[k] for k, s in enumerate(sources) if s.kind == RUN]
    reduced = graph.replace(outputs=computed)
    reduced.output_names = names
    return reduced, sources


def is_trivial(sources: list[OutputSource]) -> bool:
    """Every output is the backend's own, in order (nothing to assemble)."""
    return all(s.kind == RUN and s.index == k for k, s in enumerate(sources))


def input_copies(sources: list[OutputSource], arrays: list) -> dict[int, Any]:
    """Copies of the inputs returned as outputs, taken before the backend runs: an input that
    shares memory with one the run updates in place (x and x.detach()) must be returned with
    the value it had when the call began, as the graph means."""
    return {k: arrays[s.index].copy() for k, s in enumerate(sources) if s.kind == INPUT}


def assemble(sources: list[OutputSource], outs: list, arrays: list,
             copies: dict[int, Any] | None = None) -> list:
    """All outputs of the graph from the backend's outputs `outs`, the call's inputs and
    `copies` (input_copies, taken before the run; made here when not given)."""
    result: list = []
    for k, s in enumerate(sources):
        kind = s.kind
        if kind == RUN:
            result.append(outs[s.index])
        elif kind == COPY:
            result.append(outs[s.index].copy())
        elif kind == INPUT:
            result.append(copies[k] if copies is not None else arrays[s.index].copy())
        elif kind == CONST:
            result.append(s.array.copy())
        else:
            result.append(_run_nodes(s.nodes, arrays[s.index]))
    for k, s in enumerate(sources):
        if s.after >= 0 and not np.shares_memory(result[k], arrays[s.index]):
            result[k] = _run_nodes(s.nodes, result[s.after])  # numpy copied: take the new value
    return result


def _input_dependent(graph: Graph, inputs: dict[int, int]) -> set[int]:
    live = set(inputs)
    for n in graph.nodes:
        if any(v.id in live for v in n.inputs):
            live.add(n.out.id)
    return live


def _evaluate(v: Any, producers: dict[int, Node]) -> np.ndarray:
    """The value of `v`, which depends on no graph input, by the reference implementations."""
    table = impls(np)
    memo: dict[int, Any] = {}

    def ev(value: Any) -> Any:
        if value.id not in memo:
            n = producers[value.id]
            memo[value.id] = table[n.op](*[ev(x) for x in n.inputs], **n.attrs)
        return memo[value.id]

    # NOTE: not np.ascontiguousarray, which turns a 0-d result into a 1-d one
    return np.require(np.asarray(ev(v)), requirements="C")


def _movement_chain(v: Any, producers: dict[int, Node], inputs: dict[int, int],
                    final: dict[int, Any]) -> tuple[int, tuple[Node, ...]] | None:
    """(the value id of an input, or of the value written back into one, and the movement nodes
    from it to v) when v is a view of it."""
    chain: list[Node] = []
    while v.id not in inputs and v.id not in final:
        n = producers.get(v.id)
        if n is None or OPS[n.op].kind is not Kind.MOVEMENT or len(n.inputs) != 1 or (
                n.op.value == "pad"):
            return None
        chain.append(n)
        v = n.inputs[0]
    return v.id, tuple(reversed(chain))


def _run_nodes(nodes: tuple[Node, ...], a: Any) -> Any:
    table = impls(np)
    for n in nodes:
        a = table[n.op](a, **n.attrs)
    return a
