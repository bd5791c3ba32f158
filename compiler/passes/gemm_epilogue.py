"""GEMM epilogues BLAS computes itself: a kernel computing `x + alpha * (a @ b)` at the positions
of a product nobody else reads becomes the GEMM, with BLAS's C = alpha * A @ B + C."""

from __future__ import annotations

import math
from typing import Any

from compiler.ir.ops import Op
from compiler.kernel import Apply, Const, Gemm, Kernel, Load, kernel_reads


def accumulating_gemms(steps: list, outputs: set[int], types: dict) -> list:
    """A kernel computing `x + alpha * (a @ b)` (also `x - g`, `x - g * c`, `c * g + x`, ...) at
    the positions of a product nobody else reads becomes the GEMM itself, with BLAS's
    C = alpha * A @ B + C: an SGD update `w - lr * grad` costs no pass of its own, and writes
    into w when the update is in place."""
    out = list(steps)
    for j, k in enumerate(steps):
        if not isinstance(k, Kernel) or k.serial or len(k.stages) != 1:
            continue
        st = k.stages[0]
        if st.kind != "store" or st.offset != 0:
            continue
        for i in range(j - 1, -1, -1):
            g = out[i]
            if not isinstance(g, Gemm) or g.c is not None:
                continue
            match = _accumulate_form(st.expr, k, g.out)
            if match is None:
                continue
            x, alpha = match
            dst = k.args[st.arg]
            numel = types[g.out].numel
            same = {types[b].numel for b in (x, g.out, dst.value)} == {numel} and \
                math.prod(k.space) == numel  # the kernel writes all of its output
            others = [s for n, s in enumerate(out) if n not in (i, j) and s is not None]
            read = g.out in outputs or any(
                g.out in (s.reads() if isinstance(s, Gemm) else kernel_reads(s)) for s in others)
            if not same or read or dst.dtype is not types[g.out].dtype:
                continue
            out[i] = None
            out[j] = Gemm(k.name, g.a, g.b, dst.value, g.a_view, g.b_view,
                          g.nodes + [v for v in k.nodes if v not in g.nodes], c=x, alpha=alpha)
            break
    return [s for s in out if s is not None]


def _accumulate_form(e: Any, k: Kernel, product: int) -> tuple[int, float] | None:
    """(x's buffer, alpha) when `e` is x + alpha * product read at the store's positions."""
    st = k.stages[0]

    def load_of(v: Any) -> int | None:
        ok = isinstance(v, Load) and v.strides == st.strides and v.offset == st.offset
        return k.args[v.arg].value if ok else None

    def scaled(v: Any) -> float | None:  # alpha when v is product, product * c or c * product
        if load_of(v) == product:
            return 1.0
        if isinstance(v, Apply) and v.op is Op.MUL:
            a, b = v.args
            for p, c in ((a, b), (b, a)):
                # NOTE: not 0 (BLAS skips A @ B then, where 0 * inf would be NaN) nor inf/NaN
                if load_of(p) == product and isinstance(c, Const) and c.dtype.is_floating and \
                        math.isfinite(c.value) and c.value != 0:
                    return float(c.value)
        return None

    if not isinstance(e, Apply) or e.op not in (Op.ADD, Op.SUB):
        return None
    a, b = e.args
    pairs = [(a, b, 1.0)] + ([(b, a, 1.0)] if e.op is Op.ADD else [])
    for x, p, sign in pairs:
        alpha = scaled(p)
        x_buf = load_of(x)
        if alpha is not None and x_buf is not None and x_buf != product:
            return x_buf, alpha * (-1.0 if e.op is Op.SUB else sign)
    return None
