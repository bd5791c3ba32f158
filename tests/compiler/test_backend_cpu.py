"""CpuExecutable: a graph compiled for this CPU runs like the interpreter, on contiguous,
non-contiguous and 0-d inputs, and describes its fused program, plan and memory plan."""

from __future__ import annotations

import numpy as np
from native import assert_match, check_native, reference

from compiler.backend_cpu import CpuExecutable
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.types import DType, TensorType

F32 = DType.float32


def mlp_graph() -> Graph:
    g = Graph(name="mlp")
    x = g.add_input(TensorType((8, 16), F32), "x")
    w = g.add_input(TensorType((32, 16), F32), "w")
    b = g.add_input(TensorType((32,), F32), "b")
    s = g.add_input(TensorType((), F32), "s")
    h = g.add(Op.MATMUL, [x, g.add(Op.PERMUTE, [w], perm=(1, 0))])
    r = g.add(Op.MAXIMUM, [g.add(Op.ADD, [h, b]), g.add(Op.FULL, value=0.0, shape=(), dtype=F32)])
    g.set_outputs([g.add(Op.MUL, [r, s]), g.add(Op.SUM, [r], axes=(0, 1))])
    return g


def inputs(rng):
    return [rng.standard_normal(sh).astype(np.float32) for sh in ((8, 16), (32, 16), (32,))] + [
        np.array(0.5, np.float32)]


def test_runs_like_the_interpreter():
    ex = check_native(mlp_graph(), inputs(np.random.default_rng(0)), rtol=1e-5, atol=1e-5)
    assert ex.kernel_count == 2  # bias + relu + scale; the full sum (a kernel of its own)
    assert not ex.from_cache


def test_non_contiguous_inputs_are_accepted():
    g = mlp_graph()
    ins = inputs(np.random.default_rng(1))
    ex = CpuExecutable(g, use_cache=False)
    wide = np.zeros((32, 32), np.float32)
    wide[:, ::2] = ins[1]
    strided = [ins[0], wide[:, ::2], ins[2], ins[3]]
    assert not strided[1].flags.c_contiguous
    assert_match(ex(strided), reference(g, ins), 1e-5, 1e-5)
    # and a later call with contiguous inputs still matches the reference
    assert_match(ex(ins), reference(g, ins), 1e-5, 1e-5)


def test_describe_and_memory():
    ex = CpuExecutable(mlp_graph(), use_cache=False)
    text = ex.describe()
    assert "graph mlp(" in text and "kernel k" in text and "gemm " in text
    m = ex.memory
    assert m.arena_bytes <= m.naive_bytes


def test_outputs_do_not_alias_between_calls():
    g = Graph(name="neg")
    x = g.add_input(TensorType((4,), F32), "x")
    g.set_outputs([g.add(Op.NEG, [x])])
    ex = CpuExecutable(g, use_cache=False)
    a = ex([np.ones(4, np.float32)])[0]
    b = ex([np.full(4, 2, np.float32)])[0]
    np.testing.assert_array_equal(a, -np.ones(4))
    np.testing.assert_array_equal(b, -2 * np.ones(4))


def test_donated_input_is_updated_in_place():
    g = Graph(name="sgd")
    p = g.add_input(TensorType((64,), F32), "p")
    d = g.add_input(TensorType((64,), F32), "d")
    lr = g.add(Op.FULL, value=0.1, shape=(), dtype=F32)
    g.set_outputs([g.add(Op.SUB, [p, g.add(Op.MUL, [d, lr])])])
    ex = CpuExecutable(g, use_cache=False, donate={0: 0})
    param = np.ones(64, np.float32)
    grad = np.arange(64, dtype=np.float32)
    want = reference(g, [param.copy(), grad])
    out = ex([param, grad])
    assert_match(out, want)
    np.testing.assert_array_equal(param, want[0])  # written into the parameter's own array
