"""The output pool gives memory back: hybrid.empty_cache(), the idle-time trim, the limits and
hybrid.memory_stats() (RSS read from /proc/self/statm)."""

import os
import time

import numpy as np
import pytest

import hybrid
from hybrid import memory

MiB = 1 << 20
# NOTE: three results of 64 MiB (the case is 256 MB each; smaller keeps the test light
# on a shared machine while staying far above RSS noise).
N = 16 * MiB  # float32 elements: 64 MiB per result

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")


def rss() -> int:
    """Resident set size of this process in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@hybrid.compile
def _double(x):
    return x * 2.0


@pytest.fixture
def limits():
    """Sets the pool's limits for one test; restores the defaults and empties the pool after."""
    yield memory.set_pool_limits
    memory.set_pool_limits()
    hybrid.empty_cache()


def _three_results():
    xs = [hybrid.full((N,), float(i + 1)) for i in range(3)]
    return xs, [_double(x) for x in xs]


def test_empty_cache_returns_dropped_results_to_the_system(limits):
    limits(idle_seconds=600.0)  # no trim by age during the test: empty_cache alone frees
    hybrid.empty_cache()
    xs, ys = _three_results()
    for i in range(3):
        assert float(ys[i][N - 1]) == 2.0 * (i + 1)
    stats = hybrid.memory_stats()
    assert stats["pool_in_use_bytes"] >= 3 * 4 * N
    assert stats["pool_in_use_blocks"] >= 3
    del ys
    held = rss()
    stats = hybrid.memory_stats()
    assert stats["pool_idle_bytes"] >= 3 * 4 * N, stats  # kept for reuse until asked
    freed = hybrid.empty_cache()
    assert freed >= 3 * 4 * N
    dropped = held - rss()
    assert dropped >= 0.8 * 3 * 4 * N, f"RSS fell by {dropped / MiB:.0f} MiB only"
    assert hybrid.memory_stats()["pool_idle_bytes"] == 0
    del xs


def test_idle_blocks_are_given_back_after_idle_seconds_without_further_calls(limits):
    limits(idle_seconds=0.2)
    hybrid.empty_cache()
    xs, ys = _three_results()
    del ys
    held = rss()
    trimmed = hybrid.memory_stats()["pool_trimmed_bytes"]
    # no compiled call from here: the pool's trimmer thread frees the blocks (within 2x 0.2 s)
    # (the counters change before the trimmer unmaps, outside its lock: wait for both)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (
        hybrid.memory_stats()["pool_idle_bytes"] > 0 or held - rss() < 0.8 * 3 * 4 * N
    ):
        time.sleep(0.05)
    stats = hybrid.memory_stats()
    assert stats["pool_idle_bytes"] == 0, stats
    assert stats["pool_trimmed_bytes"] - trimmed >= 3 * 4 * N
    assert held - rss() >= 0.8 * 3 * 4 * N, f"RSS fell by {(held - rss()) / MiB:.0f} MiB only"
    del xs


def test_a_loop_reuses_its_output_block(limits):
    limits(idle_seconds=600.0)
    hybrid.empty_cache()
    x = hybrid.full((MiB,), 3.0)  # 4 MiB outputs
    _double(x)
    before = hybrid.memory_stats()
    for _ in range(20):
        y = _double(x)
        del y
    after = hybrid.memory_stats()
    assert after["pool_reuses"] - before["pool_reuses"] >= 19
    assert after["pool_allocations"] - before["pool_allocations"] <= 1
    assert after["pool_idle_bytes"] <= 4 * 4 * MiB


def test_max_idle_bytes_zero_keeps_nothing(limits):
    limits(idle_seconds=600.0, max_idle_bytes=0)
    x = hybrid.full((MiB,), 1.0)
    y = _double(x)
    assert hybrid.memory_stats()["pool_in_use_bytes"] >= 4 * MiB
    del y
    assert hybrid.memory_stats()["pool_idle_bytes"] == 0


def test_limit_on_idle_bytes_evicts_the_oldest_blocks(limits):
    limits(idle_seconds=600.0, max_idle_bytes=10 * MiB)
    hybrid.empty_cache()
    xs = [hybrid.full((MiB + i * 1024,), 1.0) for i in range(4)]  # four sizes of ~4 MiB
    ys = [_double(x) for x in xs]
    del ys
    stats = hybrid.memory_stats()
    assert 0 < stats["pool_idle_bytes"] <= 10 * MiB, stats
    assert stats["pool_idle_blocks"] == 2


def test_peak_and_reset():
    hybrid.reset_peak_memory_stats()
    x = hybrid.full((MiB,), 1.0)
    y = _double(x)
    peak = hybrid.memory_stats()["pool_peak_in_use_bytes"]
    assert peak >= 4 * MiB
    del y
    hybrid.reset_peak_memory_stats()
    assert hybrid.memory_stats()["pool_peak_in_use_bytes"] < peak


def test_memory_stats_counts_live_executors_and_their_arenas():
    @hybrid.compile
    def f(a):
        return ((a @ a).relu() @ a).sum()  # the products' results live in the arena

    before = hybrid.memory_stats()
    f(hybrid.tensor(np.ones((64, 64), np.float32)))
    during = hybrid.memory_stats()
    assert during["executors"] >= before["executors"] + 1
    assert during["executor_bytes"] >= before["executor_bytes"] + 64 * 64 * 4
    f.clear_cache()
    del f
    import gc

    gc.collect()
    after = hybrid.memory_stats()
    assert after["executors"] == before["executors"]
    assert after["executor_bytes"] == before["executor_bytes"]


@pytest.mark.parametrize("kwargs", [{"idle_seconds": 0}, {"idle_seconds": -1.0},
                                    {"max_idle_bytes": -1}, {"max_idle_bytes": 1.5},
                                    {"idle_seconds": "1"}])
def test_bad_pool_limits_are_clear_errors(kwargs, limits):
    with pytest.raises(hybrid.HybridError, match="set_pool_limits"):
        limits(**kwargs)
