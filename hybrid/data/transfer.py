"""How a batch travels from a worker to the main process, without pickle: the structure is
encoded as JSON (containers tagged, tensors and arrays as references to raw buffers), and the
buffers' bytes go through the pipe as raw writes that the main process reads straight into
the arrays it hands out (no intermediate copies).

What a batch may hold (what PyTorch's default_collate produces, and a worker's exceptions):
hybrid Tensors, numpy arrays and scalars (not of dtype object), None, bools, ints, floats,
strings, bytes, and lists, tuples, namedtuples and dicts (or dict subclasses) of them. Classes
named in a message (a namedtuple, a dict subclass, an exception type) are looked up by module
and name in the main process and must be of that kind; anything else is a clear error in the
worker. `register` adds the worker protocol's own message types (hybrid/data/worker.py).

Message: one framed Connection message holding the JSON of {"meta": ..., "sizes": [nbytes,
...]}, then each buffer's bytes unframed, in order."""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import sys
from typing import Any

import numpy as np

from hybrid.tensor import Tensor

# name -> (class, to a JSON-able dict of fields, from that dict): the worker protocol's types
_SPECIAL: dict[str, tuple[type, Any, Any]] = {}


def register(name: str, cls: type, to_fields: Any, from_fields: Any) -> None:
    _SPECIAL[name] = (cls, to_fields, from_fields)


class TransferError(TypeError):
    """A value a worker cannot send (or a message the main process will not rebuild)."""


def class_path(cls: type) -> list[str]:
    return [cls.__module__, cls.__qualname__]


def find_class(path: Any, base: type) -> type:
    """The class at [module, qualname], which must be a subclass of `base`."""
    if not (isinstance(path, list) and len(path) == 2 and all(isinstance(p, str) for p in path)):
        raise TransferError(f"a bad class reference in a DataLoader message: {path!r}")
    obj: Any = importlib.import_module(path[0])
    for part in path[1].split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise TransferError(f"{path[0]}.{path[1]} is not a {base.__name__} class")
    return obj


def _dtype_spec(d: np.dtype) -> str:
    if d.hasobject:
        raise TransferError("numpy arrays of dtype object cannot be sent")
    return "bfloat16" if d.name == "bfloat16" else d.str


def _dtype(spec: str) -> np.dtype:
    if spec == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(spec)


def _array(x: Any, buffers: list) -> list:
    a = np.require(np.asarray(x), requirements="C")  # (ascontiguousarray makes 0-d 1-d)
    spec = _dtype_spec(a.dtype)
    # NOTE: as bytes: a memoryview cannot carry every dtype (bfloat16)
    buffers.append(memoryview(a.reshape(-1).view(np.uint8)) if a.nbytes else memoryview(b""))
    return [spec, list(a.shape), len(buffers) - 1]


def _tensor(t: Any) -> np.ndarray:
    from hybrid import errors

    if t._value.__class__ is not np.ndarray:
        raise errors.DeviceError(
            f"a DataLoader worker returned a tensor on {t.device}; workers must return CPU "
            "tensors (move the batch to the device in the main process, after the loader)")
    return t.detach().numpy()


def _enc(obj: Any, buffers: list) -> Any:
    if obj is None or isinstance(obj, (bool, int, float, str)) and type(obj) in (
            bool, int, float, str):
        return obj
    if isinstance(obj, Tensor):
        return {"T": _array(_tensor(obj), buffers)}
    if isinstance(obj, np.ndarray):
        return {"A": _array(obj, buffers)}
    if isinstance(obj, np.generic):
        return {"S": _array(np.asarray(obj), buffers)}
    if isinstance(obj, (bytes, bytearray)):
        return {"B": base64.b64encode(bytes(obj)).decode("ascii")}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return {"N": [class_path(type(obj)), [_enc(v, buffers) for v in obj]]}
    if type(obj) is tuple:
        return {"U": [_enc(v, buffers) for v in obj]}
    if type(obj) is list:
        return {"L": [_enc(v, buffers) for v in obj]}
    if isinstance(obj, dict):
        items = [[_enc(k, buffers), _enc(v, buffers)] for k, v in obj.items()]
        return {"D": items} if type(obj) is dict else {"D": items, "cls": class_path(type(obj))}
    for name, (cls, to_fields, _) in _SPECIAL.items():
        if type(obj) is cls:
            return {"X": [name, to_fields(obj)]}
    raise TransferError(f"a {type(obj).__module__}.{type(obj).__qualname__}")


def _dec(node: Any, buffers: list) -> Any:
    if not isinstance(node, dict):
        return node
    (tag, body), = ((k, v) for k, v in node.items() if k != "cls")
    if tag in ("T", "A", "S"):
        spec, shape, i = body
        a = np.frombuffer(buffers[i], dtype=_dtype(spec)).reshape(shape) if buffers[i].nbytes \
            else np.empty(shape, _dtype(spec))
        if tag == "T":
            from hybrid.ops.creation import from_numpy

            return from_numpy(a)
        return a if tag == "A" else a[()]
    if tag == "B":
        return base64.b64decode(body)
    if tag == "N":
        return find_class(body[0], tuple)(*[_dec(v, buffers) for v in body[1]])
    if tag == "U":
        return tuple(_dec(v, buffers) for v in body)
    if tag == "L":
        return [_dec(v, buffers) for v in body]
    if tag == "D":
        cls = find_class(node["cls"], dict) if "cls" in node else dict
        out = cls()
        for k, v in body:
            out[_freeze(_dec(k, buffers))] = _dec(v, buffers)
        return out
    if tag == "X" and body[0] in _SPECIAL:
        return _SPECIAL[body[0]][2](body[1])
    raise TransferError(f"an unknown entry in a DataLoader message: {tag!r}")


def _freeze(k: Any) -> Any:
    return tuple(_freeze(v) for v in k) if isinstance(k, list) else k


def encode(batch: Any) -> tuple[bytes, list[memoryview]]:
    """(the structure as JSON bytes, raw buffers): tensors and arrays by reference."""
    buffers: list = []
    meta = json.dumps(_enc(batch, buffers), allow_nan=True, separators=(",", ":"))
    return meta.encode("utf-8"), buffers


def decode(meta: bytes, buffers: list) -> Any:
    """The batch rebuilt around `buffers` (numpy arrays as hybrid Tensors, no copy)."""
    return _dec(json.loads(meta), buffers)


def send(conn: Any, batch: Any) -> None:
    """Write one batch to a worker's result pipe (raises TransferError before writing anything
    when the batch holds something that cannot be sent)."""
    meta, raws = encode(batch)
    head = {"meta": meta.decode("utf-8"), "sizes": [r.nbytes for r in raws]}
    conn.send_bytes(json.dumps(head, separators=(",", ":")).encode("utf-8"))
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
    head = json.loads(conn.recv_bytes())
    meta, sizes = head["meta"].encode("utf-8"), head["sizes"]
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
