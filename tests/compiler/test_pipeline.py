"""The whole DEFAULT_PIPELINE on random small graphs: the result verifies and the interpreter
gives the same outputs as on the original graph (closely: a folded or re-laid-out reduction may
sum in another order), and the original graph is untouched."""

from __future__ import annotations

import itertools

import numpy as np
from graphs import assert_same, graph, random_inputs, run
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.ir.ops import Literal, Op, OpError
from compiler.ir.printer import format_graph
from compiler.ir.types import DType
from compiler.ir.verify import verify
from compiler.passes import DEFAULT_PIPELINE, run_passes

SHAPES = ["f32[2,3]", "f32[3]", "f32[1,3]", "f32[2,1]"]
UNARY = [Op.NEG, Op.ABS, Op.EXP, Op.COPY, Op.SIGN]
BINARY = [Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM]
SCALARS = [0.0, -0.0, 1.0, 2.0]


def _step(g, pool, data) -> None:
    """Append a random node (or two) reading values of `pool`; OpError when a rule rejects it."""
    draw = data.draw
    x = draw(st.sampled_from(pool))
    kind = draw(st.sampled_from(["unary", "binary", "const", "reduce", "move", "cast", "where"]))
    f32 = DType.float32
    if kind == "unary":
        op, ins, attrs = draw(st.sampled_from(UNARY)), [x], {}
    elif kind == "binary":
        op, ins, attrs = draw(st.sampled_from(BINARY)), [x, draw(st.sampled_from(pool))], {}
    elif kind == "const":
        shape = draw(st.sampled_from([(), x.type.shape, (2,) + x.type.shape]))
        if draw(st.booleans()):
            c = g.add(Op.FULL, value=draw(st.sampled_from(SCALARS)), shape=shape, dtype=f32)
        else:
            vals = np.array(draw(st.lists(st.sampled_from(SCALARS), min_size=1, max_size=1)) *
                            int(np.prod(shape)), np.float32).reshape(shape)
            c = g.add(Op.CONSTANT, value=Literal(vals), shape=shape, dtype=f32)
        pool.append(c)
        op = draw(st.sampled_from(BINARY))
        ins, attrs = ([x, c] if draw(st.booleans()) else [c, x]), {}
    elif kind == "reduce":
        axes = tuple(a for a in range(x.type.ndim) if draw(st.booleans()))
        op, ins, attrs = draw(st.sampled_from([Op.SUM, Op.MAX])), [x], {"axes": axes}
    elif kind == "move":
        nd = x.type.ndim
        choice = draw(st.sampled_from(["reshape", "permute", "expand", "slice", "pad"]))
        op, ins = Op(choice), [x]
        if choice == "reshape":
            attrs = {"shape": draw(st.sampled_from([(x.type.numel,), x.type.shape + (1,)]))}
        elif choice == "permute":
            attrs = {"perm": draw(st.sampled_from(list(itertools.permutations(range(nd)))))}
        elif choice == "expand":
            attrs = {"shape": (2,) + tuple(2 if s == 1 else s for s in x.type.shape)}
        elif choice == "slice":
            attrs = {"starts": (0,) * nd, "stops": tuple((s + 1) // 2 for s in x.type.shape),
                     "steps": (1,) * nd}
        else:
            attrs = {"pads": ((1, 0, 0),) * nd, "value": draw(st.sampled_from(SCALARS))}
    elif kind == "cast":
        wide = g.add(Op.CAST, [x], dtype=DType.float64)
        op, ins, attrs = Op.CAST, [wide], {"dtype": f32}
    else:
        c = g.add(Op.GT, [x, draw(st.sampled_from(pool))])
        op, ins, attrs = Op.WHERE, [c, x, draw(st.sampled_from(pool))], {}
    pool.append(g.add(op, ins, **attrs))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_pipeline_preserves_results(data):
    specs = data.draw(st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3))
    g, pool = graph("random", *specs)
    for _ in range(data.draw(st.integers(1, 12))):
        try:
            _step(g, pool, data)
        except OpError:  # shapes that do not broadcast: skip (nodes added so far are dead code)
            pass
    outs = [pool[-1]] + data.draw(st.lists(st.sampled_from(pool), max_size=2))
    g.set_outputs(outs)
    verify(g)
    before = format_graph(g)
    out, _ = run_passes(g, DEFAULT_PIPELINE, verify=True)
    assert format_graph(g) == before
    assert len(out.nodes) <= len(g.nodes) + len(outs)  # (an expand per output at most)
    inputs = random_inputs(g, np.random.default_rng(0))
    assert_same(run(g, inputs), run(out, inputs), exact=False)
