"""Consecutive store stages of a kernel share one loop over the inner dims when every element is
written before it is read (codegen/llvm_cpu.store_groups): hand-built kernels, their native
results against the numpy kernel evaluator (compiler/kernel_eval.py), merged and refused cases."""

from __future__ import annotations

import hybrid_runtime
import numpy as np

from compiler.codegen import jit
from compiler.codegen.llvm_cpu import generate, store_groups
from compiler.ir.ops import Op
from compiler.ir.types import DType
from compiler.kernel import Apply, Arg, Const, Kernel, Load, Stage, format_kernel, walk
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


def _store(expr, arg: int, strides=ROW) -> Stage:
    return Stage("store", expr, arg=arg, strides=strides)


def _kernel(stages: list[Stage]) -> tuple[Kernel, int]:
    """The kernel over (N,) x (M, M) with one argument per buffer its stages use."""
    writes = {s.arg for s in stages if s.arg is not None}
    used = writes | {e.arg for s in stages for e in walk(s.expr)
                                       if isinstance(e, Load)}
    n_args = max(used) + 1
    return Kernel("k_groups", [Arg(100 + i, F32, i in writes) for i in range(n_args)], (N,),
                  (M, M), stages), n_args


def _check(stages: list[Stage], groups: list[list[int]], donated: frozenset = frozenset()):
    """The stages' grouping, and the native kernel's results equal to the evaluator's."""
    k, n_args = _kernel(stages)
    assert store_groups(k, donated) == groups
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
    _check([_store(_add(Load(0, F32, ROW), Const(1.0, F32)), 1),
            _store(_mul(Load(1, F32, ROW), Load(0, F32, COL)), 2),
            _store(_mul(Load(2, F32, ROW), Const(2.0, F32)), 3)], [[0, 1, 2]])


def test_a_store_read_back_transposed_keeps_its_own_loop():
    # a2 reads a1 transposed: in one loop it would read elements not yet written
    _check([_store(_add(Load(0, F32, ROW), Const(1.0, F32)), 1),
            _store(_mul(Load(1, F32, COL), Const(3.0, F32)), 2)], [[0], [1]])


def test_overwriting_what_an_earlier_stage_reads_elsewhere_keeps_its_own_loop():
    # stage 0 reads a0 transposed; stage 1 writes a0: merged, stage 0 would see new values
    overwrite = _store(_mul(Load(1, F32, ROW), Const(2.0, F32)), 0)
    _check([_store(_add(Load(0, F32, COL), Const(1.0, F32)), 1), overwrite], [[0], [1]])
    # read at the positions written: merged, and still the sequential answer
    _check([_store(_add(Load(0, F32, ROW), Const(1.0, F32)), 1), overwrite], [[0, 1]])


def test_two_stores_to_one_buffer_merge_only_with_one_pattern():
    first = _store(_add(Load(0, F32, ROW), Const(1.0, F32)), 1)
    _check([first, _store(_mul(Load(1, F32, ROW), Const(5.0, F32)), 1)], [[0, 1]])
    _check([first, _store(_mul(Load(0, F32, ROW), Const(5.0, F32)), 1, COL)], [[0], [1]])


def test_a_donated_output_keeps_its_own_loop():
    st = [_store(_add(Load(0, F32, ROW), Const(1.0, F32)), 1),
          _store(_mul(Load(0, F32, ROW), Const(2.0, F32)), 2)]
    _check(st, [[0, 1]])
    _check(st, [[0], [1]], donated=frozenset({102}))  # a2 written into a0's array


def test_a_reduce_or_a_once_per_row_store_ends_a_group():
    row_store = Stage("store", Load(0, F32, (M * M, 0, 0)), arg=2, strides=(1, 0, 0))  # per row
    _check([_store(_add(Load(0, F32, ROW), Const(1.0, F32)), 1), row_store,
            Stage("reduce", Load(1, F32, ROW), op=Op.SUM),
            _store(Load(1, F32, ROW), 3), _store(_mul(Load(3, F32, ROW), Load(1, F32, ROW)), 4)],
           [[0], [1], [2], [3, 4]])
