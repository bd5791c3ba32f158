"""Constant folding: before/after IR text, numerics, no mutation, verified results."""

from __future__ import annotations

import numpy as np
from graphs import check_pass, full, graph

from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType
from compiler.passes import fold


def test_folds_small_constant_subgraphs_to_constants():
    g, (x,) = graph("f", "f32[3]")
    i = g.add(Op.IOTA, shape=(3,), axis=0, dtype=DType.float32, loc="f.py:1")
    e = g.add(Op.EXP, [i])
    s = g.add(Op.SUM, [e], axes=(0,), loc="f.py:3")
    g.set_outputs([g.add(Op.MUL, [x, e], loc="f.py:4"), s])
    out = check_pass(fold, g, """
          v1: f32[3] = iota(shape=(3,), axis=0, dtype=f32)  # f.py:1
          v2: f32[3] = constant(value=[1.       ,2.718282 ,7.3890557], shape=(3,), dtype=f32)
          v3: f32[1] = full(value=11.107337951660156, shape=(1,), dtype=f32)  # f.py:3
          v4: f32[3] = mul(v0, v2)  # f.py:4
          return v4 out0, v3 out1
        }""")
    assert out.nodes[1].attrs["value"].array.dtype == np.float32


def test_uniform_results_become_full():
    g, (x,) = graph("f", "f32[2,2]")
    c = g.add(Op.CONSTANT, value=Literal(np.array([[2, 2], [2, 2]], np.float32)), shape=(2, 2),
              dtype=DType.float32)
    z = g.add(Op.MUL, [c, full(g, -0.0, "f32[]")], loc="f.py:7")  # all -0.0: a full of -0.0
    g.set_outputs([g.add(Op.ADD, [x, z])])
    check_pass(fold, g, """
          v1: f32[2,2] = constant(value=[[2.,2.], [2.,2.]], shape=(2,2), dtype=f32)
          v2: f32[] = full(value=-0.0, shape=(), dtype=f32)
          v3: f32[2,2] = full(value=-0.0, shape=(2,2), dtype=f32)  # f.py:7
          v4: f32[2,2] = add(v0, v3)
          return v4 out0
        }""")


def test_large_results_fold_only_when_elementwise_on_fulls():
    g, (x,) = graph("f", "f32[100,100]")
    two = full(g, 2.0, "f32[100,100]")
    e = g.add(Op.EXP, [two])  # 10,000 elements, but one value: folded
    t = g.add(Op.PERMUTE, [e], perm=(1, 0))  # movement of a full: folded
    i = g.add(Op.IOTA, shape=(100, 100), axis=1, dtype=DType.float32)
    n = g.add(Op.NEG, [i])  # 10,000 distinct values: too big to fold
    g.set_outputs([g.add(Op.ADD, [x, t]), n])
    check_pass(fold, g, """
          v1: f32[100,100] = full(value=2.0, shape=(100,100), dtype=f32)
          v2: f32[100,100] = full(value=7.3890557289123535, shape=(100,100), dtype=f32)
          v3: f32[100,100] = full(value=7.3890557289123535, shape=(100,100), dtype=f32)
          v4: f32[100,100] = iota(shape=(100,100), axis=1, dtype=f32)
          v5: f32[100,100] = neg(v4)
          v6: f32[100,100] = add(v0, v3)
          return v6 out0, v5 out1
        }""")


def test_rand_and_inputs_are_never_folded():
    g, (x,) = graph("f", "f32[2]")
    state = g.add(Op.CONSTANT, value=Literal(np.array([1, 2], np.int64)), shape=(2,),
                  dtype=DType.int64)
    r = g.add(Op.RAND, [state], shape=(2,), dtype=DType.float32, offset=0)
    g.set_outputs([g.add(Op.ADD, [x, r])])
    check_pass(fold, g, """
          v1: i64[2] = constant(value=[1,2], shape=(2,), dtype=i64)
          v2: f32[2] = rand(v1, shape=(2,), dtype=f32, offset=0)
          v3: f32[2] = add(v0, v2)
          return v3 out0
        }""")


def test_failing_evaluation_is_left_for_run_time():
    g, (x,) = graph("f", "f32[2]")
    table = g.add(Op.IOTA, shape=(3,), axis=0, dtype=DType.float32)
    idx = full(g, 7, "i64[2]")  # out of range
    g.set_outputs([g.add(Op.GATHER, [table, idx], axis=0), x])
    out = fold(g)
    assert [n.op for n in out.nodes] == [Op.IOTA, Op.FULL, Op.GATHER]


def test_int_and_bool_folding():
    g, (x,) = graph("f", "i32[3]")
    a = g.add(Op.IOTA, shape=(3,), axis=0, dtype=DType.int32)
    b = g.add(Op.FLOORDIV, [a, full(g, 2, "i32[]")])
    lt = g.add(Op.LT, [b, full(g, 1, "i32[3]")])
    g.set_outputs([g.add(Op.ADD, [x, b]), lt])
    check_pass(fold, g, """
          v1: i32[3] = iota(shape=(3,), axis=0, dtype=i32)
          v2: i32[] = full(value=2, shape=(), dtype=i32)
          v3: i32[3] = constant(value=[0,0,1], shape=(3,), dtype=i32)
          v4: i32[3] = full(value=1, shape=(3,), dtype=i32)
          v5: b8[3] = constant(value=[ True, True,False], shape=(3,), dtype=b8)
          v6: i32[3] = add(v0, v3)
          return v6 out0, v5 out1
        }""")
