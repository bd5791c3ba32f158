"""Algebraic simplification: each rule's before/after IR text, the rules that must NOT fire
(inexact in IEEE arithmetic), numerics, no mutation, verified results."""

from __future__ import annotations

import numpy as np
from graphs import body, check_pass, expect, full, graph

from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType
from compiler.passes import simplify


def test_multiplicative_and_additive_identities():
    g, (x,) = graph("f", "f32[4]")
    one = full(g, 1, "f32[4]")
    ones = g.add(Op.CONSTANT, value=Literal(np.ones(4, np.float32)), shape=(4,),
                 dtype=DType.float32)
    m = g.add(Op.MUL, [one, x])
    d = g.add(Op.DIV, [m, ones])
    a = g.add(Op.ADD, [d, full(g, -0.0, "f32[]")])
    s = g.add(Op.SUB, [a, full(g, 0.0, "f32[]")])
    g.set_outputs([s])
    check_pass(simplify, g, """
          v1: f32[4] = full(value=1, shape=(4,), dtype=f32)
          v2: f32[4] = constant(value=[1.,1.,1.,1.], shape=(4,), dtype=f32)
          v3: f32[] = full(value=-0.0, shape=(), dtype=f32)
          v4: f32[] = full(value=0.0, shape=(), dtype=f32)
          return v0 out0
        }""")


def test_inexact_float_rewrites_are_not_made():
    """x + 0.0 (-0.0 + 0.0 is +0.0), x - (-0.0), 0 - x, x * 0.0 (inf * 0 is NaN), 1 / x."""
    g, (x,) = graph("f", "f32[4]")
    zero, nzero, one = full(g, 0.0, "f32[]"), full(g, -0.0, "f32[]"), full(g, 1.0, "f32[]")
    g.set_outputs([g.add(Op.ADD, [x, zero]), g.add(Op.SUB, [x, nzero]),
                   g.add(Op.SUB, [zero, x]), g.add(Op.MUL, [x, zero]),
                   g.add(Op.DIV, [one, x])])
    check_pass(simplify, g, """
          v1: f32[] = full(value=0.0, shape=(), dtype=f32)
          v2: f32[] = full(value=-0.0, shape=(), dtype=f32)
          v3: f32[] = full(value=1.0, shape=(), dtype=f32)
          v4: f32[4] = add(v0, v1)
          v5: f32[4] = sub(v0, v2)
          v6: f32[4] = sub(v1, v0)
          v7: f32[4] = mul(v0, v1)
          v8: f32[4] = div(v3, v0)
          return v4 out0, v5 out1, v6 out2, v7 out3, v8 out4
        }""")


def test_integer_zero_rules():
    g, (x, b) = graph("f", "i32[3]", "b8[3]")
    z = full(g, 0, "i32[2,3]")
    m = g.add(Op.MUL, [x, z])  # ints: x * 0 is 0, at the broadcast shape
    a = g.add(Op.ADD, [g.add(Op.ADD, [x, full(g, 0, "i32[]")]), g.add(Op.SUB, [x, z])])
    bz = g.add(Op.MUL, [b, full(g, False, "b8[3]")])
    g.set_outputs([m, a, bz, g.add(Op.ADD, [b, full(g, False, "b8[]")])])
    check_pass(simplify, g, """
          v2: i32[2,3] = full(value=0, shape=(2,3), dtype=i32)
          v3: i32[] = full(value=0, shape=(), dtype=i32)
          v4: i32[2,3] = expand(v0, shape=(2,3))
          v5: i32[2,3] = add(v0, v4)
          v6: b8[3] = full(value=False, shape=(3,), dtype=b8)
          v7: b8[] = full(value=False, shape=(), dtype=b8)
          return v2 out0, v5 out1, v6 out2, v1 out3
        }""")


def test_broadcasting_identity_becomes_expand():
    g, (x,) = graph("f", "f32[3]")
    y = g.add(Op.MUL, [x, full(g, 1.0, "f32[2,3]")], loc="f.py:2")
    g.set_outputs([y])
    check_pass(simplify, g, """
          v1: f32[2,3] = full(value=1.0, shape=(2,3), dtype=f32)
          v2: f32[2,3] = expand(v0, shape=(2,3))  # f.py:2
          return v2 out0
        }""")


def test_neg_neg_copy_and_where():
    g, (x, c) = graph("f", "f32[4]", "b8[4]")
    n = g.add(Op.NEG, [g.add(Op.NEG, [g.add(Op.COPY, [x])])])
    w = g.add(Op.WHERE, [c, n, n])
    t = g.add(Op.WHERE, [full(g, True, "b8[4]"), w, x])
    f = g.add(Op.WHERE, [full(g, False, "b8[2,1]"), w, g.add(Op.EXP, [x])])  # c broadcasts
    g.set_outputs([t, f])
    check_pass(simplify, g, """
          v2: f32[4] = neg(v0)
          v3: b8[4] = full(value=True, shape=(4,), dtype=b8)
          v4: b8[2,1] = full(value=False, shape=(2,1), dtype=b8)
          v5: f32[4] = exp(v0)
          v6: f32[2,4] = expand(v5, shape=(2,4))
          return v0 out0, v6 out1
        }""")


def test_movement_rules():
    """(Nodes a rewrite bypasses stay for dce.)"""
    g, (x,) = graph("f", "f32[2,3,4]")
    p = g.add(Op.PERMUTE, [g.add(Op.PERMUTE, [x], perm=(1, 2, 0))], perm=(2, 0, 1))  # identity
    q = g.add(Op.PERMUTE, [g.add(Op.PERMUTE, [x], perm=(1, 0, 2))], perm=(0, 2, 1))
    r = g.add(Op.RESHAPE, [g.add(Op.RESHAPE, [p], shape=(6, 4))], shape=(24,))
    e = g.add(Op.EXPAND, [g.add(Op.EXPAND, [r], shape=(1, 24))], shape=(5, 24))
    s = g.add(Op.SLICE, [x], starts=(0, 0, 0), stops=(2, 3, 4), steps=(1, 1, 1))  # no-op
    pd = g.add(Op.PAD, [s], pads=((0, 0, 0), (0, 0, 0), (0, 0, 0)), value=1.0)
    g.set_outputs([q, e, g.add(Op.RESHAPE, [pd], shape=(2, 3, 4))])
    check_pass(simplify, g, """
          v1: f32[3,4,2] = permute(v0, perm=(1,2,0))
          v2: f32[3,2,4] = permute(v0, perm=(1,0,2))
          v3: f32[3,4,2] = permute(v0, perm=(1,2,0))
          v4: f32[6,4] = reshape(v0, shape=(6,4))
          v5: f32[24] = reshape(v0, shape=(24,))
          v6: f32[1,24] = expand(v5, shape=(1,24))
          v7: f32[5,24] = expand(v5, shape=(5,24))
          return v3 out0, v7 out1, v0 out2
        }""")


def test_transpose_of_square_is_not_identity():
    g, (x,) = graph("f", "f32[3,3]")
    g.set_outputs([g.add(Op.PERMUTE, [x], perm=(1, 0))])
    check_pass(simplify, g, """
          v1: f32[3,3] = permute(v0, perm=(1,0))
          return v1 out0
        }""")


def test_cast_rules():
    g, (h, f, i) = graph("f", "f16[3]", "f32[3]", "i32[3]")
    a = g.add(Op.CAST, [g.add(Op.CAST, [h], dtype=DType.float32)], dtype=DType.float16)
    b = g.add(Op.CAST, [g.add(Op.CAST, [f], dtype=DType.float64)], dtype=DType.float32)
    c = g.add(Op.CAST, [g.add(Op.CAST, [i], dtype=DType.int64)], dtype=DType.int32)
    lossy = g.add(Op.CAST, [g.add(Op.CAST, [f], dtype=DType.float16)], dtype=DType.float32)
    i2 = g.add(Op.CAST, [g.add(Op.CAST, [i], dtype=DType.float32)], dtype=DType.int32)
    g.set_outputs([a, b, c, lossy, i2, g.add(Op.CAST, [f], dtype=DType.float32)])
    check_pass(simplify, g, """
          v3: f32[3] = cast(v0, dtype=f32)
          v4: f64[3] = cast(v1, dtype=f64)
          v5: i64[3] = cast(v2, dtype=i64)
          v6: f16[3] = cast(v1, dtype=f16)
          v7: f32[3] = cast(v6, dtype=f32)
          v8: f32[3] = cast(v2, dtype=f32)
          v9: i32[3] = cast(v8, dtype=i32)
          return v0 out0, v1 out1, v2 out2, v7 out3, v9 out4, v1 out5
        }""")


def test_non_uniform_constant_is_not_one():
    g, (x,) = graph("f", "f32[2]")
    c = g.add(Op.CONSTANT, value=Literal(np.array([1, 2], np.float32)), shape=(2,),
              dtype=DType.float32)
    g.set_outputs([g.add(Op.MUL, [x, c])])
    check_pass(simplify, g, """
          v1: f32[2] = constant(value=[1.,2.], shape=(2,), dtype=f32)
          v2: f32[2] = mul(v0, v1)
          return v2 out0
        }""")


def test_transpose_of_a_product_used_once_is_a_product_of_transposes():
    """(x^T g)^T -> g^T x: the permutes of the operands fold away (permute(permute(x)) -> x);
    a product with another use, or a permute that keeps the last two dims, is left alone."""
    g, (x, y, b) = graph("f", "f32[5,3]", "f32[5,4]", "f32[2,3,4]")
    xt = g.add(Op.PERMUTE, [x], perm=(1, 0))
    once = g.add(Op.PERMUTE, [g.add(Op.MATMUL, [xt, y])], perm=(1, 0))
    twice = g.add(Op.MATMUL, [xt, y])
    bt = g.add(Op.PERMUTE, [b], perm=(0, 2, 1))
    batched = g.add(Op.PERMUTE, [g.add(Op.MATMUL, [b, bt])], perm=(0, 2, 1))
    batch_swap = g.add(Op.PERMUTE, [g.add(Op.MATMUL, [bt, b])], perm=(1, 0, 2))
    g.set_outputs([once, g.add(Op.PERMUTE, [twice], perm=(1, 0)), twice, batched, batch_swap])
    out = check_pass(simplify, g, None, exact=False)
    assert body(out) == expect("""
          v3: f32[3,5] = permute(v0, perm=(1,0))
          v4: f32[3,4] = matmul(v3, v1)
          v5: f32[4,5] = permute(v1, perm=(1,0))
          v6: f32[4,3] = matmul(v5, v0)
          v7: f32[3,4] = matmul(v3, v1)
          v8: f32[2,4,3] = permute(v2, perm=(0,2,1))
          v9: f32[2,3,3] = matmul(v2, v8)
          v10: f32[2,4,3] = permute(v2, perm=(0,2,1))
          v11: f32[2,3,3] = matmul(v2, v10)
          v12: f32[2,4,4] = matmul(v8, v2)
          v13: f32[4,2,4] = permute(v12, perm=(1,0,2))
          v14: f32[4,3] = permute(v7, perm=(1,0))
          return v6 out0, v14 out1, v7 out2, v11 out3, v13 out4
        }"""), "\n" + body(out)
