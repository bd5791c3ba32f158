"""Consecutive store stages of a kernel share one loop over the inner dims when every element is
written before it is read (codegen/llvm_cpu.store_groups): hand-built kernels, their native
results against the numpy kernel evaluator (compiler/kernel_eval.py), merged and refused cases."""

from __future__ import annotations

import numpy as np

import hybrid_runtime
from compiler.codegen import jit
from compiler.codegen.llvm_cpu import generate, store_groups
from compiler.ir.ops import Op
from compiler.ir.types import DType
from compiler.kernel import Apply, Arg, Const, Kernel, Load, Stage, format_kernel
from compiler.kernel_eval import run_kernel

F32 = DType.float32
# the space: N outer rows, each an M x M inner block. Stages run in order within a row (the
# kernel's semantics, compiler/kernel.py), so the orders that matter are within a row's block:
# row-major, and transposed (COL)
N, M = 4, 6
ROW, COL = (M * M, M, 1), (M * M, 1, M)
SIZE = N * M * M


def _add(a, b):
    return Apply(Op.ADD, (a, b), F32)


def _mul(a, b):
    return Apply(Op.MUL, (a, b), F32)


def _kernel(stages: list[Stage], n_args: int, writes: set[int]) -> Kernel:
    args = [Arg(100 + i, F32, i in writes) for i in range(n_args)]
    return Kernel("k_groups", args, (N,), (M, M), stages)


def _run_both(k: Kernel, n_args: int, donated: frozenset = frozenset()):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(SIZE).astype(np.float32) for _ in range(n_args)]
    want = [b.copy() for b in start]
    run_kernel(k, want)
    got = [b.copy() for b in start]
    engine, addresses = jit.compile_module(generate([k], "groups_test", donated=donated))
    hybrid_runtime.run_kernel(addresses[k.name], N, [b.ctypes.data for b in got])
    del engine
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6, err_msg=format_kernel(k))


def test_a_store_read_back_where_it_was_written_shares_the_loop():
    # a1 = a0 + 1; a2 = a1 * a0 (a1 read at the position just written), then a3 = a2 * 2
    st = [Stage("store", _add(Load(0, F32, ROW), Const(1.0, F32)), arg=1, strides=ROW),
          Stage("store", _mul(Load(1, F32, ROW), Load(0, F32, COL)), arg=2, strides=ROW),
          Stage("store", _mul(Load(2, F32, ROW), Const(2.0, F32)), arg=3, strides=ROW)]
    k = _kernel(st, 4, {1, 2, 3})
    assert store_groups(k) == [[0, 1, 2]]
    _run_both(k, 4)


def test_a_store_read_back_transposed_keeps_its_own_loop():
    # a2 reads a1 transposed: in one loop it would read elements not yet written
    st = [Stage("store", _add(Load(0, F32, ROW), Const(1.0, F32)), arg=1, strides=ROW),
          Stage("store", _mul(Load(1, F32, COL), Const(3.0, F32)), arg=2, strides=ROW)]
    k = _kernel(st, 3, {1, 2})
    assert store_groups(k) == [[0], [1]]
    _run_both(k, 3)


def test_overwriting_what_an_earlier_stage_reads_elsewhere_keeps_its_own_loop():
    # stage 0 reads a0 transposed; stage 1 writes a0: merged, stage 0 would see new values
    st = [Stage("store", _add(Load(0, F32, COL), Const(1.0, F32)), arg=1, strides=ROW),
          Stage("store", _mul(Load(1, F32, ROW), Const(2.0, F32)), arg=0, strides=ROW)]
    k = _kernel(st, 2, {0, 1})
    assert store_groups(k) == [[0], [1]]
    _run_both(k, 2)
    # read at the positions written: merged, and still the sequential answer
    st[0] = Stage("store", _add(Load(0, F32, ROW), Const(1.0, F32)), arg=1, strides=ROW)
    k = _kernel(st, 2, {0, 1})
    assert store_groups(k) == [[0, 1]]
    _run_both(k, 2)


def test_two_stores_to_one_buffer_merge_only_with_one_pattern():
    same = [Stage("store", _add(Load(0, F32, ROW), Const(1.0, F32)), arg=1, strides=ROW),
            Stage("store", _mul(Load(1, F32, ROW), Const(5.0, F32)), arg=1, strides=ROW)]
    k = _kernel(same, 2, {1})
    assert store_groups(k) == [[0, 1]]
    _run_both(k, 2)
    crossed = [same[0], Stage("store", _mul(Load(0, F32, ROW), Const(5.0, F32)), arg=1,
                              strides=COL)]
    k = _kernel(crossed, 2, {1})
    assert store_groups(k) == [[0], [1]]
    _run_both(k, 2)


def test_a_donated_output_keeps_its_own_loop():
    st = [Stage("store", _add(Load(0, F32, ROW), Const(1.0, F32)), arg=1, strides=ROW),
          Stage("store", _mul(Load(0, F32, ROW), Const(2.0, F32)), arg=2, strides=ROW)]
    k = _kernel(st, 3, {1, 2})
    assert store_groups(k) == [[0, 1]]
    assert store_groups(k, frozenset({102})) == [[0], [1]]
    _run_both(k, 3, donated=frozenset({102}))


def test_a_reduce_or_a_once_per_row_store_ends_a_group():
    row_store = Stage("store", Load(0, F32, (M * M, 0, 0)), arg=2, strides=(1, 0, 0))  # per row
    st = [Stage("store", _add(Load(0, F32, ROW), Const(1.0, F32)), arg=1, strides=ROW),
          row_store,
          Stage("reduce", Load(1, F32, ROW), op=Op.SUM),
          Stage("store", Load(1, F32, ROW), arg=3, strides=ROW),
          Stage("store", _mul(Load(3, F32, ROW), Load(1, F32, ROW)), arg=4, strides=ROW)]
    k = _kernel(st, 5, {1, 2, 3, 4})
    assert store_groups(k) == [[0], [1], [2], [3, 4]]
    _run_both(k, 5)
