"""What the output pool's trimming costs: a compiled elementwise function whose result is a
fresh large array (x * 2 + 1 over N float32), called in a loop that drops each result.

- pooled: back to back, every result's block comes from the pool (the default limits);
- no pool: `hybrid.memory.set_pool_limits(max_idle_bytes=0)`, every result is fresh memory, as after a
  trim (an idle block older than idle_seconds, 2 s by default, or empty_cache()) — the cost a
  call pays once after the pool was trimmed;
- peers: numpy `x * 2 + 1` (a fresh array each time, glibc's allocator), torch eager.

Medians of interleaved rounds (common.interleave); RSS after each variant.

Run: python benchmarks/bench_output_pool.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Row, interleave, peers, setup_threads, table  # noqa: E402

SIZES = (1 << 18, 1 << 22, 1 << 24)  # 1 MiB, 16 MiB, 64 MiB of float32


def run(repeats: int) -> list[Row]:
    import numpy as np

    import hybrid

    torch = peers().get("torch")
    rows = []
    for n in SIZES:
        a = np.random.default_rng(0).standard_normal(n).astype(np.float32)
        x = hybrid.tensor(a)
        f = hybrid.compile(lambda x: x * 2 + 1)
        f(x)

        def pooled():
            f(x)

        def fresh():
            hybrid.memory.set_pool_limits(max_idle_bytes=0)
            try:
                f(x)
            finally:
                hybrid.memory.set_pool_limits()

        fns = {"hybrid compiled, pooled": pooled, "hybrid compiled, no pool (after a trim)": fresh,
               "numpy": lambda: a * 2 + 1}
        if torch is not None:
            t = torch.from_numpy(a)
            fns["torch eager"] = lambda: t * 2 + 1
        group = f"x * 2 + 1, {n * 4 >> 20} MiB" if n * 4 >= 1 << 20 else f"{n}"
        for k, v in interleave(fns, repeats).items():
            rows.append(Row(group, k, v.ms, "ms", peer=not k.startswith("hybrid")))
        hybrid.empty_cache()
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    setup_threads()
    print(table(run(args.repeats)))
