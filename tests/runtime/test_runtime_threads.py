"""Thread pool: configuration, chunking through run_kernel, exceptions, nesting, fork."""

import ctypes
import os
import subprocess
import sys
import threading
import time

import hybrid_runtime as rt
import numpy as np
import pytest

KERNEL = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_int64, ctypes.POINTER(ctypes.c_void_p))


def address_of(callback) -> int:
    return ctypes.cast(callback, ctypes.c_void_p).value


def recording_kernel(sleep_s: float = 0.0):
    """A ctypes kernel that records (start, end, native thread id) for each chunk."""
    seen = []
    lock = threading.Lock()

    @KERNEL
    def kernel(start, end, args):
        if sleep_s:
            time.sleep(sleep_s)
        with lock:
            seen.append((start, end, threading.get_native_id()))

    return kernel, seen


def assert_exact_cover(chunks, n):
    """The chunks are disjoint, contiguous and cover exactly [0, n)."""
    ordered = sorted((start, end) for start, end, _ in chunks)
    position = 0
    for start, end in ordered:
        assert start == position and end > start
        position = end
    assert position == n


# ---- configuration -----------------------------------------------------------------------


def test_set_and_get_num_threads(threads):
    for n in (1, 2, 3, 1):
        threads(n)
        assert rt.get_num_threads() == n


@pytest.mark.parametrize("bad", [0, -1, -100])
def test_set_num_threads_rejects_values_below_one(threads, bad):
    before = rt.get_num_threads()
    with pytest.raises(ValueError, match=f"got {bad}"):
        threads(bad)
    assert rt.get_num_threads() == before


def _run_python(code: str, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_default_comes_from_hybrid_num_threads_env():
    result = _run_python("import hybrid_runtime as r; print(r.get_num_threads())",
                         HYBRID_NUM_THREADS="3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_invalid_hybrid_num_threads_env_is_a_clear_error():
    code = "import hybrid_runtime as r\ntry:\n  r.get_num_threads()\nexcept ValueError as e:\n  print(e)"
    result = _run_python(code, HYBRID_NUM_THREADS="many")
    assert result.returncode == 0, result.stderr
    assert "HYBRID_NUM_THREADS" in result.stdout and "'many'" in result.stdout


def test_default_without_env_is_the_core_count():
    env = {k: v for k, v in os.environ.items() if k != "HYBRID_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", "import hybrid_runtime as r; print(r.get_num_threads())"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == max(1, os.cpu_count() or 1)


# ---- run_kernel: the compiled-kernel calling convention ------------------------------------


@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("n, grain", [(1, 0), (2, 0), (7, 1), (1000, 0), (1000, 300), (1 << 20, 0)])
def test_run_kernel_chunks_cover_the_range_exactly(threads, num_threads, n, grain):
    threads(num_threads)
    kernel, seen = recording_kernel()
    rt.run_kernel(address_of(kernel), n, [], grain)
    assert_exact_cover(seen, n)
    assert len(seen) <= num_threads
    if grain:
        assert all(end - start >= grain for start, end, _ in seen[:-1] if end != n)


def test_run_kernel_uses_several_chunks_and_threads_for_large_n(threads):
    """Each of the two chunks waits at a barrier for the other: that only returns when two
    threads run them at the same time (no timing: on a loaded machine the worker may start late,
    the barrier just waits; the timeout is a hang guard, not a speed limit)."""
    threads(2)
    barrier = threading.Barrier(2, timeout=120)
    seen = []
    lock = threading.Lock()

    @KERNEL
    def kernel(start, end, args):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass  # recorded below; the assertion on thread ids fails
        with lock:
            seen.append((start, end, threading.get_native_id()))

    rt.run_kernel(address_of(kernel), 1 << 20, [])
    assert_exact_cover(seen, 1 << 20)
    assert len(seen) == 2
    assert not barrier.broken, "the two chunks did not run concurrently"
    assert len({tid for _, _, tid in seen}) == 2  # the GIL was released for the worker


def test_run_kernel_with_zero_iterations_calls_nothing(threads):
    threads(2)
    kernel, seen = recording_kernel()
    rt.run_kernel(address_of(kernel), 0, [])
    assert seen == []


def test_run_kernel_passes_the_buffer_table(threads):
    threads(2)
    n = 1000
    src = np.arange(n, dtype=np.float64)
    dst = np.zeros(n, dtype=np.float64)

    @KERNEL
    def scale(start, end, args):
        a = np.ctypeslib.as_array(ctypes.cast(args[0], ctypes.POINTER(ctypes.c_double)), (n,))
        b = np.ctypeslib.as_array(ctypes.cast(args[1], ctypes.POINTER(ctypes.c_double)), (n,))
        b[start:end] = 2.0 * a[start:end]

    rt.run_kernel(address_of(scale), n, [src.ctypes.data, dst.ctypes.data], 1)
    np.testing.assert_array_equal(dst, 2.0 * src)


def test_run_kernel_rejects_bad_arguments():
    kernel, _ = recording_kernel()
    with pytest.raises(ValueError, match="null"):
        rt.run_kernel(0, 10, [])
    with pytest.raises(ValueError, match="n must be >= 0"):
        rt.run_kernel(address_of(kernel), -1, [])


def test_nested_parallel_calls_run_serially_without_deadlock(threads):
    threads(2)
    inner, inner_seen = recording_kernel()

    @KERNEL
    def outer(start, end, args):
        rt.run_kernel(address_of(inner), 100, [], 1)

    rt.run_kernel(address_of(outer), 4, [], 1)
    # Two outer chunks, each running its inner loop as one serial chunk.
    assert sorted((s, e) for s, e, _ in inner_seen) == [(0, 100), (0, 100)]


# ---- exceptions ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("k", [0, 499, 500, 999])
def test_exception_in_a_chunk_reaches_the_caller(threads, num_threads, k):
    threads(num_threads)
    with pytest.raises(RuntimeError, match=f"failed at index {k}$"):
        rt._parallel_for_raise_at(1000, k)


def test_pool_still_works_after_an_exception(threads):
    threads(2)
    for _ in range(20):
        with pytest.raises(RuntimeError):
            rt._parallel_for_raise_at(1000, 999)
    kernel, seen = recording_kernel()
    rt.run_kernel(address_of(kernel), 1000, [])
    assert_exact_cover(seen, 1000)


def test_index_outside_the_range_does_not_raise(threads):
    threads(2)
    rt._parallel_for_raise_at(1000, 1000)


# ---- concurrency and fork ------------------------------------------------------------------


def test_concurrent_callers_share_the_pool(threads):
    threads(2)
    a = np.random.default_rng(0).random(1 << 18, dtype=np.float32)
    outs = [np.empty_like(a) for _ in range(4)]

    def work(out):
        for _ in range(20):
            rt.parallel_add_f32(a, a, out)

    workers = [threading.Thread(target=work, args=(out,)) for out in outs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for out in outs:
        np.testing.assert_array_equal(out, a + a)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pool_works_in_a_forked_child(threads):
    threads(2)
    a = np.ones(1 << 18, dtype=np.float32)
    out = np.empty_like(a)
    rt.parallel_add_f32(a, a, out)  # the parent's workers now exist
    pid = os.fork()
    if pid == 0:  # child: its pool must be rebuilt, not deadlock on the parent's workers
        try:
            child_out = np.empty_like(a)
            rt.parallel_add_f32(a, a, child_out)
            os._exit(0 if (child_out == 2.0).all() else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child hung in parallel_add_f32")
