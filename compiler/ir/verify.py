"""The IR checker: SSA (each value defined once), topological order, arities and types.

Run between passes in tests and debug mode (`HYBRID_VERIFY=1`). A failure names the offending
node as the printer prints it, says what is wrong, and shows the whole graph. O(nodes)."""

from __future__ import annotations

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import OPS, infer_type
from compiler.ir.types import OpError


class VerifyError(Exception):
    """The graph breaks an IR invariant; the message names the node and prints the graph."""


def _fail(g: Graph, what: str, node: Node | None = None) -> VerifyError:
    # NOTE: imported here, and the message built only on failure (printing is O(graph)).
    from compiler.ir.printer import format_graph, format_node, value_names

    where = ""
    if node is not None:
        index = next((i for i, n in enumerate(g.nodes) if n is node), "?")
        where = f"node {index} `{format_node(node, value_names(g))}`: "
    return VerifyError(f"verify {g.name}: {where}{what}\n{format_graph(g)}")


def verify(graph: Graph) -> None:
    """Raise VerifyError unless `graph` is well-formed SSA in topological order with exact types."""
    g = graph
    if len(g.input_names) != len(g.inputs):
        raise _fail(g, f"{len(g.inputs)} inputs but {len(g.input_names)} input names")
    if len(g.output_names) != len(g.outputs):
        raise _fail(g, f"{len(g.outputs)} outputs but {len(g.output_names)} output names")
    defined: set[int] = set()
    for i, v in enumerate(g.inputs):
        if v.id in defined:
            raise _fail(g, f"graph input {i} ({g.input_names[i]}) is listed twice")
        defined.add(v.id)
    for n in g.nodes:
        for k, v in enumerate(n.inputs):
            if v.id not in defined:
                raise _fail(g, f"input {k} (%{v.id}) is not defined by a graph input or an "
                               "earlier node (undefined value or nodes out of order)", n)
        if n.out.id in defined:
            raise _fail(g, f"redefines %{n.out.id}, already defined by a graph input or an "
                           "earlier node (values must be assigned once)", n)
        arity = OPS[n.op].arity
        if arity is not None and len(n.inputs) != arity:
            raise _fail(g, f"{n.op.value} takes {arity} inputs, the node has {len(n.inputs)}", n)
        try:
            want = infer_type(n.op, [v.type for v in n.inputs], n.attrs)
        except (OpError, TypeError) as e:  # TypeError: missing or unknown attributes
            raise _fail(g, f"the {n.op.value} rule rejects the node: {e}", n) from None
        if n.out.type != want:
            raise _fail(g, f"output type is {n.out.type} but the {n.op.value} rule gives {want}",
                        n)
        defined.add(n.out.id)
    for i, v in enumerate(g.outputs):
        if v.id not in defined:
            raise _fail(g, f"output {i} ({g.output_names[i]}) is %{v.id}, which nothing defines")
