"""Print a graph as a typed program, one line per node:

    v7: f32[128,512] = relu(v6)  # mlp.py:14

Values are numbered in program order (inputs first), so every stage of a pipeline reads alike."""

from __future__ import annotations

from typing import Any

from compiler.ir.graph import Graph, Node
from compiler.ir.types import DType


def value_names(g: Graph) -> dict[int, str]:
    """Value id -> printed name (v0, v1, ... in program order)."""
    names: dict[int, str] = {}
    for v in g.inputs:
        names[v.id] = f"v{len(names)}"
    for n in g.nodes:
        names.setdefault(n.out.id, f"v{len(names)}")
    return names


def format_attr(value: Any) -> str:
    if isinstance(value, DType):
        return value.short
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        inner = ",".join(format_attr(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})"
    return repr(value)


def format_node(n: Node, names: dict[int, str]) -> str:
    args = [names.get(v.id, f"?{v.id}") for v in n.inputs]
    args += [f"{k}={format_attr(v)}" for k, v in n.attrs.items()]
    line = f"{names.get(n.out.id, f'?{n.out.id}')}: {n.out.type} = {n.op.value}({', '.join(args)})"
    return f"{line}  # {n.loc}" if n.loc else line


def format_graph(g: Graph, annotate: dict[int, str] | None = None) -> str:
    """The graph as text; `annotate` maps a node's output id to a trailing comment."""
    names = value_names(g)
    params = ", ".join(
        f"{names[v.id]}{' ' + nm if nm else ''}: {v.type}" for v, nm in zip(g.inputs, g.input_names)
    )
    lines = [f"graph {g.name}({params}) {{"]
    for n in g.nodes:
        line = format_node(n, names)
        extra = (annotate or {}).get(n.out.id)
        if extra:
            line += ("  # " if not n.loc else "; ") + extra
        lines.append("  " + line)
    outs = ", ".join(
        names.get(v.id, f"?{v.id}") + (f" {nm}" if nm else "")
        for v, nm in zip(g.outputs, g.output_names)
    )
    lines.append(f"  return {outs}")
    lines.append("}")
    return "\n".join(lines)


def _dot_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def format_dot(g: Graph) -> str:
    """Graphviz source: inputs as ellipses, nodes as boxes labelled with op and type."""
    names = value_names(g)
    lines = [f'digraph "{_dot_escape(g.name)}" {{', "  rankdir=TB;", "  node [fontsize=10];"]
    for v, nm in zip(g.inputs, g.input_names):
        label = _dot_escape(f"{names[v.id]} {nm}") + "\\n" + str(v.type)
        lines.append(f'  {names[v.id]} [shape=ellipse, label="{label}"];')
    for n in g.nodes:
        label = _dot_escape(f"{names[n.out.id]} = {n.op.value}") + "\\n" + str(n.out.type)
        lines.append(f'  {names[n.out.id]} [shape=box, label="{label}"];')
        for v in n.inputs:
            lines.append(f"  {names.get(v.id, v.id)} -> {names[n.out.id]};")
    for i, v in enumerate(g.outputs):
        lines.append(f'  out{i} [shape=plaintext, label="{_dot_escape(g.output_names[i])}"];')
        lines.append(f"  {names.get(v.id, v.id)} -> out{i};")
    lines.append("}")
    return "\n".join(lines)
