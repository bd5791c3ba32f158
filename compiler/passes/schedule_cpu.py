"""The CPU schedule: kernel passes that turn a fused, unscheduled program into one the CPU code
generator and runtime run (compiler/passes/fuse.py makes the program; the kernel pass manager,
compiler/passes/manager.py `run_kernel_passes`, times, dumps and checks each pass).

In order:
  * `loop order`  kept dims outer, reduced dims inner, size-1 dims dropped, contiguous dims
                  collapsed, transposing elementwise kernels tiled (passes/loop_order.py);
  * `lanes`       a reduction whose loads run along the outer dims (a column sum) runs LANES
                  outer indices at a time, lanes innermost, so that the lane loop vectorizes;
  * `gemm epilogue`  `x + alpha * (a @ b)` folded into the GEMM's C (passes/gemm_epilogue.py);
  * `threads`     how the runtime splits each kernel's outer range over its thread pool: at
                  least GRAIN_ELEMENTS elements per chunk; serial kernels (scatters) run whole.

Another target (a GPU) brings its own list; fusion and the kernel IR stay as they are.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from compiler.kernel import Gather, Kernel, Load, Padded, Stage, walk
from compiler.passes.gemm_epilogue import accumulating_gemms
from compiler.passes.loop_order import finish
from compiler.passes.manager import Pass
from compiler.passes.row_fusion import RowKernel

# Outer indices per block of a lane-blocked reduction (4 AVX-512 vectors of float32).
LANES = 64
# Elements (outer x inner) per chunk of a kernel's outer range on the thread pool.
GRAIN_ELEMENTS = 1 << 14


def _loop_order(program: Any) -> Any:
    return program.with_steps([finish(s) if isinstance(s, RowKernel) else s
                               for s in program.steps])


def _lanes(program: Any) -> Any:
    return program.with_steps([_with_lanes(s) if isinstance(s, Kernel) else s
                               for s in program.steps])


def _with_lanes(k: Kernel) -> Kernel:
    reduction = any(st.kind == "reduce" for st in k.stages)
    use = (reduction and not k.serial and k.outer and k.inner and k.outer[-1] >= LANES // 4
           and _outer_contiguous(k.stages, len(k.outer)))
    return dataclasses.replace(k, lanes=LANES if use else 0)


def _outer_contiguous(stages: list[Stage], n_outer: int) -> bool:
    """Whether the reduced loads step through memory along the last outer dim, not the last
    reduced one (sum over the rows of a row-major matrix): then lanes over the outer dim, not
    the reduction loop, are what vectorizes."""
    along_outer = along_inner = 0
    for s in stages:
        if s.kind != "reduce":
            continue
        for e in walk(s.expr):
            if isinstance(e, (Load, Gather, Padded)):
                along_inner += e.strides[-1] == 1
                along_outer += e.strides[n_outer - 1] == 1 and e.strides[-1] != 1
    return along_outer > 0 and along_inner == 0


def _gemm_epilogue(program: Any) -> Any:
    outputs = {v.id for v in program.graph.outputs}
    return program.with_steps(accumulating_gemms(program.steps, outputs, program.types))


def _threads(program: Any) -> Any:
    return program.with_steps([_with_grain(s) if isinstance(s, Kernel) else s
                               for s in program.steps])


def _with_grain(k: Kernel) -> Kernel:
    inner = max(1, math.prod(k.inner))
    return dataclasses.replace(k, grain=max(1, -(-GRAIN_ELEMENTS // inner)))


CPU_SCHEDULE = [Pass("loop order", _loop_order), Pass("lanes", _lanes),
                Pass("gemm epilogue", _gemm_epilogue), Pass("threads", _threads)]
