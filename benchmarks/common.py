"""Timing helpers shared by the benchmark scripts.

- `bench(fn)`: warm up, then time `repeats` calls (each a batch of `inner` calls) and return a
  `Timing` with the median and min per call. Medians are what the tables report: this machine
  is shared and noisy.
- `interleave({name: fn})`: time several implementations in rounds, each a quiet pause and a
  block of samples per implementation, so that neither load spikes nor another runtime's
  spinning threads favour one of them.
- `peers()`: which of torch / jax are importable (imported lazily, skipped when missing).
- `Row` / `table()`: one markdown table with each figure's ratio to the best peer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib
import os
import statistics
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

THREADS = 2


@dataclasses.dataclass
class Timing:
    median: float  # seconds per call
    min: float
    samples: list[float]

    @property
    def ms(self) -> float:
        return self.median * 1e3


def _sample(fn: Callable[[], Any], inner: int, sync: Callable[[Any], Any] | None) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        r = fn()
    if sync is not None:
        sync(r)
    return (time.perf_counter() - t0) / inner


def auto_inner(fn: Callable[[], Any], target_s: float = 0.01,
               sync: Callable[[Any], Any] | None = None) -> int:
    """How many calls make one sample last about `target_s` (at least 1)."""
    t = _sample(fn, 1, sync)
    return max(1, int(target_s / max(t, 1e-7)))


def bench(fn: Callable[[], Any], repeats: int = 50, warmup: int = 3, inner: int | None = None,
          sync: Callable[[Any], Any] | None = None) -> Timing:
    """Median / min seconds per call of `fn` over `repeats` samples of `inner` calls."""
    return interleave({"_": fn}, repeats, warmup, inner, sync)["_"]


def interleave(fns: dict[str, Callable[[], Any]], repeats: int = 50, warmup: int = 3,
               inner: int | dict[str, int] | None = None,
               sync: Callable[[Any], Any] | None = None, rounds: int = 5,
               settle: float = 0.1) -> dict[str, Timing]:
    """Time each function in `rounds` rounds; in each round every function in turn gets a block
    of about repeats / rounds samples, after `settle` seconds of quiet and a warmup call.

    NOTE: blocks, not single samples, take turns: the runtimes here keep their worker threads
    spinning for a while after a call (OpenBLAS up to ~0.1 s, OpenMP, XLA, hybrid's pool
    0.2 ms), and on 2 cores a sample taken while another runtime's threads still spin measures
    that contention, not the function. Rounds still spread slow phases of a shared machine
    over every implementation. `sync(result)` runs after each batch of calls (jax:
    block_until_ready)."""
    for fn in fns.values():
        for _ in range(warmup):
            r = fn()
        if sync is not None:
            sync(r)
    inners = {}
    for name, fn in fns.items():
        if isinstance(inner, dict):
            inners[name] = inner[name]
        else:
            inners[name] = inner or auto_inner(fn, sync=sync)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, -(-repeats // rounds))
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                time.sleep(settle)
                _sample(fn, 1, sync)
                for _ in range(per_round):
                    samples[name].append(_sample(fn, inners[name], sync))
    finally:
        if gc_was:
            gc.enable()
    return {name: Timing(statistics.median(s), min(s), s) for name, s in samples.items()}


def jax_sync(r: Any) -> None:
    import jax

    jax.block_until_ready(r)


def peers() -> dict[str, Any]:
    """The peer frameworks importable here ({'torch': module, 'jax': module}); missing ones
    are left out. Sets each to THREADS threads where it can."""
    found: dict[str, Any] = {}
    for name in ("torch", "jax"):
        try:
            found[name] = importlib.import_module(name)
        except Exception:  # noqa: BLE001  (not installed or broken: skip it)
            continue
    if "torch" in found:
        found["torch"].set_num_threads(THREADS)
    return found


def setup_threads() -> None:
    """Two threads everywhere: hybrid's runtime (hybrid.set_num_threads), torch
    (torch.set_num_threads, in peers()) and BLAS (through the environment, which must happen
    before numpy is first imported to take effect). XLA sizes its pool from the core count (2)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(THREADS))
    import hybrid

    hybrid.set_num_threads(THREADS)


@contextlib.contextmanager
def blas_choice(name: str | None):
    """Compiled functions first called inside get this BLAS (HYBRID_BLAS; None: the default).
    The executor binds its BLAS when it is built, so functions built under different choices
    run side by side."""
    from compiler import blas

    old = os.environ.get("HYBRID_BLAS")
    if name is not None:
        os.environ["HYBRID_BLAS"] = name
    blas.blas_library.cache_clear()
    try:
        yield blas.blas_library()
    finally:
        if old is None:
            os.environ.pop("HYBRID_BLAS", None)
        else:
            os.environ["HYBRID_BLAS"] = old
        blas.blas_library.cache_clear()


def hybrid_variants() -> list[tuple[str, str | None]]:
    """(row label, HYBRID_BLAS) of each hybrid configuration to time: the default, plus OpenBLAS
    when the default is MKL (hybrid[mkl] installed), since a plain install has OpenBLAS."""
    with blas_choice(None) as chosen:
        if "OpenBLAS" in chosen.name:
            return [("hybrid.compile", None)]
    return [("hybrid.compile (MKL)", None), ("hybrid.compile (OpenBLAS)", "openblas")]


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


@dataclasses.dataclass
class Row:
    """One figure: `value` in `unit`; `peer` marks a peer (numpy / torch / jax) figure, and
    `higher_is_better` flips the ratio (GFLOP/s)."""

    group: str
    impl: str
    value: float
    unit: str
    peer: bool = True
    higher_is_better: bool = False
    note: str = ""
    ratio: float | None = None  # hybrid / best peer; < 1 means hybrid is better (also GFLOP/s)


def add_ratios(rows: list[Row]) -> list[Row]:
    """Ratio of every row to the best peer of its group, as 'cost / best peer's cost'
    (time or bytes: < 1 beats the peer; for GFLOP/s rows: best peer's GFLOP/s / this one's)."""
    groups: dict[str, list[Row]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    for rs in groups.values():
        peer_vals = [r.value for r in rs if r.peer and r.value == r.value]
        if not peer_vals:
            continue
        if rs[0].higher_is_better:
            best = max(peer_vals)
            for r in rs:
                r.ratio = best / r.value if r.value else float("inf")
        else:
            best = min(peer_vals)
            for r in rs:
                r.ratio = r.value / best if best else float("nan")
    return rows


def fmt(v: float) -> str:
    if v != v:
        return "n/a"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def table(rows: list[Row]) -> str:
    """A markdown table: benchmark, implementation, value, unit, ratio to the best peer."""
    add_ratios(rows)
    out = ["| benchmark | implementation | value | unit | vs best peer | note |",
           "|---|---|---:|---|---:|---|"]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        if r.ratio is not None and not r.peer:
            ratio = f"**{ratio}**"
        out.append(f"| {r.group} | {r.impl} | {fmt(r.value)} | {r.unit} | {ratio} | {r.note} |")
    return "\n".join(out)
