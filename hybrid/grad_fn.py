"""PyTorch's view of the tape: `grad_fn.next_functions` ((node, index) per input, with an
`AccumulateGrad` node for leaves that require grad) on every autograd node."""

from __future__ import annotations

from typing import Any

from hybrid.ops.core import TapeNode


class AccumulateGrad:
    """The node that stands for a leaf tensor in `next_functions` (its `.variable`)."""

    __slots__ = ("variable",)

    next_functions: tuple = ()

    def __init__(self, variable: Any):
        self.variable = variable

    def name(self) -> str:
        return "AccumulateGrad"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self) -> int:
        return id(self.variable)

    def __repr__(self) -> str:
        return "<AccumulateGrad>"


def next_functions(node: TapeNode) -> tuple:
    """((grad_fn or AccumulateGrad or None, 0), ...) for each input the node recorded."""
    from hybrid.autograd import _edge

    if node.inputs is None:  # freed by a backward without retain_graph
        return ()
    out = []
    for x, v in zip(node.inputs, node.versions):
        n, rg = _edge(x, v)
        if n is not None:
            out.append((n, 0))
        elif rg:
            out.append((AccumulateGrad(x), 0))
        else:
            out.append((None, 0))
    return tuple(out)


# NOTE: hybrid.ops.core.TapeNode is the lead's; the property is added here rather than there so the
# tape's hot path (TapeNode.__init__) stays untouched.
TapeNode.next_functions = property(next_functions)  # type: ignore[attr-defined]
