"""The kernel-IR checker: what every fused program must satisfy, scheduled or not.

Run by the kernel pass manager (compiler/passes/manager.py) before and after every kernel pass
under `HYBRID_VERIFY=1`, as the graph checker (compiler/ir/verify.py) runs between graph
passes. A failure names the step and what is wrong, and shows the step.

Checked: every argument is a buffer of the program with the argument's dtype; every load,
gather, padded load and RNG state names an argument in range, with that argument's dtype and
one stride per loop dim; a `Row` reads an earlier reduce or row stage; stores and scatters
write an argument marked as written; nothing is read before a step (or the caller) wrote it;
GEMM operands are float32/float64 buffers of one dtype whose views fit them; every graph
output is written. On a scheduled kernel (after loop order): lanes only on a parallel
reduction, and every byte an argument's addresses can reach lies inside its buffer
(compiler/kernel_extent.py, the same bound the plan's `touches` records).
"""

from __future__ import annotations

from typing import Any

from compiler.ir.verify import VerifyError
from compiler.kernel import Gather, Gemm, Iota, Kernel, Load, Padded, Rand, Row, walk
from compiler.kernel_extent import arg_ranges

_LEAVES_WITH_ARG = (Load, Gather, Padded)


class KernelVerifyError(VerifyError):
    """A fused program breaks a kernel-IR invariant; the message names the step."""


def verify_program(program: Any) -> None:
    """Raise KernelVerifyError unless `program` (a fusion `Program`) is well formed."""
    buffers = program.buffers
    graph = program.graph
    written = {v.id for v in graph.inputs} | set(program.constants)
    for i, step in enumerate(program.steps):
        kernel, space, scheduled = _unpack(step)
        where = f"step {i} ({_name(step)})"
        try:
            if isinstance(kernel, Gemm):
                _check_gemm(kernel, buffers, written)
                written.add(kernel.out)
            else:
                _check_kernel(kernel, space, scheduled, buffers, written)
                written |= {a.value for a in kernel.args if a.writes}
        except KernelVerifyError as err:
            raise KernelVerifyError(f"verify {graph.name}: {where}: {err}\n{step}") from None
    missing = [v.id for v in graph.outputs if v.id not in written]
    if missing:
        raise KernelVerifyError(f"verify {graph.name}: graph outputs {missing} are never written")


def _unpack(step: Any) -> tuple[Any, tuple[int, ...], bool]:
    """(kernel or gemm, its loop space, whether loop order has run on it)."""
    inner = getattr(step, "kernel", None)
    if inner is not None:  # a RowKernel: fused, not yet in loop order
        return inner, tuple(step.shape), False
    if isinstance(step, Kernel):
        return step, step.space, True
    return step, (), True


def _name(step: Any) -> str:
    return getattr(getattr(step, "kernel", step), "name", type(step).__name__)


def _fail(what: str) -> KernelVerifyError:
    return KernelVerifyError(what)


def _check_gemm(g: Gemm, buffers: dict, written: set[int]) -> None:
    operands = [("a", g.a), ("b", g.b), ("out", g.out)] + ([("c", g.c)] if g.c is not None else [])
    dtypes = set()
    for name, vid in operands:
        if vid not in buffers:
            raise _fail(f"gemm operand {name} (buf{vid}) is not a buffer of the program")
        dtypes.add(buffers[vid].dtype)
        if name != "out" and vid not in written:
            raise _fail(f"gemm reads {name} (buf{vid}) before anything writes it")
    if len(dtypes) != 1 or dtypes.pop().name not in ("float32", "float64"):
        raise _fail("gemm operands must share one dtype, float32 or float64")
    (ab, m, k), (bb, k2, n) = g.a_view.shape, g.b_view.shape
    if k != k2 or ab != bb:
        raise _fail(f"gemm views {list(g.a_view.shape)} @ {list(g.b_view.shape)} do not chain")
    if buffers[g.out].numel != ab * m * n:
        raise _fail(f"gemm writes {ab * m * n} elements into buf{g.out} of "
                    f"{buffers[g.out].numel}")


def _check_kernel(k: Kernel, space: tuple[int, ...], scheduled: bool, buffers: dict,
                  written: set[int]) -> None:
    for j, a in enumerate(k.args):
        if a.value not in buffers:
            raise _fail(f"arg {j} (buf{a.value}) is not a buffer of the program")
        if buffers[a.value].dtype is not a.dtype:
            raise _fail(f"arg {j} is {a.dtype} but buf{a.value} is {buffers[a.value].dtype}")
    mine: set[int] = set()  # buffers earlier stages of this kernel stored
    for si, st in enumerate(k.stages):
        reads: set[int] = set()
        for e in [st.expr] + ([st.index] if st.index is not None else []):
            for x in walk(e):
                reads |= _check_leaf(k, x, si, len(space))
        if st.kind in ("store", "scatter"):
            if st.arg is None or not 0 <= st.arg < len(k.args) or not k.args[st.arg].writes:
                raise _fail(f"stage {si} ({st.kind}) writes arg {st.arg}, not a written arg")
            if st.kind == "scatter" and st.op is not None:
                reads.add(k.args[st.arg].value)
        unwritten = sorted(reads - written - mine)
        if unwritten:
            raise _fail(f"stage {si} reads buf{unwritten[0]} before anything writes it")
        if st.kind in ("store", "scatter"):
            mine.add(k.args[st.arg].value)
    if not scheduled:
        return
    if k.lanes and (k.serial or not any(st.kind == "reduce" for st in k.stages)):
        raise _fail(f"lanes={k.lanes} on a kernel that is not a parallel reduction")
    for j, reach in enumerate(arg_ranges(k, len(k.args))):
        if reach is None:
            continue
        nbytes = buffers[k.args[j].value].numel * k.args[j].dtype.itemsize
        if reach[0] < 0 or reach[1] > nbytes:
            raise _fail(f"arg {j} (buf{k.args[j].value}, {nbytes} B) is reached at bytes "
                        f"[{reach[0]}, {reach[1]})")


def _check_leaf(k: Kernel, x: Any, stage: int, rank: int) -> set[int]:
    """The buffers leaf `x` reads, after checking it."""
    if isinstance(x, Row):
        if not 0 <= x.stage < stage or k.stages[x.stage].kind not in ("reduce", "row"):
            raise _fail(f"stage {stage} reads Row({x.stage}), not an earlier reduce/row stage")
        return set()
    if isinstance(x, Rand):
        if not 0 <= x.state < len(k.args):
            raise _fail(f"stage {stage}: RNG state arg {x.state} out of range")
        return {k.args[x.state].value}
    if isinstance(x, Iota):
        if len(x.strides) != rank:
            raise _fail(f"stage {stage}: iota has {len(x.strides)} strides for {rank} loop dims")
        return set()
    if not isinstance(x, _LEAVES_WITH_ARG):
        return set()
    if not 0 <= x.arg < len(k.args):
        raise _fail(f"stage {stage}: {type(x).__name__} of arg {x.arg}, out of range")
    if x.dtype is not k.args[x.arg].dtype:
        raise _fail(f"stage {stage}: {type(x).__name__} of arg {x.arg} as {x.dtype}, the arg "
                    f"is {k.args[x.arg].dtype}")
    if len(x.strides) != rank:
        raise _fail(f"stage {stage}: {type(x).__name__} of arg {x.arg} has {len(x.strides)} "
                    f"strides for {rank} loop dims")
    return {k.args[x.arg].value}
