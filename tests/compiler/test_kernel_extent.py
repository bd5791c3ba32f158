"""What a kernel may touch (compiler/kernel_extent.py): the byte extents recorded in a plan's
kernel steps are those of the elements the kernel's loads and stores can reach, computed by hand
here for slices, broadcasts, gathers, scatters and empty reductions; plan validation refuses an
argument whose buffer is smaller than its kernel's reach."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from native import assert_match, reference

from compiler.backend_cpu import CpuExecutable
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.types import DType, TensorType
from compiler.plan import KernelStep, PlanError

F32, I64 = DType.float32, DType.int64


def compiled(g: Graph, inputs: list[np.ndarray]) -> CpuExecutable:
    ex = CpuExecutable(g, use_cache=False)
    assert_match(ex(inputs), reference(g, inputs), 1e-6, 1e-6)
    return ex


def reach(ex: CpuExecutable, value_shape_dtype: tuple) -> list[int]:
    """The `touches` entries of every kernel argument whose buffer is an input with this
    (shape, dtype)."""
    found = []
    for step in ex.plan.steps:
        if isinstance(step, KernelStep):
            for b, t in zip(step.args, step.touches, strict=True):
                buf = ex.plan.buffers[b]
                if buf.kind == "input" and (buf.shape, buf.dtype) == value_shape_dtype:
                    found.append(t)
    return found


def test_elementwise_kernels_reach_their_whole_buffers():
    g = Graph(name="ew")
    x = g.add_input(TensorType((6, 7), F32), "x")
    b = g.add_input(TensorType((7,), F32), "b")
    g.set_outputs([g.add(Op.EXP, [g.add(Op.ADD, [x, b])])])
    rng = np.random.default_rng(0)
    ex = compiled(g, [rng.standard_normal((6, 7), np.float32),
                      rng.standard_normal(7).astype(np.float32)])
    (step,) = [s for s in ex.plan.steps if isinstance(s, KernelStep)]
    assert step.touches == tuple(ex.plan.buffers[a].nbytes for a in step.args)
    assert reach(ex, ((7,), F32)) == [28]  # the broadcast bias: 7 floats, not 42


def test_a_slice_reaches_only_up_to_its_last_element():
    g = Graph(name="sl")
    x = g.add_input(TensorType((6, 7), F32), "x")
    s = g.add(Op.SLICE, [x], starts=(1, 0), stops=(3, 4), steps=(1, 1))
    g.set_outputs([g.add(Op.NEG, [s])])
    ex = compiled(g, [np.arange(42, dtype=np.float32).reshape(6, 7)])
    # rows 1..2, columns 0..3: the last element is x[2, 3], flat index 17
    assert reach(ex, ((6, 7), F32)) == [(17 + 1) * 4]


def test_a_gather_reaches_its_whole_table_and_a_scatter_its_whole_output():
    g = Graph(name="gs")
    x = g.add_input(TensorType((5, 6), F32), "x")
    i = g.add_input(TensorType((3,), I64), "i")
    src = g.add_input(TensorType((3, 6), F32), "s")
    gathered = g.add(Op.GATHER, [x, i], axis=0)
    g.set_outputs([g.add(Op.NEG, [gathered]), g.add(Op.SCATTER_ADD, [x, i, src], axis=0)])
    rng = np.random.default_rng(1)
    ex = compiled(g, [rng.standard_normal((5, 6), np.float32), np.array([4, 0, 4]),
                      rng.standard_normal((3, 6), np.float32)])
    assert max(reach(ex, ((5, 6), F32))) == 5 * 6 * 4
    assert reach(ex, ((3,), I64)) and set(reach(ex, ((3,), I64))) == {3 * 8}
    for step in ex.plan.steps:
        if isinstance(step, KernelStep):
            for b, t in zip(step.args, step.touches, strict=True):
                if ex.plan.buffers[b].kind == "output":
                    assert t == ex.plan.buffers[b].nbytes


def test_a_reduction_over_an_empty_dim_reads_nothing():
    g = Graph(name="empty")
    x = g.add_input(TensorType((4, 0), F32), "x")
    g.set_outputs([g.add(Op.SUM, [x], axes=(1,))])
    ex = compiled(g, [np.zeros((4, 0), np.float32)])
    assert reach(ex, ((4, 0), F32)) in ([], [0])


def test_validation_refuses_an_argument_smaller_than_the_kernel_reach():
    g = Graph(name="ew2")
    x = g.add_input(TensorType((6, 7), F32), "x")
    g.set_outputs([g.add(Op.EXP, [x])])
    ex = compiled(g, [np.ones((6, 7), np.float32)])
    plan = ex.plan
    (k,) = [i for i, s in enumerate(plan.steps) if isinstance(s, KernelStep)]
    step = plan.steps[k]
    bigger = dataclasses.replace(step, touches=tuple(t + 4 for t in step.touches))
    with pytest.raises(PlanError, match=r"argument 0 .* is reached up to byte 172"):
        dataclasses.replace(plan, steps=plan.steps[:k] + [bigger] + plan.steps[k + 1:]).validate()
    wrong = dataclasses.replace(step, touches=step.touches[:-1])
    with pytest.raises(PlanError, match="one int >= 0 per argument"):
        dataclasses.replace(plan, steps=plan.steps[:k] + [wrong] + plan.steps[k + 1:]).validate()
