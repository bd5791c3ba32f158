"""What the bounds checks of compiled code cost: each case compiled with the checks (the
default) and without them (the kernels' checks, the error flag and cross_entropy's target check
switched off, as before they existed), timed in interleaved rounds (common.interleave); medians.

- embedding forward: rows of a (50000, 128) float32 table at 8192 indices, summed per row
- embedding train step: forward, backward (a scatter-add into the table's gradient) and SGD
- gather along dim 1 of a (2048, 512) float32 matrix at (2048, 256) indices
- the MLP train step of bench_training.py (cross_entropy: one check per sample)

Run: python benchmarks/bench_bounds_checks.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import interleave, setup_threads


@contextmanager
def checks_off():
    """Compile without bounds checks: what the code generator did before they existed."""
    from llvmlite import ir

    import compiler.codegen.llvm_cpu as cg
    import hybrid.nn.functional as F
    import hybrid.ops.creation as cr
    from compiler import lower

    def clamp(self, idx, dtype, n, site):
        b = self.b
        if dtype.name != "int64":
            idx = b.sext(idx, cg.I64) if dtype.name == "int32" else b.zext(idx, cg.I64)
        zero, top = ir.Constant(cg.I64, 0), ir.Constant(cg.I64, max(n - 1, 0))
        idx = b.select(b.icmp_signed("<", idx, zero), zero, idx)
        return b.select(b.icmp_signed(">", idx, top), top, idx)

    saved = (cg.checked, lower.checked, cg._Fn.checked_index, cg._Fn.record, F._gather_table)
    cg.checked = lower.checked = lambda k: False
    cg._Fn.checked_index = clamp
    cg._Fn.record = lambda self, code, bad: None
    F._gather_table = lambda table, t, like: cr.full_like(t, 1.0, dtype=like.dtype)
    try:
        yield
    finally:
        cg.checked, lower.checked, cg._Fn.checked_index, cg._Fn.record, F._gather_table = saved


def cases():
    """name -> (make(): a compiled step and its arguments)."""
    import numpy as np

    import hybrid as h
    import hybrid.nn.functional as F

    rng = np.random.default_rng(0)
    table = h.tensor(rng.standard_normal((50000, 128)).astype(np.float32))
    idx = h.tensor(rng.integers(0, 50000, 8192))
    mat = h.tensor(rng.standard_normal((2048, 512)).astype(np.float32))
    gidx = h.tensor(rng.integers(0, 512, (2048, 256)))

    def emb_forward():
        return h.compile(lambda w, i: F.embedding(i, w).sum(-1)), (table, idx)

    def emb_step():
        w = h.tensor(table.numpy().copy(), requires_grad=True)
        opt = h.optim.SGD([w], lr=0.1)

        def step(i):
            loss = F.embedding(i, w).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        return h.compile(step), (idx,)

    def gather():
        return h.compile(lambda x, i: h.gather(x, 1, i) * 2), (mat, gidx)

    def mlp():
        from bench_training import hybrid_mlp_step

        step, x, y = hybrid_mlp_step(True)
        return step, (x, y)

    return {"embedding forward": emb_forward, "embedding train step": emb_step,
            "gather dim 1": gather, "MLP train step (cross_entropy)": mlp}


def run(repeats: int) -> list[tuple]:
    import compiler.backend_cpu as backend

    # NOTE: no disk cache: the two variants of a graph would share one entry
    backend.DiskCache.get = lambda self, key: None
    backend.DiskCache.put = lambda self, *a, **k: None
    rows = []
    for name, make in cases().items():
        on, on_args = make()
        on(*on_args)
        with checks_off():  # NOTE: the first calls trace (twice: the stability check)
            off, off_args = make()
            for _ in range(3):
                off(*off_args)
        for _ in range(3):
            on(*on_args)
        t = interleave({"on": lambda on=on, a=on_args: on(*a),
                        "off": lambda off=off, a=off_args: off(*a)}, repeats=repeats)
        rows.append((name, t["on"].median, t["off"].median, t["on"].min, t["off"].min,
                     on.last_entry.run.kernel_count, off.last_entry.run.kernel_count))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    setup_threads()
    print(f"{'case (median / min us)':<32} {'checked':>17} {'unchecked':>17} {'cost':>7} "
          f"{'kernels':>8}")
    for name, on, off, on_min, off_min, k_on, k_off in run(args.repeats):
        print(f"{name:<32} {on * 1e6:>8.1f} /{on_min * 1e6:>7.1f} {off * 1e6:>8.1f} /"
              f"{off_min * 1e6:>7.1f} {(on / off - 1):>+7.1%} {k_on:>4}/{k_off}")


if __name__ == "__main__":
    main()
