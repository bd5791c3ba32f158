"""How a batch travels from a worker to the main process: every hybrid Tensor becomes its numpy
array, the structure is pickled (protocol 5) with the arrays' bytes kept out of band, and those
bytes go through the pipe as raw writes that the main process reads straight into the arrays
it hands out (no pickled Tensor objects, no intermediate copies).

Message: one framed Connection message holding pickle((meta, [nbytes, ...])), then each
buffer's bytes unframed, in order."""

from __future__ import annotations

import copy
import io
import os
import pickle
import sys
from typing import Any

import numpy as np

from hybrid.tensor import Tensor


class _Packed:
    """A hybrid Tensor in transit: its numpy array."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self) -> tuple:
        return (_Packed, (self.array,))


def _map(fn: Any, obj: Any) -> Any:
    """Apply fn to the leaves of nested dicts / lists / tuples / namedtuples, keeping types."""
    if isinstance(obj, (Tensor, _Packed)):
        return fn(obj)
    if isinstance(obj, dict):
        items = {k: _map(fn, v) for k, v in obj.items()}
        if type(obj) is dict:
            return items
        clone = copy.copy(obj)
        clone.update(items)
        return clone
    if isinstance(obj, tuple):
        items = [_map(fn, v) for v in obj]
        return type(obj)(*items) if hasattr(obj, "_fields") else type(obj)(items)
    if isinstance(obj, list):
        items = [_map(fn, v) for v in obj]
        if type(obj) is list:
            return items
        clone = copy.copy(obj)
        clone[:] = items
        return clone
    return obj


def _pack(t: Any) -> _Packed:
    from hybrid import errors

    if t._value.__class__ is not np.ndarray:
        raise errors.DeviceError(
            f"a DataLoader worker returned a tensor on {t.device}; workers must return CPU "
            "tensors (move the batch to the device in the main process, after the loader)")
    return _Packed(np.ascontiguousarray(t.detach().numpy()))


def encode(batch: Any) -> tuple[bytes, list[memoryview]]:
    """(pickled structure, raw buffers): Tensors as numpy arrays, their bytes out of band."""
    buffers: list = []
    meta = pickle.dumps(_map(_pack, batch), protocol=5, buffer_callback=buffers.append)
    return meta, [b.raw() for b in buffers]


def decode(meta: bytes, buffers: list) -> Any:
    """The batch rebuilt around `buffers`, numpy arrays as hybrid Tensors (no copy)."""
    from hybrid.ops.creation import from_numpy

    return _map(lambda p: from_numpy(p.array), pickle.loads(meta, buffers=buffers))


def send(conn: Any, batch: Any) -> None:
    """Write one batch to a worker's result pipe (raises before writing if it cannot pickle)."""
    meta, raws = encode(batch)
    conn.send_bytes(pickle.dumps((meta, [r.nbytes for r in raws]), protocol=5))
    fd = conn.fileno()
    for r in raws:
        view = r.cast("B")
        while len(view):
            view = view[os.write(fd, view):]


class BufferPool:
    """Receive buffers reused once nothing refers to them any more (their pages stay mapped).

    NOTE: a fresh multi-megabyte buffer costs a page fault per 4 KiB page, several times the
    copy itself; a training loop drops each batch before the next, so its buffer comes back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.free: dict[int, list] = {}

    def take(self, nbytes: int) -> np.ndarray:
        """A uint8 buffer of nbytes nobody else holds."""
        pool = self.free.setdefault(nbytes, [])
        for buf in pool:
            if sys.getrefcount(buf) <= 3:  # the list, `buf` and getrefcount's argument
                return buf
        buf = np.empty(nbytes, np.uint8)
        if nbytes >= 1 << 16 and sum(len(p) for p in self.free.values()) < self.limit:
            pool.append(buf)
        return buf


def receive(conn: Any, pool: BufferPool | None = None) -> Any:
    """Read one batch from a worker's result pipe; EOFError if the worker died mid-batch."""
    meta, sizes = pickle.loads(conn.recv_bytes())
    raw = io.FileIO(conn.fileno(), closefd=False)
    buffers = []
    for n in sizes:
        buf = pool.take(n) if pool is not None else np.empty(n, np.uint8)
        view = memoryview(buf)
        while len(view):
            got = raw.readinto(view)
            if not got:
                raise EOFError("a DataLoader worker's pipe closed in the middle of a batch")
            view = view[got:]
        buffers.append(buf)
    return decode(meta, buffers)
