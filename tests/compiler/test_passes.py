"""dce, cse and the pass manager: before/after IR text, numerics, no mutation, verified results."""

from __future__ import annotations

import numpy as np
import pytest
from graphs import check_pass, full, graph, mlp

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import Literal, Op
from compiler.ir.verify import VerifyError
from compiler.passes import DEFAULT_PIPELINE, Pass, cse, dce, run_passes


def test_dce_drops_unreachable_nodes():
    g, (x, s) = graph("f", "f32[4]", "i64[2]")
    e = g.add(Op.EXP, [x], loc="f.py:1")
    g.add(Op.LOG, [e], loc="f.py:2")  # unused
    g.add(Op.RAND, [s], shape=(4,), dtype=x.type.dtype, offset=0)  # unused, and pure
    g.set_outputs([g.add(Op.NEG, [e], loc="f.py:3")])
    check_pass(dce, g, """
          v2: f32[4] = exp(v0)  # f.py:1
          v3: f32[4] = neg(v2)  # f.py:3
          return v3 out0
        }""")


def test_dce_keeps_outputs_that_are_inputs():
    g, (x,) = graph("f", "f32[4]")
    g.add(Op.EXP, [x])
    g.set_outputs([x, x])
    check_pass(dce, g, """
          return v0 out0, v0 out1
        }""")


def test_cse_merges_repeated_work_transitively():
    g, (x, y) = graph("f", "f32[4]", "f32[4]")
    a1 = g.add(Op.ADD, [x, y], loc="f.py:1")
    a2 = g.add(Op.ADD, [x, y], loc="f.py:2")
    e1 = g.add(Op.EXP, [a1], loc="f.py:3")
    e2 = g.add(Op.EXP, [a2], loc="f.py:4")
    b = g.add(Op.ADD, [y, x], loc="f.py:5")  # commuted: not merged (no canonical order)
    g.set_outputs([g.add(Op.MUL, [e1, e2]), e2, b])
    check_pass(cse, g, """
          v2: f32[4] = add(v0, v1)  # f.py:1
          v3: f32[4] = exp(v2)  # f.py:3
          v4: f32[4] = add(v1, v0)  # f.py:5
          v5: f32[4] = mul(v3, v3)
          return v5 out0, v3 out1, v4 out2
        }""")


def test_cse_compares_attributes_exactly():
    g, (x,) = graph("f", "f32[3]")
    pads = ((1, 1, 0),)
    p0 = g.add(Op.PAD, [x], pads=pads, value=0.0)
    p1 = g.add(Op.PAD, [x], pads=pads, value=-0.0)  # differs from +0.0
    p2 = g.add(Op.PAD, [x], pads=pads, value=0.0)  # same as p0
    n0 = g.add(Op.PAD, [x], pads=pads, value=float("nan"))
    n1 = g.add(Op.PAD, [x], pads=pads, value=float("nan"))  # NaN attrs: same bits, same value
    g.set_outputs([p0, p1, p2, n0, n1])
    check_pass(cse, g, """
          v1: f32[5] = pad(v0, pads=((1,1,0),), value=0.0)
          v2: f32[5] = pad(v0, pads=((1,1,0),), value=-0.0)
          v3: f32[5] = pad(v0, pads=((1,1,0),), value=nan)
          return v1 out0, v2 out1, v1 out2, v3 out3, v3 out4
        }""")


def test_cse_merges_sources_by_content():
    g, (x,) = graph("f", "f32[2]")
    c1 = g.add(Op.CONSTANT, value=Literal(np.array([1, 2], np.float32)), shape=(2,),
               dtype=x.type.dtype)
    c2 = g.add(Op.CONSTANT, value=Literal(np.array([1, 2], np.float32)), shape=(2,),
               dtype=x.type.dtype)
    t = full(g, True, "b8[2]")
    one = full(g, 1, "b8[2]")  # 1 == True in Python, but an int attribute is not a bool one
    g.set_outputs([g.add(Op.ADD, [x, c1]), g.add(Op.ADD, [x, c2]), t, one])
    check_pass(cse, g, """
          v1: f32[2] = constant(value=[1.,2.], shape=(2,), dtype=f32)
          v2: b8[2] = full(value=True, shape=(2,), dtype=b8)
          v3: b8[2] = full(value=1, shape=(2,), dtype=b8)
          v4: f32[2] = add(v0, v1)
          return v4 out0, v4 out1, v2 out2, v3 out3
        }""")


def test_run_passes_records_stages():
    g = mlp()
    out, stages = run_passes(g, DEFAULT_PIPELINE, verify=True)
    assert [s.name for s in stages] == [p.name for p in DEFAULT_PIPELINE]
    assert stages[-1].graph is out
    assert all(s.seconds >= 0 for s in stages)
    assert "# after dce" in str(stages[0]) and "graph mlp(" in str(stages[0])


def _break(graph: Graph) -> Graph:
    n = graph.nodes[0]
    return graph.replace(nodes=[Node(Op.NEG, n.inputs, {}, n.out, n.loc)] + graph.nodes[1:])


def test_run_passes_names_the_pass_that_broke_the_graph(monkeypatch):
    g = mlp()
    bad = Pass("bad", _break)
    with pytest.raises(VerifyError, match=r"after pass bad: verify mlp: node 0"):
        run_passes(g, [Pass("dce", dce), bad], verify=True)
    run_passes(g, [bad], verify=False)  # unchecked
    monkeypatch.setenv("HYBRID_VERIFY", "1")
    with pytest.raises(VerifyError):
        run_passes(g, [bad])
    monkeypatch.setenv("HYBRID_VERIFY", "0")
    run_passes(g, [bad])
