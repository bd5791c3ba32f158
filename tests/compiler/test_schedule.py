"""Fusion apart from scheduling: `fusion` gives unscheduled kernels, the CPU schedule is a list of
named kernel passes run by the kernel pass manager (timed, logged under HYBRID_LOG=kernels,
checked by the kernel-IR checker under HYBRID_VERIFY), and another schedule or memory space can
be put in its place."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from graphs import full, graph, mlp
from native import assert_match, check_native, reference

from compiler.ir.ops import Op
from compiler.kernel import Kernel, Load, Row
from compiler.kernel_eval import run_program
from compiler.kernel_verify import KernelVerifyError, verify_program
from compiler.lower import lower
from compiler.passes.fuse import fuse, fusion
from compiler.passes.manager import Pass, run_kernel_passes
from compiler.passes.row_fusion import RowKernel
from compiler.passes.schedule_cpu import CPU_SCHEDULE, GRAIN_ELEMENTS, LANES
from compiler.plan import PlanError


def softmax_graph():
    g, (x,) = graph("softmax", "f32[32,100]")
    m = g.add(Op.MAX, [x], axes=(1,))
    e = g.add(Op.EXP, [g.add(Op.SUB, [x, g.add(Op.EXPAND, [m], shape=(32, 100))])])
    s = g.add(Op.SUM, [e], axes=(1,))
    g.set_outputs([g.add(Op.DIV, [e, g.add(Op.EXPAND, [s], shape=(32, 100))])])
    return g


def column_sum_graph():
    g, (x,) = graph("colsum", "f32[50,256]")
    g.set_outputs([g.add(Op.SUM, [x], axes=(0,))])
    return g


def test_fusion_is_unscheduled_and_the_schedule_makes_kernels():
    g = softmax_graph()
    unscheduled = fusion(g)
    assert [name for name, _ in unscheduled.timings] == ["fuse", "row fusion"]
    assert all(isinstance(s, RowKernel) for s in unscheduled.steps)
    verify_program(unscheduled)  # the checker takes both forms
    scheduled = run_kernel_passes(unscheduled, CPU_SCHEDULE, verify=True)
    assert [name for name, _ in scheduled.timings] == [
        "fuse", "row fusion", "loop order", "lanes", "gemm epilogue", "threads"]
    assert all(isinstance(s, Kernel) for s in scheduled.steps)
    assert scheduled.kernel_count == 1  # softmax: one kernel
    (k,) = scheduled.steps
    assert (k.outer, k.inner) == ((32,), (100,))
    assert k.grain == -(-GRAIN_ELEMENTS // 100) and not k.lanes
    assert str(fuse(g)) == str(scheduled)  # fuse = fusion + the CPU schedule


def test_lanes_pass_blocks_a_column_sum_and_lower_takes_the_grain():
    prog = fuse(column_sum_graph())
    (k,) = prog.steps
    assert k.lanes == LANES and k.outer == (256,) and k.inner == (50,)
    (step,) = lower(prog).plan.steps
    assert step.grain == k.grain == -(-GRAIN_ELEMENTS // 50)


def test_another_schedule_runs_in_its_place():
    """A target with its own schedule: no lanes, whole outer ranges per chunk (serial-like
    grain): the same fusion, other kernels, the same numbers."""
    def whole(program):
        return program.with_steps([dataclasses.replace(s, grain=max(1, s.n_outer))
                                   if isinstance(s, Kernel) else s for s in program.steps])

    g = column_sum_graph()
    own = [CPU_SCHEDULE[0], CPU_SCHEDULE[2], Pass("whole ranges", whole)]
    prog = run_kernel_passes(fusion(g), own, verify=True)
    (k,) = prog.steps
    assert k.lanes == 0 and k.grain == 256
    x = np.random.default_rng(0).standard_normal((50, 256)).astype(np.float32)
    assert_match(run_program(prog, [x]), reference(g, [x]), rtol=1e-5, atol=1e-5)


def _spoil_first_load(program, arg):
    def spoil(k):
        seen = []

        def leaf(e):
            if isinstance(e, Load) and not seen:
                seen.append(e)
                return dataclasses.replace(e, arg=arg)
            return e

        stages = [st.map_exprs(leaf) for st in k.stages]
        return dataclasses.replace(k, stages=stages)

    return program.with_steps([spoil(s) if isinstance(s, Kernel) else s for s in program.steps])


def test_a_broken_kernel_pass_is_named_under_verify():
    broken = Pass("spoil", lambda p: _spoil_first_load(p, 7))
    with pytest.raises(KernelVerifyError, match=r"after kernel pass spoil: .*step 0 \(k\d+\): "
                                                r"stage 0: Load of arg 7, out of range"):
        run_kernel_passes(fusion(softmax_graph()), CPU_SCHEDULE + [broken], verify=True)
    run_kernel_passes(fusion(softmax_graph()), CPU_SCHEDULE + [broken], verify=False)


@pytest.mark.parametrize("spoil, message", [
    (lambda k: dataclasses.replace(k, lanes=LANES), r"lanes=64 on a kernel that is not a parallel"),
    (lambda k: dataclasses.replace(k, args=[dataclasses.replace(a, writes=False)
                                            for a in k.args]),
     r"stage 0 \(store\) writes arg \d, not a written arg"),
    (lambda k: dataclasses.replace(k, stages=[st.map_exprs(
        lambda e: dataclasses.replace(e, strides=tuple(4 * s for s in e.strides))
        if isinstance(e, Load) else e) for st in k.stages]),
     r"arg 0 \(buf\d+, 400 B\) is reached at bytes \[0, 1588\)"),
    (lambda k: dataclasses.replace(k, stages=[st.map_exprs(
        lambda e: Row(5, e.dtype) if isinstance(e, Load) else e) for st in k.stages]),
     r"stage 0 reads Row\(5\), not an earlier reduce/row stage"),
])
def test_the_checker_finds_what_a_pass_could_break(spoil, message):
    g, (x,) = graph("ew", "f32[100]")
    g.set_outputs([g.add(Op.EXP, [x])])
    prog = fuse(g)
    bad = prog.with_steps([spoil(prog.steps[0])])
    with pytest.raises(KernelVerifyError, match=message):
        verify_program(bad)


def test_the_checker_accepts_every_stage_of_the_mlp():
    prog = fusion(mlp())
    verify_program(prog)
    for p in CPU_SCHEDULE:
        prog = p(prog)
        verify_program(prog)


def test_hybrid_log_kernels_logs_each_pass(monkeypatch, caplog):
    monkeypatch.setenv("HYBRID_LOG", "kernels")
    with caplog.at_level(logging.INFO, logger="hybrid.kernels"):
        run_kernel_passes(fusion(softmax_graph()), CPU_SCHEDULE)
    texts = [r.getMessage() for r in caplog.records if r.name == "hybrid.kernels"]
    assert [t.splitlines()[0].split(" (")[0] for t in texts] == [
        "# after loop order", "# after lanes", "# after gemm epilogue", "# after threads"]
    assert "kernel k" in texts[-1] or "k0" in texts[-1]
    monkeypatch.setenv("HYBRID_LOG", "")
    caplog.clear()
    run_kernel_passes(fusion(softmax_graph()), CPU_SCHEDULE)
    assert not [r for r in caplog.records if r.name == "hybrid.kernels"]


def test_buffers_carry_their_memory_space_into_the_plan():
    prog = fuse(mlp())
    plan = lower(prog).plan
    assert {b.space for b in plan.buffers} == {"host"}
    assert plan.to_dict()["buffers"][0]["space"] == "host"
    other = dataclasses.replace(prog, space="device")
    with pytest.raises(PlanError, match=r"memory space 'device' is not one this runtime has"):
        lower(other).plan.validate()


@pytest.mark.parametrize("spoil, message", [
    (lambda g: dataclasses.replace(g, out=99), r"gemm operand out \(buf99\) is not a buffer"),
    (lambda g: dataclasses.replace(g, a=g.out), r"gemm reads a \(buf\d+\) before anything"),
    (lambda g: dataclasses.replace(g, b_view=dataclasses.replace(g.b_view, shape=(1, 5, 3))),
     r"gemm views \[1, 8, 4\] @ \[1, 5, 3\] do not chain"),
    (lambda g: dataclasses.replace(g, a_view=dataclasses.replace(g.a_view, shape=(1, 4, 4)),
                                   b_view=dataclasses.replace(g.b_view, shape=(1, 4, 3))),
     r"gemm writes 12 elements into buf\d+ of 24"),
])
def test_the_checker_finds_a_broken_gemm(spoil, message):
    prog = fuse(mlp())
    gemm, rest = prog.steps[0], prog.steps[1:]
    with pytest.raises(KernelVerifyError, match=message):
        verify_program(prog.with_steps([spoil(gemm)] + rest))


def test_the_checker_requires_every_graph_output_written():
    prog = fuse(mlp())
    with pytest.raises(KernelVerifyError, match=r"graph outputs \[\d+\] are never written"):
        verify_program(prog.with_steps(prog.steps[:1]))


@pytest.mark.parametrize("dtype", ["float64", "int32"])
def test_the_checker_wants_one_float_dtype_per_gemm(dtype):
    from compiler.ir.types import DType, TensorType

    prog = fuse(mlp())
    gemm = prog.steps[0]
    t = prog.buffers[gemm.out]
    other = {**prog.buffers, gemm.out: TensorType(t.shape, getattr(DType, dtype))}
    if dtype == "int32":
        other = {v: TensorType(u.shape, DType.int32) for v, u in other.items()}
    with pytest.raises(KernelVerifyError, match=r"gemm operands must share one dtype, float32"):
        verify_program(dataclasses.replace(prog, buffers=other))


@pytest.mark.parametrize("shape,perm,tile", [
    ((4, 32, 48), (0, 2, 1), 16),  # NHWC -> NCHW-like
    ((24, 40), (1, 0), 8),  # a matrix transpose
    ((2, 6, 12, 20), (0, 3, 1, 2), 4),  # channels-last to channels-first (rows of 6*12)
    ((3, 17, 19), (0, 2, 1), None),  # no tile divides both: untiled
])
def test_a_transposing_kernel_is_tiled_and_gives_the_same_values(shape, perm, tile):
    g, (x,) = graph("transpose", f"f32[{','.join(map(str, shape))}]")
    out_shape = tuple(shape[p] for p in perm)
    half = g.add(Op.RESHAPE, [full(g, 0.5, "f32[1]")], shape=(1,) * len(shape))
    y = g.add(Op.COPY, [g.add(Op.PERMUTE, [x], perm=perm)])
    g.set_outputs([g.add(Op.ADD, [y, g.add(Op.EXPAND, [half], shape=out_shape)])])
    prog = fuse(g)
    (k,) = [s for s in prog.steps if isinstance(s, Kernel)]
    if tile is None:
        assert len(k.inner) == 2, (k.outer, k.inner)
    else:  # (other dims..., rows / T, cols / T, T, T)
        space = k.outer + k.inner
        assert len(space) >= 4 and space[-2:] == (tile, tile), (k.outer, k.inner)
    x0 = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    assert_match(run_program(prog, [x0]), reference(g, [x0]))
    check_native(g, [x0])
