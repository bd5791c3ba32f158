"""verify() is linear in the graph size, checked by CPU-time ratios of one process (no
wall-clock limit: the absolute time of a 20000-node chain is a benchmark, benchmarks/time_budgets.py)."""

from __future__ import annotations

import time

from graphs import graph

from compiler.ir.ops import Op
from compiler.ir.verify import verify


def _chain(n: int):
    g, (x,) = graph(f"chain{n}", "f32[2]")
    v = x
    for _ in range(n):
        v = g.add(Op.NEG, [v])
    g.set_outputs([v])
    return g


def _cpu_seconds(g, repeats: int) -> float:
    """The least process CPU time of `repeats` verifications (other processes do not count)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        verify(g)
        best = min(best, time.process_time() - start)
    return best


def test_verify_cost_grows_linearly_with_the_chain():
    small, large = _chain(2000), _chain(20000)
    verify(small)  # warm up
    t_small = max(_cpu_seconds(small, 5), 1e-4)
    t_large = _cpu_seconds(large, 3)
    # linear: ~10x; a quadratic scan would be ~100x. NOTE: a ratio of CPU times, not a limit.
    assert t_large / t_small < 35, (t_small, t_large)
