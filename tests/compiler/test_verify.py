"""The IR checker: a good graph passes; each broken invariant is named, with the node and graph."""

from __future__ import annotations

import pytest
from graphs import T, graph, mlp

from compiler.ir.graph import Node, Value
from compiler.ir.ops import Op
from compiler.ir.verify import VerifyError, verify


def two_node_graph():
    g, (x,) = graph("f", "f32[4]")
    e = g.add(Op.EXP, [x], loc="f.py:1")
    n = g.add(Op.NEG, [e], loc="f.py:2")
    g.set_outputs([n])
    return g


def test_well_formed_graphs_pass():
    verify(mlp())
    verify(two_node_graph())


def test_message_names_node_and_prints_graph():
    g = two_node_graph()
    g.nodes.reverse()  # neg now reads exp's value before exp runs
    with pytest.raises(VerifyError) as e:
        verify(g)
    msg = str(e.value)
    assert "node 0 `v1: f32[4] = neg(v2)  # f.py:2`" in msg
    assert "not defined by a graph input or an earlier node" in msg
    assert "graph f(" in msg and "return" in msg  # the whole graph is printed


def test_undefined_input():
    g = two_node_graph()
    stray = Value(T("f32[4]"))
    n = g.nodes[1]
    g.nodes[1] = Node(n.op, (stray,), n.attrs, n.out, n.loc)
    with pytest.raises(VerifyError, match=r"node 1 `v2: f32\[4\] = neg\(\?\d+\).*not defined"):
        verify(g)


def test_value_defined_twice():
    g = two_node_graph()
    e = g.nodes[0]
    g.nodes.append(Node(Op.EXP, e.inputs, {}, e.out, "f.py:3"))
    with pytest.raises(VerifyError, match=r"node 2 .*# f.py:3`: redefines"):
        verify(g)


def test_input_redefined_by_node():
    g, (x,) = graph("f", "f32[4]")
    g.nodes.append(Node(Op.EXP, (x,), {}, x, "f.py:9"))
    g.set_outputs([x])
    with pytest.raises(VerifyError, match=r"f.py:9`: redefines"):
        verify(g)


def test_wrong_output_type():
    g = two_node_graph()
    n = g.nodes[0]
    g.nodes[0] = Node(n.op, n.inputs, n.attrs, Value(T("f64[4]"), n.out.id), n.loc)
    want = r"output type is f64\[4\] but the exp rule gives f32\[4\]"
    with pytest.raises(VerifyError, match=want):
        verify(g)


def test_rule_rejects_inputs():
    g, (x, i) = graph("f", "f32[4]", "i32[4]")
    g.nodes.append(Node(Op.ADD, (x, i), {}, Value(T("f32[4]")), "f.py:4"))
    g.set_outputs([g.nodes[0].out])
    with pytest.raises(VerifyError, match=r"the add rule rejects the node: add: dtypes differ"):
        verify(g)


def test_bad_attributes():
    g, (x,) = graph("f", "f32[4]")
    g.nodes.append(Node(Op.RESHAPE, (x,), {"shape": (3,)}, Value(T("f32[3]")), ""))
    g.set_outputs([g.nodes[0].out])
    with pytest.raises(VerifyError, match="cannot reshape"):
        verify(g)
    g.nodes[0] = Node(Op.RESHAPE, (x,), {}, Value(T("f32[4]")), "")
    with pytest.raises(VerifyError, match="rejects the node"):
        verify(g)


def test_arity():
    g, (x,) = graph("f", "f32[4]")
    g.nodes.append(Node(Op.ADD, (x,), {}, Value(T("f32[4]")), "f.py:5"))
    g.set_outputs([g.nodes[0].out])
    with pytest.raises(VerifyError, match=r"add takes 2 inputs, the node has 1"):
        verify(g)


def test_undefined_output():
    g = two_node_graph()
    g.outputs = [Value(T("f32[4]"))]
    with pytest.raises(VerifyError, match=r"output 0 \(out0\) is %\d+, which nothing defines"):
        verify(g)


def test_name_counts():
    g = two_node_graph()
    g.output_names.append("extra")
    with pytest.raises(VerifyError, match="1 outputs but 2 output names"):
        verify(g)
    g = two_node_graph()
    g.input_names.clear()
    with pytest.raises(VerifyError, match="1 inputs but 0 input names"):
        verify(g)


def test_duplicate_graph_input():
    g, (x,) = graph("f", "f32[4]")
    g.inputs.append(x)
    g.input_names.append("x2")
    g.set_outputs([x])
    with pytest.raises(VerifyError, match=r"graph input 1 \(x2\) is listed twice"):
        verify(g)
