"""Dead-code elimination: drop every node whose value does not reach a graph output.

All primitives are pure (`rand` too: a counter-based hash of its state input), so a node with no
path to an output can go. One backward sweep, O(nodes)."""

from __future__ import annotations

from compiler.ir.graph import Graph


def dce(graph: Graph) -> Graph:
    """The graph without nodes that no output depends on."""
    live = {v.id for v in graph.outputs}
    kept = []
    for n in reversed(graph.nodes):
        if n.out.id in live:
            kept.append(n)
            live.update(v.id for v in n.inputs)
    kept.reverse()
    return graph.replace(nodes=kept)
