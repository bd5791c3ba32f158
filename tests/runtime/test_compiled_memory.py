"""Native memory of compiled entries (MCJIT engine, executor, arena, constants) is freed by
CompiledFunction.clear_cache() and by garbage collection of the function (RSS and
hybrid.memory_stats() from /proc/self/statm)."""

import gc
import os

import numpy as np
import pytest

import hybrid

MiB = 1 << 20



def _under_asan() -> bool:
    """AddressSanitizer's runtime is loaded (.ci/sanitize preloads it)."""
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


pytestmark = [
    pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc"),
    # AddressSanitizer keeps freed memory in quarantine and its shadow grows with every
    # allocation, so RSS says nothing about leaks under .ci/sanitize
    pytest.mark.skipif(os.path.exists("/proc/self/maps") and _under_asan(),
                       reason="RSS is meaningless under AddressSanitizer (quarantine, shadow)"),
]


def rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _fresh_function(scale: float):
    @hybrid.compile
    def f(a, w):
        return ((a @ w).relu() * scale + 1.0).exp()  # a GEMM, an arena and a kernel

    return f


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    return (hybrid.tensor(rng.standard_normal((32, 32)).astype(np.float32)),
            hybrid.tensor(rng.standard_normal((32, 32)).astype(np.float32)))


@pytest.mark.parametrize("release", ["clear_cache", "gc"])
def test_entries_free_their_native_memory(inputs, tmp_path, monkeypatch, release):
    """Each iteration builds a new compiled entry (engine from the disk cache, executor, arena)
    and drops it; nothing of it may stay behind."""
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    a, w = inputs
    expected = _fresh_function(0.5)(a, w).numpy()  # compiled once, into the disk cache
    base_executors = hybrid.memory_stats()["executors"]
    base = None
    for i in range(250):
        if i == 50:  # after allocator warm-up
            gc.collect()
            base = rss()
        f = _fresh_function(0.5)
        np.testing.assert_allclose(f(a, w).numpy(), expected, rtol=1e-6)
        if release == "clear_cache":
            f.clear_cache()
            assert hybrid.memory_stats()["executors"] == base_executors
        del f
        if release == "gc":
            gc.collect()
    gc.collect()
    grown = rss() - base
    assert hybrid.memory_stats()["executors"] == base_executors
    assert grown < 4 * MiB, f"RSS grew {grown / MiB:.1f} MiB over 200 compiled entries"


# NOTE: llvmlite leaks ~50-90 KiB per optimized module (codegen/jit.py); past the first
# compiles of a process, codegen/compile_worker.py optimizes in a helper process that is
# replaced every RESTART_AFTER compiles, so this process does not grow with fresh compiles.
def test_fresh_compiles_do_not_grow_native_memory(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    a, w = inputs
    base = None
    for i in range(120):
        if i == 20:
            gc.collect()
            base = rss()
        f = _fresh_function(1.0 + i)  # a new constant: a new graph, compiled by LLVM
        f(a, w)
        f.clear_cache()
        del f
    gc.collect()
    grown = rss() - base
    assert grown < 4 * MiB, f"RSS grew {grown / MiB:.1f} MiB over 100 fresh compiles"
