"""Wall-clock budgets that used to be test assertions (tests must not time themselves: CI shares
2 cores). Run on a quiet machine: `python benchmarks/time_budgets.py`; exits 1 if one is over.

    digits example, full run (examples/train_digits.py --quiet)   < 30 s
    verify() of a 20000-node chain                                 < 1 s
"""

from __future__ import annotations

import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "examples"))


def digits_seconds() -> float:
    """One full run of the digits example, as tests/examples/test_train_digits.py runs it."""
    import train_digits

    start = time.perf_counter()
    train_digits.main(["--quiet"])
    return time.perf_counter() - start


def verify_seconds(n: int = 20000) -> float:
    """verify() on a chain of n NEG nodes."""
    from compiler.ir.graph import Graph
    from compiler.ir.ops import Op
    from compiler.ir.types import DType, TensorType
    from compiler.ir.verify import verify

    g = Graph(name="chain")
    v = g.add_input(TensorType((2,), DType.float32), "x")
    for _ in range(n):
        v = g.add(Op.NEG, [v])
    g.set_outputs([v])
    start = time.perf_counter()
    verify(g)
    return time.perf_counter() - start


BUDGETS = {"digits example, full run": (digits_seconds, 30.0),
           "verify, 20000-node chain": (verify_seconds, 1.0)}


def main() -> int:
    """Measure each budget once; print seconds and whether it is within its limit."""
    over = 0
    for name, (measure, limit) in BUDGETS.items():
        seconds = measure()
        ok = seconds < limit
        over += not ok
        print(f"{name:30s} {seconds:8.3f} s  (budget {limit:g} s)  {'ok' if ok else 'OVER'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
