"""CpuExecutable called again and again: every call matches the interpreter (not merely the
previous call), outputs of earlier calls are never overwritten by later ones, and inputs are
left as they were. (Replaces the self-comparison `assert_match(ex(ins), ex(ins))`.)"""

from __future__ import annotations

import numpy as np
from native import assert_match, reference

from compiler.backend_cpu import CpuExecutable
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.types import DType, TensorType

F32 = DType.float32


def _graph() -> Graph:
    g = Graph(name="mlp_repeat")
    x = g.add_input(TensorType((8, 16), F32), "x")
    w = g.add_input(TensorType((32, 16), F32), "w")
    b = g.add_input(TensorType((32,), F32), "b")
    h = g.add(Op.MATMUL, [x, g.add(Op.PERMUTE, [w], perm=(1, 0))])
    r = g.add(Op.MAXIMUM, [g.add(Op.ADD, [h, b]), g.add(Op.FULL, value=0.0, shape=(), dtype=F32)])
    big = g.add(Op.EXP, [g.add(Op.MUL, [r, g.add(Op.FULL, value=1e-3, shape=(), dtype=F32)])])
    g.set_outputs([r, g.add(Op.SUM, [r], axes=(0, 1)), big])
    return g


def test_every_call_matches_the_interpreter_and_keeps_earlier_outputs():
    g = _graph()
    ex = CpuExecutable(g, use_cache=False)
    rng = np.random.default_rng(2)
    calls = []
    for k in range(4):
        ins = [rng.standard_normal(s).astype(np.float32) for s in ((8, 16), (32, 16), (32,))]
        if k % 2:  # a non-contiguous weight every other call
            wide = np.zeros((32, 32), np.float32)
            wide[:, ::2] = ins[1]
            ins[1] = wide[:, ::2]
        before = [a.copy() for a in ins]
        want = reference(g, [np.ascontiguousarray(a) for a in ins])
        got = ex(ins)
        assert_match(got, want, 1e-5, 1e-5, what=f"call {k}")
        for a, b in zip(ins, before):
            np.testing.assert_array_equal(a, b)  # inputs untouched
        calls.append(([np.array(o, copy=True) for o in got], got))
    for k, (snapshot, got) in enumerate(calls):  # later calls did not write into these
        assert_match(got, snapshot, what=f"call {k} output after later calls")
    assert len({calls[0][1][0].ctypes.data, calls[1][1][0].ctypes.data}) == 2
