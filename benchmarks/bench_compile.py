"""Compile-time and memory benchmarks of the MLP 784-512-512-10 train step (batch 128, SGD,
cross_entropy).

First call, each in a NEW process (a subprocess per measurement, median over several):
- hybrid, cold: HYBRID_CACHE_DIR points at a fresh empty temp dir, so nothing is cached; the
  time is the first `step(x, y)` call (trace + passes + fusion + lowering + LLVM + load), not
  the imports. The per-stage split (`fn.graphs`) is reported next to it.
- hybrid, warm disk cache: the same subprocess run twice with the same cache dir; the second
  run's first call (trace + passes + cache load + executor setup).
- torch.compile first call (TORCHINDUCTOR_CACHE_DIR at a fresh temp dir: no FX-graph / kernel
  cache hits), jax.jit first call (jax's persistent cache is off by default).
Workers run with byte-code caching on (a private PYTHONPYCACHEPREFIX, primed by one
untimed run), as an installed package would. Also hybrid's first compile in an already-warm
process (a second model compiled after a first one): what a notebook user sees for the 2nd..nth
function.

Peak memory of one train step (after warmup), compiled vs eager hybrid:
- eager: tracemalloc's peak during one step minus the traced memory before it. numpy reports
  its data buffers to tracemalloc, so this counts every intermediate array (activations,
  gradients, temporaries) a step allocates.
- compiled: the same tracemalloc delta (small outputs are numpy arrays, which tracemalloc
  sees) plus the executor's arena (`run.plan.arena_bytes`: a C++ allocation made once at
  compile time and held for the function's lifetime, which tracemalloc cannot see) plus the
  fresh outputs of 128 KiB or more (blocks of the runtime's output pool, also unseen). The
  memory planner's own figures (`run.memory.peak_bytes`, `naive_bytes`) are shown
  in the notes. Parameters and inputs exist in both and are not counted.

Run: python benchmarks/bench_compile.py [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import Row, setup_threads, table  # noqa: E402


# --- workers (run in a subprocess: `python bench_compile.py --worker KIND`) -----------------------


def _worker_hybrid() -> dict:
    setup_threads()
    t0 = time.perf_counter()
    import bench_training as bt

    run, x, y = bt.hybrid_mlp_step(compiled=True)
    t1 = time.perf_counter()
    run(x, y)
    first = time.perf_counter() - t1
    stages: dict[str, float] = {}
    for s in run.graphs:
        stages[s.name] = stages.get(s.name, 0.0) + s.seconds
    entry = run.last_entry.run
    from_cache = bool(getattr(entry, "from_cache", False))
    exe_s = getattr(entry, "compile_seconds", float("nan"))
    return {"first": first, "stages": stages, "from_cache": from_cache, "backend_s": exe_s,
            "setup_s": t1 - t0}


def _worker_hybrid_inprocess() -> dict:
    """First compile of a second, identical-shaped model in a process that already compiled
    one (imports, llvmlite init and the like paid), with a cold disk cache."""
    import bench_training as bt

    setup_threads()
    firsts = []
    for i in range(4):
        os.environ["HYBRID_CACHE_DIR"] = tempfile.mkdtemp(prefix="hybrid-bench-")
        from hybrid.config import config

        config.cache_dir = os.environ["HYBRID_CACHE_DIR"]
        step, x, y = bt.hybrid_mlp_step(compiled=True)
        t0 = time.perf_counter()
        step(x, y)
        firsts.append(time.perf_counter() - t0)
        assert not step.last_entry.run.from_cache
        shutil.rmtree(os.environ["HYBRID_CACHE_DIR"], ignore_errors=True)
    return {"first": statistics.median(firsts[1:]), "first_process": firsts[0]}


def _worker_torch() -> dict:
    import torch

    import bench_training as bt

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    step, x, y = bt.torch_mlp_step(torch, compiled=True)
    fn = lambda: step(x, y)  # noqa: E731
    t1 = time.perf_counter()
    fn()
    first = time.perf_counter() - t1
    t2 = time.perf_counter()
    fn()
    second = time.perf_counter() - t2  # the optimizer step may compile on the 2nd call
    return {"first": first, "second": second, "setup_s": t1 - t0}


def _worker_jax() -> dict:
    import jax

    import bench_training as bt

    t0 = time.perf_counter()
    step, params, x, y = bt.jax_mlp_step()
    jax.block_until_ready(x)
    t1 = time.perf_counter()
    jax.block_until_ready(step(params, x, y))
    first = time.perf_counter() - t1
    return {"first": first, "setup_s": t1 - t0}


def _worker_memory() -> dict:
    """Peak memory of one compiled and one eager train step (see the module docstring)."""
    import gc
    import tracemalloc

    setup_threads()
    import bench_training as bt

    out = {}
    for compiled in (False, True):
        run, fn = bt.hybrid_mlp(compiled)
        run()
        gc.collect()
        tracemalloc.start()
        run()  # allocations of the previous step's outputs/grads released before measuring
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        key = "compiled" if compiled else "eager"
        out[key] = peak
        if compiled:
            exe = fn.last_entry.run
            out["arena"] = exe.plan.arena_bytes
            # fresh outputs of 128 KiB and more come from the runtime's pool, which tracemalloc
            # does not see either (in-place updates write the parameters' own arrays)
            out["pooled"] = sum(b.nbytes for b in exe.plan.buffers
                                if b.kind == "output" and b.nbytes >= 128 << 10)
            out["plan_peak"] = exe.memory.peak_bytes
            out["plan_naive"] = exe.memory.naive_bytes
            out["kernels"] = exe.kernel_count
    return out


WORKERS = {"hybrid": _worker_hybrid, "hybrid-inprocess": _worker_hybrid_inprocess,
           "torch": _worker_torch, "jax": _worker_jax, "memory": _worker_memory}


_PYC_DIR: list[str] = []  # created by the first _spawn, removed at the end of run()


def _spawn(kind: str, env: dict | None = None) -> dict:
    # Byte-code caching on, into a private prefix: an installed package has its .pyc files, so
    # the first call should not pay for compiling hybrid's sources (some environments set
    # PYTHONDONTWRITEBYTECODE=1, which would add ~100 ms of source compilation to every run).
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    if not _PYC_DIR:
        _PYC_DIR.append(tempfile.mkdtemp(prefix="bench-pycache-"))
    e["PYTHONPYCACHEPREFIX"] = _PYC_DIR[0]
    e.update(env or {})
    r = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", kind],
                       capture_output=True, text=True, env=e, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _have(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


# --- driver ---------------------------------------------------------------------------------------


def run(repeats: int = 5) -> list[Row]:
    rows: list[Row] = []
    g = "MLP step first call"
    colds, warms, stages = [], [], []
    d = tempfile.mkdtemp(prefix="hybrid-bench-")
    _spawn("hybrid", {"HYBRID_CACHE_DIR": d})  # fills the byte-code cache only
    shutil.rmtree(d, ignore_errors=True)
    for _ in range(repeats):
        d = tempfile.mkdtemp(prefix="hybrid-bench-")
        try:
            cold = _spawn("hybrid", {"HYBRID_CACHE_DIR": d})
            warm = _spawn("hybrid", {"HYBRID_CACHE_DIR": d})
        finally:
            shutil.rmtree(d, ignore_errors=True)
        assert not cold["from_cache"] and warm["from_cache"], (cold, warm)
        colds.append(cold["first"])
        warms.append(warm["first"])
        stages.append(cold["stages"] | {"backend": cold["backend_s"]})
    med_stage = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    split = ", ".join(f"{k} {v * 1e3:.0f}" for k, v in med_stage.items() if v >= 0.002)
    rows.append(Row(g, "hybrid (new process, cold cache)", statistics.median(colds) * 1e3, "ms",
                    peer=False, note=f"stages ms: {split}"))
    inproc = _spawn("hybrid-inprocess")
    rows.append(Row(g, "hybrid (warm process, cold cache)", inproc["first"] * 1e3, "ms",
                    peer=False, note="2nd+ model compiled in one process"))
    if _have("torch"):
        ts = []
        for _ in range(max(2, repeats // 2)):
            d = tempfile.mkdtemp(prefix="inductor-bench-")
            try:
                ts.append(_spawn("torch", {"TORCHINDUCTOR_CACHE_DIR": d}))
            finally:
                shutil.rmtree(d, ignore_errors=True)
        rows.append(Row(g, "torch.compile (new process, cold cache)",
                        statistics.median(t["first"] for t in ts) * 1e3, "ms",
                        note=f"2nd call {statistics.median(t['second'] for t in ts) * 1e3:.0f} ms"))
    if _have("jax"):
        js = [_spawn("jax") for _ in range(repeats)]
        rows.append(Row(g, "jax.jit (new process)", statistics.median(j["first"] for j in js) * 1e3,
                        "ms"))
    g2 = "MLP step first call, warm disk cache"
    rows.append(Row(g2, "hybrid (new process, warm cache)", statistics.median(warms) * 1e3, "ms",
                    peer=False, note="2nd subprocess with the same HYBRID_CACHE_DIR"))
    mem = _spawn("memory")
    shutil.rmtree(_PYC_DIR.pop(), ignore_errors=True)
    g3 = "MLP step peak memory"
    rows.append(Row(g3, "hybrid eager (tracemalloc)", mem["eager"] / 2**20, "MiB"))
    rows.append(Row(g3, "hybrid.compile (tracemalloc + arena + pooled outputs)",
                    (mem["compiled"] + mem["arena"] + mem["pooled"]) / 2**20, "MiB", peer=False,
                    note=(f"outputs {(mem['compiled'] + mem['pooled']) / 2**20:.2f} + arena "
                          f"{mem['arena'] / 2**20:.2f} MiB; planner peak "
                          f"{mem['plan_peak'] / 2**20:.2f}, naive "
                          f"{mem['plan_naive'] / 2**20:.2f} MiB; {mem['kernels']} kernels")))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--worker", choices=sorted(WORKERS))
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(WORKERS[a.worker]()))
    else:
        print(table(run(a.repeats)))
