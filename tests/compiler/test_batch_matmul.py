"""batch_matmuls: x[t] @ w over consecutive t becomes one matmul over the rows of x (before/after
IR text, numerics, the groups it must leave alone)."""

from __future__ import annotations

from graphs import body, check_pass, expect, graph

from compiler.ir.ops import Op
from compiler.passes import batch_matmuls, dce


def _row(g, x, t):
    """x[t] as tracing writes it: a one-index slice along the first axis, then a reshape."""
    s = g.add(Op.SLICE, [x], starts=(t, 0, 0), stops=(t + 1,) + tuple(x.shape[1:]),
              steps=(1, 1, 1))
    return g.add(Op.RESHAPE, [s], shape=tuple(x.shape[1:]))


def test_input_projection_of_an_unrolled_rnn_is_one_matmul():
    g, (xs, h, w, u) = graph("rnn", "f32[3,2,4]", "f32[2,5]", "f32[5,5]", "f32[4,5]")
    for t in range(3):
        h = g.add(Op.TANH, [g.add(Op.ADD, [g.add(Op.MATMUL, [h, w]),
                                           g.add(Op.MATMUL, [_row(g, xs, t), u])])])
    g.set_outputs([h])
    out = check_pass(lambda gr: dce(batch_matmuls(gr)), g, None, exact=False)
    assert body(out) == expect("""
          v4: f32[2,5] = matmul(v1, v2)
          v5: f32[3,2,4] = slice(v0, starts=(0,0,0), stops=(3,2,4), steps=(1,1,1))
          v6: f32[6,4] = reshape(v5, shape=(6,4))
          v7: f32[6,5] = matmul(v6, v3)
          v8: f32[3,2,5] = reshape(v7, shape=(3,2,5))
          v9: f32[1,2,5] = slice(v8, starts=(0,0,0), stops=(1,2,5), steps=(1,1,1))
          v10: f32[2,5] = reshape(v9, shape=(2,5))
          v11: f32[1,2,5] = slice(v8, starts=(1,0,0), stops=(2,2,5), steps=(1,1,1))
          v12: f32[2,5] = reshape(v11, shape=(2,5))
          v13: f32[1,2,5] = slice(v8, starts=(2,0,0), stops=(3,2,5), steps=(1,1,1))
          v14: f32[2,5] = reshape(v13, shape=(2,5))
          v15: f32[2,5] = add(v4, v10)
          v16: f32[2,5] = tanh(v15)
          v17: f32[2,5] = matmul(v16, v2)
          v18: f32[2,5] = add(v17, v12)
          v19: f32[2,5] = tanh(v18)
          v20: f32[2,5] = matmul(v19, v2)
          v21: f32[2,5] = add(v20, v14)
          v22: f32[2,5] = tanh(v21)
          return v22 out0
        }"""), "\n" + body(out)


def _matmuls(g) -> int:
    return sum(n.op is Op.MATMUL for n in g.nodes)


def test_groups_that_do_not_tile_a_range_are_left_alone():
    g, (xs, u, v) = graph("f", "f32[4,2,3]", "f32[3,3]", "f32[3,3]")
    outs = [g.add(Op.MATMUL, [_row(g, xs, 0), u]), g.add(Op.MATMUL, [_row(g, xs, 2), u]),
            g.add(Op.MATMUL, [_row(g, xs, 1), v]),  # alone with its w
            g.add(Op.MATMUL, [_row(g, xs, 3), g.add(Op.EXP, [u])])]  # a computed w of its own
    g.set_outputs(outs)
    out = check_pass(batch_matmuls, g, None)
    assert _matmuls(out) == 4


def test_repeated_rows_are_left_alone_and_two_groups_batch_apart():
    g, (xs, u, v) = graph("f", "f32[3,2,3]", "f32[3,3]", "f32[3,4]")
    twice = [g.add(Op.MATMUL, [_row(g, xs, 0), u]), g.add(Op.MATMUL, [_row(g, xs, 0), u])]
    pair_v = [g.add(Op.MATMUL, [_row(g, xs, t), v]) for t in (1, 2)]
    g.set_outputs(twice + pair_v)
    out = check_pass(lambda gr: dce(batch_matmuls(gr)), g, None, exact=False)
    assert _matmuls(out) == 3  # the repeated row stays two matmuls, the v pair becomes one
    big = [n for n in out.nodes if n.op is Op.MATMUL and n.out.shape == (4, 4)]
    assert len(big) == 1
