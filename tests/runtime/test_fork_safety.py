"""fork() while other threads run compiled functions: the child must be able to call any compiled
function (native locks and the thread pool are reinitialized by the runtime's atfork handlers)."""

import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import hybrid

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")

CHILD_TIMEOUT_S = float(os.environ.get("HYBRID_TEST_FORK_TIMEOUT", "60"))


@hybrid.compile
def _scale(x):
    return (x * 2.0 + 1.0).exp()


@hybrid.compile
def _layer(x, w):
    return (x @ w).relu() * 0.5


def _inputs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((512, 512)).astype(np.float32) * 0.1
    w = rng.standard_normal((512, 512)).astype(np.float32) * 0.1
    return x, w


def _expected(x, w):
    scale = np.exp(x.astype(np.float64) * 2.0 + 1.0)
    layer = np.maximum(x.astype(np.float64) @ w.astype(np.float64), 0.0) * 0.5
    return scale, layer


def _check_in_child(x, w, scale_ref, layer_ref) -> int:
    """Runs both compiled functions (several times) in a forked child; its exit status."""
    try:
        hx, hw = hybrid.tensor(x), hybrid.tensor(w)
        for _ in range(3):
            got_scale = _scale(hx).numpy()
            got_layer = _layer(hx, hw).numpy()
            if not np.allclose(got_scale, scale_ref, rtol=1e-5, atol=1e-5):
                return 3
            if not np.allclose(got_layer, layer_ref, rtol=1e-4, atol=1e-4):
                return 4
        return 0
    except BaseException:  # noqa: BLE001  (any failure is reported through the exit status)
        import traceback

        traceback.print_exc()
        return 2


def _wait(pid: int, timeout: float) -> int | None:
    """The child's exit status, or None (after killing it) when it runs past `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


class _Looper:
    """A thread that calls compiled functions back to back until stopped."""

    def __init__(self, x, w):
        self.calls = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._x, self._w = hybrid.tensor(x), hybrid.tensor(w)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        try:
            while not self._stop.is_set():
                _scale(self._x)
                _layer(self._x, self._w)
                self.calls += 1
        except BaseException as err:  # noqa: BLE001
            self.error = err

    def __enter__(self):
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.calls < 3 and time.monotonic() < deadline and self.error is None:
            time.sleep(0.005)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
        assert self.error is None, self.error


def test_forked_child_calls_compiled_functions_while_parent_thread_runs_them(threads):
    threads(4)  # a real pool in the parent: workers, locks and condition variables in use
    x, w = _inputs()
    scale_ref, layer_ref = _expected(x, w)
    hx, hw = hybrid.tensor(x), hybrid.tensor(w)
    _scale(hx), _layer(hx, hw)  # compiled (and their pools started) before the looper runs
    statuses = []
    with _Looper(x, w) as looper:
        for _ in range(5):
            calls_before = looper.calls
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                os._exit(_check_in_child(x, w, scale_ref, layer_ref))
            statuses.append(_wait(pid, CHILD_TIMEOUT_S))
            # the looper kept running compiled calls around each fork
            deadline = time.monotonic() + 30
            while looper.calls <= calls_before and time.monotonic() < deadline:
                time.sleep(0.005)
    assert statuses == [0] * 5, (
        f"child exit statuses {statuses} (None: deadlocked, killed after {CHILD_TIMEOUT_S} s; "
        "2: raised; 3/4: wrong result)"
    )
    # the parent still computes correctly afterwards
    np.testing.assert_allclose(_layer(hx, hw).numpy(), layer_ref, rtol=1e-4, atol=1e-4)


def test_forked_child_can_fork_again(threads):
    threads(2)
    x, w = _inputs()
    scale_ref, layer_ref = _expected(x, w)
    _scale(hybrid.tensor(x))
    pid = os.fork()
    if pid == 0:
        status = _check_in_child(x, w, scale_ref, layer_ref)
        if status == 0:  # a grandchild, forked from a child whose pool was recreated
            grandchild = os.fork()
            if grandchild == 0:
                os._exit(_check_in_child(x, w, scale_ref, layer_ref))
            status = _wait(grandchild, CHILD_TIMEOUT_S)
            status = 5 if status is None else status
        os._exit(status)
    assert _wait(pid, 2 * CHILD_TIMEOUT_S) == 0


def _pool_work(i: int) -> float:
    """Runs in a multiprocessing worker: a compiled call on data that depends on i."""
    x = np.full((256, 256), 0.01 * i, dtype=np.float32)
    w = np.eye(256, dtype=np.float32)
    return float(_layer(hybrid.tensor(x), hybrid.tensor(w)).numpy().sum())


def test_multiprocessing_pool_with_fork_calls_compiled_function(threads):
    threads(4)
    x, w = _inputs()
    _pool_work(1)  # compiled in the parent, inherited by the workers
    ctx = multiprocessing.get_context("fork")
    with _Looper(x, w), ctx.Pool(2) as pool:
        got = pool.map_async(_pool_work, range(8)).get(timeout=CHILD_TIMEOUT_S)
    expected = [max(0.01 * i, 0.0) * 0.5 * 256 * 256 for i in range(8)]
    np.testing.assert_allclose(got, expected, rtol=1e-4)
