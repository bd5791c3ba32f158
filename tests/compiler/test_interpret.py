"""The reference interpreter against numpy computed directly, and its input checks."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from graphs import full, graph, mlp

from compiler.ir.interpret import interpret, last_uses
from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType


def test_mlp_matches_numpy(rng):
    x = rng.standard_normal((8, 4)).astype(np.float32)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    (out,) = interpret(mlp(), [x, w, b])
    want = np.maximum(x @ w + b, np.float32(0)).sum(axis=0, keepdims=True)
    assert out.dtype == np.float32 and out.shape == (1, 3)
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_movement_reduce_and_sources(rng):
    g, (x,) = graph("f", "f32[2,3]")
    t = g.add(Op.PERMUTE, [x], perm=(1, 0))
    p = g.add(Op.PAD, [t], pads=((1, 0, 0), (0, 2, 1)), value=-1.0)
    s = g.add(Op.SLICE, [p], starts=(1, 0), stops=(4, 5), steps=(2, 2))
    c = g.add(Op.CONSTANT, value=Literal(np.arange(3, dtype=np.float32)), shape=(3,),
              dtype=x.dtype)
    i = g.add(Op.IOTA, shape=(2, 3), axis=1, dtype=x.dtype)
    m = g.add(Op.MAX, [g.add(Op.MUL, [x, c])], axes=(1,))
    g.set_outputs([s, g.add(Op.ADD, [i, x]), m])
    a = rng.standard_normal((2, 3)).astype(np.float32)
    s_, ix, m_ = interpret(g, [a])
    padded = np.full((4, 5), -1.0, np.float32)
    padded[1:, 0:3:2] = a.T
    np.testing.assert_array_equal(s_, padded[1:4:2, 0:5:2])
    np.testing.assert_array_equal(ix, a + np.arange(3, dtype=np.float32))
    np.testing.assert_array_equal(m_, (a * np.arange(3, dtype=np.float32)).max(1, keepdims=True))


def test_zero_d_results_are_arrays():
    g, (x,) = graph("f", "f32[]")
    y = g.add(Op.ADD, [x, full(g, 2.0, "f32[]")])
    g.set_outputs([y, x])
    out, same = interpret(g, [np.float32(1.5)])
    assert isinstance(out, np.ndarray) and out.shape == () and out == 3.5
    assert isinstance(same, np.ndarray)


def test_rand_is_deterministic():
    g, (s,) = graph("f", "i64[2]")
    g.set_outputs([g.add(Op.RAND, [s], shape=(5,), dtype=DType.float32, offset=0)])
    state = np.array([7, 0], np.int64)
    (a,), (b,) = interpret(g, [state]), interpret(g, [state])
    np.testing.assert_array_equal(a, b)
    assert ((0 <= a) & (a < 1)).all()


def test_input_count():
    with pytest.raises(ValueError, match=r"mlp takes 3 inputs \(x, y, z\), got 2"):
        interpret(mlp(), [np.zeros((8, 4), np.float32)] * 2)


def test_input_shape_and_dtype():
    x, w, b = np.zeros((8, 4), np.float32), np.zeros((4, 3), np.float32), np.zeros(3, np.float32)
    with pytest.raises(ValueError, match=r"input 1 \(y\) must be f32\[4,3\], got f32\[3,4\]"):
        interpret(mlp(), [x, w.T, b])
    with pytest.raises(ValueError, match=r"input 2 \(z\) must be f32\[3\], got f64\[3\]"):
        interpret(mlp(), [x, w, b.astype(np.float64)])
    with pytest.raises(ValueError, match=r"input 0 \(x\) must be f32\[8,4\], got u8\[8,4\]"):
        interpret(mlp(), [x.astype(np.uint8), w, b])


def test_values_are_freed_after_last_use():
    """Each intermediate dies at its last reader; a long chain holds O(1) arrays at a time."""
    g, (x,) = graph("chain", "f32[4]")
    v = x
    for _ in range(5):
        v = g.add(Op.NEG, [v])
    g.set_outputs([v])
    dies = last_uses(g)
    assert [len(d) for d in dies] == [1, 1, 1, 1, 1]  # each node's input dies there

    alive = []
    held = []  # at each call: how many earlier results are still alive
    real = np.negative

    class Spy:  # records a weak reference to every intermediate
        def __call__(self, a):
            held.append(sum(r() is not None for r in alive))
            out = real(a)
            alive.append(weakref.ref(out))
            return out

    from compiler.ir import ops

    table = ops.impls(np)
    saved = table[Op.NEG]
    table[Op.NEG] = Spy()
    try:
        interpret(g, [np.ones(4, np.float32)])
    finally:
        table[Op.NEG] = saved
    assert held == [0, 1, 1, 1, 1]  # only the argument of the running node
    gc.collect()
    assert sum(r() is not None for r in alive) == 0  # the returned output was dropped too


@pytest.mark.skipif(not hasattr(Exception, "add_note"), reason="exception notes: Python 3.11+")
def test_a_failing_node_names_itself_its_inputs_and_the_users_line(monkeypatch):
    """An exception from a reference implementation keeps its type and gains a note naming the
    node, its input types and the line that traced it (as torch.fx's Interpreter does)."""
    import sys

    interp_mod = sys.modules["compiler.ir.interpret"]  # the package re-exports the function
    g, (x,) = graph("step", "f32[2,3]")
    e = g.add(Op.EXP, [x], loc="train.py:12")
    g.set_outputs([g.add(Op.ADD, [e, x])])
    table = dict(interp_mod.impls(np))

    def broken(a):
        raise FloatingPointError("overflow in exp")

    table[Op.EXP] = broken
    monkeypatch.setattr(interp_mod, "impls", lambda xp: table)
    with pytest.raises(FloatingPointError, match="overflow in exp") as info:
        interpret(g, [np.ones((2, 3), np.float32)])
    (note,) = info.value.__notes__
    assert f"%{e.id} = exp(%{x.id}: f32[2,3])" in note and "traced at train.py:12" in note
    assert note.startswith("while running step:")
