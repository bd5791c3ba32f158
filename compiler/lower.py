"""Lowering: a fused Program becomes a Plan (buffers placed in one arena by the memory planner,
kernel / GEMM steps) plus the LLVM IR of its kernels."""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.ir.types import DType
from compiler.kernel import Gather, Kernel, Load, Padded, Stage, checked, walk
from compiler.passes.fuse import Gemm, Program, kernel_reads
from compiler.passes.memory_plan import BufferUse, InplaceCandidate, MemoryPlan, plan_memory
from compiler.plan import Buffer, CopyStep, GemmStep, KernelStep, Plan
from compiler.view import blas_layout



@dataclass
class Lowered:
    plan: Plan
    kernels: list[Kernel]
    memory: MemoryPlan
    donated: frozenset = frozenset()  # output values written into an input's array


def _reads_writes(step) -> tuple[set[int], set[int]]:
    if isinstance(step, Gemm):
        return step.reads(), {step.out}
    return kernel_reads(step), {a.value for a in step.args if a.writes}


def _inplace_candidates(step: Kernel, index: int, nbytes: dict[int, int]) -> list:
    """Elementwise kernels whose output can overwrite an input read at the same positions."""
    if step.serial or any(s.kind != "store" for s in step.stages) or len(step.stages) != 1:
        return []
    st: Stage = step.stages[0]
    out_buf = step.args[st.arg].value
    found = []
    loads = [x for x in walk(st.expr) if isinstance(x, (Load, Gather, Padded))]
    for x in loads:
        buf = step.args[x.arg].value
        same_pos = isinstance(x, Load) and x.strides == st.strides and x.offset == st.offset
        others = [y for y in loads if y is not x and step.args[y.arg].value == buf]
        if same_pos and not others and nbytes.get(buf) == nbytes.get(out_buf) and buf != out_buf:
            found.append(InplaceCandidate(out_buf, buf, index))
    return found


def _gemm_operand(view) -> tuple[bool, int]:
    """(transposed, leading dim) of a [batch, rows, cols] view for row-major BLAS."""
    layout = blas_layout(view.shape[1:], view.strides[1:])
    if layout is None:
        raise AssertionError(f"gemm operand view {view} is not BLAS-compatible")
    return layout


def _gemm_inplace(g: Gemm, index: int, nbytes: dict[int, int]) -> list[InplaceCandidate]:
    """An accumulating GEMM may write its output over C (BLAS reads C only where it writes),
    unless C is also an operand (BLAS operands must not alias the output)."""
    if g.c is None or g.c in (g.a, g.b) or nbytes.get(g.c) != nbytes.get(g.out):
        return []
    return [InplaceCandidate(g.out, g.c, index)]


def _gemm_step(g: Gemm, bid: dict[int, int], dtype) -> GemmStep:
    av, bv = g.a_view, g.b_view
    batch, m, k = av.shape
    n = bv.shape[2]
    ta, lda = _gemm_operand(av)
    tb, ldb = _gemm_operand(bv)
    sa, sb = av.strides[0], bv.strides[0]
    if batch > 1 and sb == 0 and not ta and sa == m * lda:  # shared B: one tall GEMM
        m, batch, sa = m * batch, 1, 0
    return GemmStep(dtype=dtype, trans_a=ta, trans_b=tb, m=m, n=n, k=k, a=bid[g.a], b=bid[g.b],
                    c=bid[g.out], a_offset=av.offset, b_offset=bv.offset, c_offset=0, lda=lda,
                    ldb=ldb, ldc=n, batch=batch, stride_a=sa if batch > 1 else 0,
                    stride_b=sb if batch > 1 else 0, stride_c=m * n if batch > 1 else 0,
                    alpha=g.alpha, beta=0.0 if g.c is None else 1.0)


def _donations(prog: Program, donate: dict[int, int]) -> dict[int, int]:
    """Output value -> input value whose array it may be written into (an in-place update):
    allowed when one kernel computes the output reading the input only at the positions it
    writes, and nothing reads the input afterwards."""
    g = prog.graph
    outs = [v.id for v in g.outputs]
    ins = [v.id for v in g.inputs]
    result: dict[int, int] = {}
    for out_pos, in_pos in donate.items():
        v_out, v_in = outs[out_pos], ins[in_pos]
        if v_in in outs or v_out in ins or outs.count(v_out) > 1 or v_in in result.values():
            continue
        writer = [i for i, s in enumerate(prog.steps) if v_out in _reads_writes(s)[1]]
        if len(writer) != 1:
            continue
        k = prog.steps[writer[0]]
        if any(v_in in _reads_writes(s)[0] for s in prog.steps[writer[0] + 1:]):
            continue
        if isinstance(k, Gemm):  # an accumulating GEMM reads C only where it writes
            if k.c == v_in and v_in not in (k.a, k.b):
                result[v_out] = v_in
            continue
        stores = [s for s in k.stages if s.kind == "store" and k.args[s.arg].value == v_out]
        if len(stores) != 1 or any(s.kind == "scatter" for s in k.stages):
            continue
        st = stores[0]
        # NOTE: the stages run in order for each outer index, so a stage after the store would
        # read the new value where the program meant the old one: such a kernel keeps its own
        # output array
        after = k.stages[k.stages.index(st) + 1:]
        if any(isinstance(x, (Load, Gather, Padded)) and k.args[x.arg].value == v_in
               for s in after for x in walk(s.expr)):
            continue
        reads = [x for s in k.stages for x in walk(s.expr)
                 if isinstance(x, (Load, Gather, Padded)) and k.args[x.arg].value == v_in]
        if all(isinstance(x, Load) and x.strides == st.strides and x.offset == st.offset
               for x in reads) and st.offset == 0:
            result[v_out] = v_in
    return result


def _fills_empty_rows(k: Kernel) -> bool:
    """A reduction over empty inner dims still writes its identity into a non-empty output."""
    return math.prod(k.outer) > 0 and any(s.kind == "reduce" for s in k.stages)


def buffer_uses(prog: Program) -> tuple[list[BufferUse], list[InplaceCandidate]]:
    """The arena buffers of `prog` (every realized value but inputs, outputs and constants) with
    their liveness over the steps, and the in-place candidates: what the memory planner gets."""
    types = prog.buffers
    nbytes = {v: t.numel * t.dtype.itemsize for v, t in types.items()}
    g = prog.graph
    special = {v.id for v in g.inputs} | {v.id for v in g.outputs} | set(prog.constants)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    candidates = []
    for i, step in enumerate(prog.steps):
        reads, writes = _reads_writes(step)
        for v in writes:
            first.setdefault(v, i)
            last[v] = max(last.get(v, i), i)
        for v in reads:
            last[v] = max(last.get(v, i), i)
        found = _inplace_candidates(step, i, nbytes) if isinstance(step, Kernel) else \
            _gemm_inplace(step, i, nbytes)
        candidates += [c for c in found if c.out not in special and c.inp not in special]
    arena = [BufferUse(v, nbytes[v], first[v], last[v], prog.space) for v in types
             if v not in special and v in first]
    return arena, candidates


def _placement(b: Buffer) -> tuple:
    """Where a buffer's bytes are: two buffers with equal placements share their memory."""
    return (b.kind, b.index, b.offset) if b.kind != "arena" else (b.kind, b.offset)


def lower(prog: Program, donate: dict[int, int] | None = None) -> Lowered:
    """Place buffers, order steps, and describe everything the runtime needs. `donate` maps
    graph output positions to input positions whose arrays the outputs may overwrite."""
    donated = _donations(prog, donate or {})
    g = prog.graph
    types = prog.buffers
    nbytes = {v: t.numel * t.dtype.itemsize for v, t in types.items()}
    inputs = [v.id for v in g.inputs]
    outputs = [v.id for v in g.outputs]
    arena, candidates = buffer_uses(prog)
    memory = plan_memory(arena, candidates)
    # the buffer table
    buffers: list[Buffer] = []
    bid: dict[int, int] = {}

    def add(v: int, kind: str, index: int, offset: int = 0) -> None:
        t = types[v] if v in types else None
        bid[v] = len(buffers)
        buffers.append(Buffer(kind, index, offset, nbytes.get(v, 0), t.dtype, tuple(t.shape),
                              space=prog.space))

    for i, v in enumerate(inputs):
        if v not in bid:
            add(v, "input", i)
    for v_out, v_in in donated.items():
        bid[v_out] = bid[v_in]
    for j, v in enumerate(outputs):
        if v not in bid:
            add(v, "output", j)
    constants = []
    for v, arr in prog.constants.items():
        add(v, "constant", len(constants))
        constants.append(arr)
    for u in arena:
        add(u.id, "arena", 0, memory.offsets[u.id])
    for v in types:  # realized but never computed: only empty tensors (their kernels are skipped)
        if v not in bid:
            assert nbytes[v] == 0, f"lower: buffer of value {v} is never written"
            add(v, "arena", 0, 0)
    # NOTE: kernels that check indices (or integer divisors) get one more argument, the error
    # flag: an extra int64[2] input the caller passes zeroed and reads after the run (see
    # CpuExecutable), so a bad index is a clear error, never a clamped read or a stray write.
    flag = -1
    if any(isinstance(s, Kernel) and checked(s) for s in prog.steps):
        flag = len(buffers)
        buffers.append(Buffer("input", len(inputs), 0, 16, DType.int64, (2,)))
    steps = []
    kernels = []
    for step in prog.steps:
        if isinstance(step, Gemm):
            if step.c is not None and _placement(buffers[bid[step.c]]) != \
                    _placement(buffers[bid[step.out]]):
                steps.append(CopyStep(bid[step.c], bid[step.out], 0, 0, nbytes[step.out]))
            steps.append(_gemm_step(step, bid, types[step.out].dtype))
            continue
        if math.prod(step.space) == 0 and not _fills_empty_rows(step):
            continue
        args = tuple(bid[a.value] for a in step.args) + ((flag,) if checked(step) else ())
        steps.append(KernelStep(step.name, step.n_outer, args, grain=max(1, step.grain),
                                parallel=not step.serial))
        kernels.append(step)
    plan = Plan(arena_bytes=memory.arenas.get(prog.space, 0), buffers=buffers, steps=steps,
                inputs=[bid[v] for v in inputs] + ([flag] if flag >= 0 else []),
                outputs=[bid[v] for v in outputs], constants=constants, error_flag=flag)
    return Lowered(plan, kernels, memory, frozenset(donated))
