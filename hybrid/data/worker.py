"""What runs inside a DataLoader worker process: seeding, get_worker_info(), fetching batches,
and sending them to the main process as numpy arrays (never pickled Tensor objects)."""

from __future__ import annotations

import os
import queue
import random
import sys
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.data import transfer

POLL_S = 1.0  # how often an idle worker checks that the main process is still alive


@dataclass(frozen=True)
class WorkerInfo:
    """Which worker this is: id in [0, num_workers), its seed, and its copy of the dataset."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None
_worker_frame = ""  # in a worker: the file:line that hybrid's errors take for the user's line


def get_worker_info() -> WorkerInfo | None:
    """This worker's WorkerInfo inside a DataLoader worker process, None in the main process."""
    return _worker_info


class DataLoaderError(errors.HybridError, RuntimeError):
    """A DataLoader worker died, could not start or send its batch, or a batch timed out."""


class ExceptionWrapper:
    """An exception raised in a worker, with its traceback as text, re-raised in the parent
    as its own type (or as `raise_as`)."""

    def __init__(self, where: str, raise_as: type | None = None) -> None:
        exc_info = sys.exc_info()
        self.raise_as = raise_as
        self.exc_type = exc_info[0]
        self.exc_msg = "".join(traceback.format_exception(*exc_info))
        if _worker_frame and self.exc_msg.endswith(f" at {_worker_frame}\n"):
            # NOTE: a hybrid error raised in a worker names multiprocessing's frame as the
            # user's line; the main process names the user's loop instead (reraise).
            self.exc_msg = self.exc_msg[:-len(_worker_frame) - 5] + "\n"
        self.where = where

    def reraise(self) -> None:
        """Raise the worker's exception type with the worker's traceback in the message."""
        cls = self.raise_as or self.exc_type
        msg = f"Caught {self.exc_type.__name__} {self.where}.\nOriginal {self.exc_msg}"
        if issubclass(cls, errors.HybridError):
            msg = errors.at_user(msg.rstrip("\n"))
        if cls is KeyError:
            msg = _KeyErrorMessage(msg)
        try:
            exc = cls(msg)
        except Exception:
            raise RuntimeError(msg) from None
        try:
            raise exc
        finally:
            # NOTE: no frame -> exception -> traceback -> frame cycle: the iterator (and its
            # workers) is freed as soon as the caller drops the exception, without waiting for gc.
            del exc


class _KeyErrorMessage(str):
    """A KeyError message that prints its newlines (KeyError shows repr() otherwise)."""

    def __repr__(self) -> str:
        return str(self)


class IterationEnd:
    """A worker's IterableDataset copy is exhausted."""

    def __init__(self, worker_id: int) -> None:
        self.worker_id = worker_id


class Resume:
    """Start a new epoch: an IterableDataset worker makes a new iterator."""


def _exception_fields(e: ExceptionWrapper) -> dict:
    return {"where": e.where, "msg": e.exc_msg, "type": transfer.class_path(e.exc_type),
            "raise_as": transfer.class_path(e.raise_as) if e.raise_as is not None else None}


def _exception_from(d: dict) -> ExceptionWrapper:
    """The main process's copy of a worker's exception; its type must be an exception class
    (RuntimeError when it cannot be found there)."""
    e = ExceptionWrapper.__new__(ExceptionWrapper)
    e.where, e.exc_msg = str(d["where"]), str(d["msg"])
    try:
        e.exc_type = transfer.find_class(d["type"], BaseException)
    except (ImportError, AttributeError, transfer.TransferError):
        e.exc_type = RuntimeError
    e.raise_as = (transfer.find_class(d["raise_as"], BaseException)
                  if d["raise_as"] is not None else None)
    return e


transfer.register("exception", ExceptionWrapper, _exception_fields, _exception_from)
transfer.register("iteration_end", IterationEnd, lambda e: {"worker_id": e.worker_id},
                  lambda d: IterationEnd(int(d["worker_id"])))


def numpy_seed(base_seed: int, worker_id: int) -> np.ndarray:
    """A numpy legacy seed for this worker, mixed from the base seed and the worker id."""
    return np.random.SeedSequence([worker_id, base_seed & 0xFFFFFFFF, base_seed >> 32]) \
        .generate_state(4)


def _die_with_parent(parent_pid: int) -> None:
    """On Linux, have the kernel kill this worker if the main process dies (no orphans)."""
    # NOTE: the signal follows the thread that forked, so it is only asked for when that was
    # the main thread of the main process (not a forkserver, not a thread that may end first).
    if not sys.platform.startswith("linux") or os.getppid() != parent_pid:
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(0)


class Fetcher:
    """Turns one task (a list of indices, one index, or 'next') into a collated batch."""

    def __init__(self, dataset: Any, iterable: bool, auto_collation: bool, collate_fn: Any,
                 drop_last: bool) -> None:
        from hybrid.data.collate import default_collate
        from hybrid.data.dataset import TensorDataset

        self.dataset = dataset
        self.iterable = iterable
        self.auto_collation = auto_collation
        self.collate_fn = collate_fn
        self.drop_last = drop_last
        self.tensor_fast = (isinstance(dataset, TensorDataset) and auto_collation
                            and collate_fn is default_collate)
        self.it = iter(dataset) if iterable else None
        self.ended = False

    def fetch(self, index: Any) -> Any:
        """The batch for `index`; StopIteration when an iterable dataset has no more."""
        if self.iterable:
            return self._fetch_iterable(index)
        if not self.auto_collation:
            return self.collate_fn(self.dataset[index])
        if self.tensor_fast:  # one index op per tensor instead of a per-sample loop
            from hybrid.dtypes import int64
            from hybrid.ops.creation import tensor

            idx = tensor(index, dtype=int64, device=self.dataset.tensors[0].device) \
                if index else None
            if idx is not None:
                return [t[idx] for t in self.dataset.tensors]
        getitems = getattr(self.dataset, "__getitems__", None)
        data = getitems(index) if callable(getitems) else [self.dataset[i] for i in index]
        return self.collate_fn(data)

    def _fetch_iterable(self, index: Any) -> Any:
        if self.ended:
            raise StopIteration
        if not self.auto_collation:
            return self.collate_fn(next(self.it))
        data = []
        for _ in index:
            try:
                data.append(next(self.it))
            except StopIteration:
                self.ended = True
                break
        if not data or (self.drop_last and len(data) < len(index)):
            raise StopIteration
        return self.collate_fn(data)


def _reuse_freed_memory() -> None:
    """glibc: serve large allocations from the heap and keep freed memory mapped, so each
    batch's arrays reuse the last one's pages instead of faulting in fresh ones."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _seed_everything(seed: int, base_seed: int, worker_id: int) -> None:
    import hybrid

    random.seed(seed)
    hybrid.manual_seed(seed)
    np.random.seed(numpy_seed(base_seed, worker_id))


def _send(conn: Any, key: Any, data: Any, where: str) -> None:
    try:
        transfer.send(conn, (key, data))
    except (BrokenPipeError, EOFError):
        raise
    except Exception:
        transfer.send(conn, (key, ExceptionWrapper(
            where + " while sending its batch to the main process: the dataset or collate_fn "
            "returned something that cannot be sent; return tensors, numpy arrays, numbers, "
            "strings, bytes, None, or dicts/lists/tuples/namedtuples of them",
            raise_as=DataLoaderError)))


def worker_loop(worker_id: int, num_workers: int, dataset: Any, iterable: bool,
                auto_collation: bool, collate_fn: Any, drop_last: bool, base_seed: int,
                init_fn: Any, index_queue: Any, result_conn: Any, done_event: Any,
                parent_pid: int, from_main_thread: bool) -> None:
    """A worker process: take tasks from index_queue, send (key, batch) back on result_conn."""
    global _worker_info, _worker_frame
    if from_main_thread:
        _die_with_parent(parent_pid)
    import multiprocessing

    parent = multiprocessing.parent_process()
    _reuse_freed_memory()
    _worker_frame = errors.user_location()
    where = f"in DataLoader worker process {worker_id}"
    try:
        seed = base_seed + worker_id
        _seed_everything(seed, base_seed, worker_id)
        _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
        init_error = fetcher = None
        try:
            if init_fn is not None:
                init_fn(worker_id)
            fetcher = Fetcher(dataset, iterable, auto_collation, collate_fn, drop_last)
        except Exception:
            init_error = ExceptionWrapper(where)
        while parent is None or parent.is_alive():
            try:
                task = index_queue.get(timeout=POLL_S)
            except queue.Empty:
                continue
            if task is None:  # shut down
                break
            if isinstance(task, Resume):
                if init_error is None:
                    try:
                        fetcher = Fetcher(dataset, iterable, auto_collation, collate_fn, drop_last)
                    except Exception:
                        init_error = ExceptionWrapper(where)
                continue
            if done_event.is_set():
                continue
            key, index = task
            if init_error is not None:
                data = init_error
            else:
                try:
                    data = fetcher.fetch(index)
                except StopIteration:
                    data = IterationEnd(worker_id) if iterable else ExceptionWrapper(where)
                except Exception:
                    data = ExceptionWrapper(where)
            _send(result_conn, key, data, where)
            del data
    except KeyboardInterrupt:
        pass  # the main process handles Ctrl-C and shuts the workers down
    except (BrokenPipeError, EOFError):
        pass  # the main process is gone
    finally:
        result_conn.close()
