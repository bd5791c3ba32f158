"""The multi-process DataLoader iterator: worker processes, in-order delivery, clean shutdown.

Each worker has its own index queue (tasks in) and its own result pipe (batches out as JSON plus
raw array bytes, no pickle: hybrid/data/transfer.py). The main process waits on the result
pipes and on the workers' process sentinels at once, so a worker that dies is noticed at once instead of hanging; every wait is bounded."""

from __future__ import annotations

import atexit
import itertools
import multiprocessing.util  # noqa: F401  (its exit hook is registered before ours, runs after)
import os
import signal
import threading
import time
import weakref
from multiprocessing import connection
from typing import Any

from hybrid import errors
from hybrid.data import transfer
from hybrid.data.worker import (
    DataLoaderError, ExceptionWrapper, IterationEnd, Resume, worker_loop,
)

SHUTDOWN_S = 2.0  # how long workers get to exit on their own before they are terminated
_LIVE: set = set()  # the _Workers of every live iterator, shut down at interpreter exit


class _Workers:
    """The processes, queues and pipes of one iterator; shut_down() is idempotent."""

    def __init__(self) -> None:
        self.procs: list = []
        self.index_queues: list = []
        self.readers: list = []
        self.done_event: Any = None
        self.closed = False

    def shut_down(self, grace_s: float = SHUTDOWN_S) -> None:
        """Ask every worker to exit, drain their pipes for grace_s, then terminate the rest."""
        if self.closed:
            return
        self.closed = True
        _LIVE.discard(self)
        if self.done_event is not None:
            self.done_event.set()
        for q in self.index_queues:
            try:
                q.put(None)
            except Exception:  # closed at interpreter exit already
                pass
        readers = list(self.readers)
        alive = list(self.procs)
        deadline = time.monotonic() + grace_s
        while alive and time.monotonic() < deadline:
            # NOTE: a worker blocked sending a large batch exits only once its pipe is read.
            ready = connection.wait(readers + [p.sentinel for p in alive],
                                    timeout=max(0.0, deadline - time.monotonic()))
            for r in ready:
                if r in readers:
                    try:  # raw reads: the bytes are discarded, message framing does not matter
                        if not os.read(r.fileno(), 1 << 20):
                            readers.remove(r)
                    except OSError:
                        readers.remove(r)
            alive = [p for p in alive if p.is_alive()]
        for p in alive:
            p.terminate()
        for p in alive:
            p.join(1.0)
            if p.is_alive():
                p.kill()
                p.join(1.0)
        for p in self.procs:
            p.join(0)
        for q in self.index_queues:
            q.close()
        for r in self.readers:
            r.close()


@atexit.register
def _shut_down_all() -> None:
    for w in list(_LIVE):
        w.shut_down()


def _grow_pipe(fd: int) -> None:
    """Linux: a 1 MiB pipe buffer (64 KiB by default), so a large batch crosses in a few
    hand-offs between the worker and the main process instead of one per 64 KiB."""
    try:
        import fcntl

        fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError):
        pass  # another platform, or over /proc/sys/fs/pipe-max-size: the default size


def _base_seed(generator: Any) -> int:
    """A 53-bit seed drawn from hybrid's generator (each worker's seed is this + its id)."""
    from hybrid.data.sampler import _uniform

    return int(_uniform(1, generator)[0] * 2.0 ** 53)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "closed its pipe"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class MultiProcessIter:
    """Iterates a DataLoader with num_workers worker processes, yielding batches in order."""

    def __init__(self, loader: Any) -> None:
        self._dataset = loader.dataset
        self._iterable = loader._iterable
        self._index_sampler = loader._index_sampler
        self._n = loader.num_workers
        self._prefetch = loader.prefetch_factor
        self._timeout = loader.timeout
        self._persistent = loader.persistent_workers
        self._in_order = loader.in_order
        self._len = loader._length_or_none()
        self._error: BaseException | None = None
        self._epoch = 0
        self._base_seed = _base_seed(loader.generator)
        self._pool = transfer.BufferPool(limit=4 * (self._prefetch * self._n + 2))
        self._w = _Workers()
        self._finalizer = weakref.finalize(self, self._w.shut_down)
        _LIVE.add(self._w)
        self._start(loader)
        self._reset(loader, first=True)

    def _start(self, loader: Any) -> None:
        ctx = loader._mp_context()
        w = self._w
        w.done_event = ctx.Event()
        for wid in range(self._n):
            q = ctx.Queue()
            q.cancel_join_thread()  # NOTE: never block interpreter exit on undelivered tasks
            reader, writer = ctx.Pipe(duplex=False)
            _grow_pipe(reader.fileno())
            p = ctx.Process(
                target=worker_loop, daemon=True, name=f"hybrid-DataLoader-worker-{wid}",
                args=(wid, self._n, self._dataset, self._iterable, loader._auto_collation,
                      loader.collate_fn, loader.drop_last, self._base_seed,
                      loader.worker_init_fn, q, writer, w.done_event, os.getpid(),
                      threading.current_thread() is threading.main_thread()))
            try:
                p.start()
            except Exception as e:  # spawn/forkserver pickle the dataset and functions
                writer.close()
                reader.close()
                self._w.shut_down(grace_s=0.2)
                raise DataLoaderError(errors.at_user(
                    f"DataLoader: cannot start worker {wid} with the "
                    f"'{ctx.get_start_method()}' start method: {type(e).__name__}: {e}. Its "
                    "dataset, collate_fn and worker_init_fn are pickled to each worker: define "
                    "them at module level (no lambdas or local classes), or use "
                    "multiprocessing_context='fork'")) from e
            # NOTE: the writer is closed here before the next worker forks, so only its own
            # worker holds it: a worker that dies mid-send gives EOF, not a blocked read.
            writer.close()
            w.procs.append(p)
            w.index_queues.append(q)
            w.readers.append(reader)

    def _reset(self, loader: Any, first: bool = False) -> None:
        """Start an epoch: a new sampler pass; earlier epochs' late results are dropped."""
        if self._w.closed:
            raise DataLoaderError(errors.at_user(
                "DataLoader: this iterator's workers were shut down after an error; create a new "
                "DataLoader"))
        self._sampler_iter = iter(self._index_sampler)
        self._send_idx = self._rcvd_idx = 0
        self._task_info: dict[int, list] = {}
        self._outstanding = 0
        self._active = [True] * self._n
        self._cycle = itertools.cycle(range(self._n))
        if not first:
            self._epoch += 1
            if self._iterable:
                for q in self._w.index_queues:
                    q.put(Resume())
        for _ in range(self._prefetch * self._n):
            self._try_put_index()

    def _try_put_index(self) -> None:
        if self._outstanding >= self._prefetch * self._n:
            return
        try:
            index = next(self._sampler_iter)
        except StopIteration:
            return
        for _ in range(self._n):
            wid = next(self._cycle)
            if self._active[wid]:
                break
        else:
            return
        self._w.index_queues[wid].put(((self._epoch, self._send_idx), index))
        self._task_info[self._send_idx] = [wid]
        self._outstanding += 1
        self._send_idx += 1

    def __iter__(self) -> MultiProcessIter:
        return self

    def __len__(self) -> int:
        if self._len is None:
            raise TypeError("this DataLoader's dataset has no len()")
        return self._len

    def __next__(self) -> Any:
        if self._error is not None:
            raise self._error
        while True:
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info is not None and (len(info) == 2 or self._active[info[0]]):
                    break
                self._task_info.pop(self._rcvd_idx, None)  # an exhausted worker's task
                self._rcvd_idx += 1
            else:
                if not self._persistent:
                    self._shutdown()
                raise StopIteration
            info = self._task_info[self._rcvd_idx]
            if len(info) == 2:
                del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
                return self._process(info[1])
            (epoch, idx), data = self._get_data(info[0])
            if epoch != self._epoch:
                continue  # a late result of an epoch the user stopped early
            self._outstanding -= 1
            if isinstance(data, IterationEnd):
                self._active[data.worker_id] = False
                self._try_put_index()
                continue
            if idx != self._rcvd_idx and self._in_order:
                self._task_info[idx].append(data)
                continue
            del self._task_info[idx]
            if idx == self._rcvd_idx:
                self._rcvd_idx += 1
            return self._process(data)

    def _process(self, data: Any) -> Any:
        self._try_put_index()
        if isinstance(data, ExceptionWrapper):
            data.reraise()
        return data

    def _get_data(self, want: int) -> tuple:
        """The next (key, batch) from any worker, preferring worker `want`; never hangs."""
        w = self._w
        deadline = time.monotonic() + self._timeout if self._timeout > 0 else None
        while True:
            wait_s = 5.0 if deadline is None else max(0.0, deadline - time.monotonic())
            ready = connection.wait(w.readers + [p.sentinel for p in w.procs], timeout=wait_s)
            readers = [r for r in ready if r in w.readers]
            if readers:
                r = w.readers[want] if w.readers[want] in readers else readers[0]
                try:
                    return transfer.receive(r, self._pool)
                except (EOFError, OSError):
                    self._fail_dead([w.readers.index(r)])
                except BaseException:  # Ctrl-C mid-batch: the pipe is out of step for good
                    self._error = DataLoaderError(errors.at_user(
                        "DataLoader: this iterator was interrupted while receiving a batch and "
                        "its workers were shut down; start a new epoch (iter(loader))"))
                    self._w.shut_down(grace_s=0.2)
                    self._shutdown()
                    raise
            dead = [i for i, p in enumerate(w.procs) if p.sentinel in ready or not p.is_alive()]
            if dead:
                self._fail_dead(dead)
            if deadline is not None and time.monotonic() >= deadline:
                self._fail(DataLoaderError(errors.at_user(
                    f"DataLoader timed out after {self._timeout} seconds waiting for batch "
                    f"{self._rcvd_idx} from worker {want}; raise timeout= or make the dataset "
                    "faster (the workers were shut down)")))

    def _fail_dead(self, wids: list) -> None:
        parts = []
        for wid in wids:
            p = self._w.procs[wid]
            p.join(1.0)
            parts.append(f"worker {wid} (pid {p.pid}) {_exit_reason(p.exitcode)}")
        self._fail(DataLoaderError(errors.at_user(
            f"DataLoader {'; '.join(parts)} unexpectedly while the main process waited for "
            "batches. A worker dies like this when the dataset or collate_fn calls os._exit() or "
            "sys.exit(), crashes in native code, or is killed (for example by the out-of-memory "
            "killer: lower batch_size, num_workers or prefetch_factor). Run with num_workers=0 "
            "to see the failure in the main process")))

    def _fail(self, err: DataLoaderError) -> None:
        self._error = err
        self._w.shut_down(grace_s=0.2)  # a stuck or broken worker: no point waiting long
        self._shutdown()
        raise err

    def _shutdown(self) -> None:
        self._finalizer()

    @property
    def closed(self) -> bool:
        """True once the workers are shut down (after the last batch, or after a failure)."""
        return self._w.closed

    def worker_pids(self) -> list[int]:
        """The process ids of this iterator's workers."""
        return [p.pid for p in self._w.procs]
