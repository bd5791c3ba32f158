"""What a kernel may touch: for each argument, the range of bytes that any load, store, gather,
scatter or RNG-state read of the kernel can reach over its whole iteration space, found from
the kernel's own expressions (the addresses compiler/codegen/llvm_cpu.py generates).

Lowering's plan says which buffer each argument is; `KernelStep.touches` records these extents,
and plan validation checks every argument's buffer holds them, so a plan whose buffers do not
fit its kernels (a lowering bug, or a damaged cache entry) is refused before anything runs."""

from __future__ import annotations

import math
from typing import Any

from compiler.kernel import Gather, Kernel, Load, Padded, Rand, Stage, depends_on, walk

FLAG_BYTES = 8  # an error-flag argument (the extra last one) has its first int64 written


def _span(sizes: tuple[int, ...], strides: tuple[int, ...]) -> tuple[int, int]:
    """(lowest, highest) of sum(c[d] * strides[d]) over c[d] in [0, sizes[d])."""
    lo = hi = 0
    for size, stride in zip(sizes, strides, strict=True):
        reach = max(size - 1, 0) * stride
        lo, hi = lo + min(0, reach), hi + max(0, reach)
    return lo, hi


def _sizes(k: Kernel, st: Stage) -> tuple[int, ...] | None:
    """The loop sizes a stage's addresses range over (inner dims it does not loop over count
    as 1, as the code generator evaluates them at 0); None when it runs no iteration."""
    outer, inner = k.outer, k.inner
    dims = range(len(outer), len(outer) + len(inner))
    if st.kind == "reduce":
        loops = True
    elif st.kind == "row":
        loops = False
    else:
        loops = bool(inner) and (depends_on(st.expr, dims) or any(st.strides[d] for d in dims)
                                 or (st.index is not None and depends_on(st.index, dims)))
    sizes = outer + (inner if loops else (1,) * len(inner))
    return None if math.prod(sizes) == 0 else sizes


def arg_ranges(k: Kernel, n_args: int) -> list[tuple[int, int] | None]:
    """For each of `n_args` arguments, (first byte, one past the last byte) the kernel may
    touch, None where it touches nothing (arguments past the kernel's own are error flags)."""
    ranges: list[tuple[int, int] | None] = [None] * n_args

    def touch(arg: int, lo: int, hi: int, itemsize: int) -> None:
        new = (lo * itemsize, (hi + 1) * itemsize)
        old = ranges[arg]
        ranges[arg] = new if old is None else (min(old[0], new[0]), max(old[1], new[1]))

    def leaf(x: Any, space: tuple[int, ...]) -> None:
        if isinstance(x, Load):
            lo, hi = _span(space, x.strides)
            touch(x.arg, x.offset + lo, x.offset + hi, x.dtype.itemsize)
        elif isinstance(x, Gather):
            lo, hi = _span(space + (x.axis_size,), x.strides + (x.axis_stride,))
            touch(x.arg, x.offset + lo, x.offset + hi, x.dtype.itemsize)
        elif isinstance(x, Padded):
            lo, hi = _span(x.sizes, x.strides)
            touch(x.arg, x.offset + lo, x.offset + hi, x.dtype.itemsize)
        elif isinstance(x, Rand):
            touch(x.state, 0, 1, 8)  # seed and counter, two int64

    for st in k.stages:
        space = _sizes(k, st)
        if space is None:
            continue
        for e in [st.expr] + ([st.index] if st.index is not None else []):
            for x in walk(e):
                leaf(x, space)
        if st.kind in ("store", "scatter"):
            sizes, strides = space, st.strides
            if st.kind == "scatter":
                sizes, strides = space + (st.axis_size,), st.strides + (st.axis_stride,)
            lo, hi = _span(sizes, strides)
            touch(st.arg, st.offset + lo, st.offset + hi, k.args[st.arg].dtype.itemsize)
    for j in range(len(k.args), n_args):
        ranges[j] = (0, FLAG_BYTES)
    return ranges


def arg_extents(k: Kernel, n_args: int) -> tuple[int, ...]:
    """For each argument, one past the last byte the kernel may touch (0: nothing)."""
    return tuple(0 if r is None else r[1] for r in arg_ranges(k, n_args))
