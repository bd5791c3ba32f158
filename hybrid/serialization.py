"""hybrid.save / hybrid.load: safetensors files, no pickle anywhere.

Tensors are stored under flattened names (a flat state dict keeps its own keys, so other
safetensors tools read it as is); the structure around them (dicts, lists, tuples, numbers,
strings, None) is JSON in the file's metadata under "hybrid.structure"."""

from __future__ import annotations

import json
import os
import stat
from collections import OrderedDict
from typing import Any

import numpy as np

from compiler.ir.types import DType
from hybrid import errors
from hybrid.tensor import Tensor

FORMAT_VERSION = "1"
_STRUCT = "hybrid.structure"
_VERSION = "hybrid.version"


class SerializationError(errors.HybridError, ValueError):
    """A file that is not a valid hybrid / safetensors file, or an object that cannot be saved."""


class CheckpointNotFoundError(errors.HybridError, FileNotFoundError):
    """hybrid.load was given a path that does not exist."""


def _encode(obj: Any, path: list[str], tensors: dict[str, np.ndarray]) -> Any:
    """JSON for `obj` with each tensor replaced by {"__tensor__": name}."""
    if isinstance(obj, Tensor):
        name = _fresh_name(".".join(path) or "tensor", tensors)
        arr = obj.detach().cpu().numpy()
        # NOTE: not np.ascontiguousarray, which turns 0-d arrays into 1-d ones
        tensors[name] = arr if arr.flags.c_contiguous else arr.copy(order="C")
        return {"__tensor__": name}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (bool, int, float, str))):
                raise SerializationError(
                    errors.at_user(f"save: dict keys must be str, int, float, bool or None, got "
                                   f"{type(k).__name__} at {'.'.join(path) or '<root>'}")
                )
            items.append([k, _encode(v, path + [str(k)], tensors)])
        return {"__dict__": items}
    if isinstance(obj, (list, tuple)):
        enc = [_encode(v, path + [str(i)], tensors) for i, v in enumerate(obj)]
        return {"__tuple__": enc} if isinstance(obj, tuple) else enc
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biuf":
            raise SerializationError(errors.at_user(
                f"save: cannot save a numpy array of dtype {obj.dtype} (at "
                f"{'.'.join(path) or '<root>'}); only bool, integer and float arrays can be saved"))
        name = _fresh_name(".".join(path) or "array", tensors)
        tensors[name] = obj if obj.flags.c_contiguous else obj.copy(order="C")
        return {"__ndarray__": name}
    raise SerializationError(
        errors.at_user(f"save: cannot save a {type(obj).__name__} (at "
                       f"{'.'.join(path) or '<root>'}): hybrid.save writes tensors, numpy arrays, "
                       "dicts, lists, tuples, numbers, strings, bools and None, never arbitrary "
                       "objects (no pickle, because loading a pickle can run any code). Save the "
                       "object's state instead (model.state_dict(), optimizer.state_dict()), or "
                       "convert its data to tensors and plain values")
    )


def _fresh_name(base: str, tensors: dict) -> str:
    name, n = base, 1
    while name in tensors:
        name, n = f"{base}#{n}", n + 1
    return name


def save(obj: Any, path: str | os.PathLike) -> None:
    """Save tensors, or dicts/lists of tensors and plain values (a state dict, an optimizer's
    state_dict()), to a safetensors file."""
    tensors: dict[str, np.ndarray] = {}
    structure = _encode(obj, [], tensors)
    from safetensors.numpy import save_file

    metadata = {_VERSION: FORMAT_VERSION, _STRUCT: json.dumps(structure)}
    if hasattr(path, "write"):  # a file object (io.BytesIO, open(..., "wb"))
        from safetensors.numpy import save as to_bytes

        path.write(to_bytes(tensors, metadata=metadata))
        return
    save_file(tensors, os.fspath(path), metadata=metadata)


def _decode(node: Any, tensors: dict[str, Any], where: str) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors, where) for v in node]
    if not isinstance(node, dict):
        return node
    if "__tensor__" in node:
        name = node["__tensor__"]
        if name not in tensors:
            raise SerializationError(
                errors.at_user(f"load: {where} is corrupt: its structure refers to a tensor "
                               f"{name!r} that the file does not hold")
            )
        return tensors[name]
    if "__ndarray__" in node:
        name = node["__ndarray__"]
        if name not in tensors:
            raise SerializationError(
                errors.at_user(f"load: {where} is corrupt: its structure refers to an array "
                               f"{name!r} that the file does not hold")
            )
        return np.array(tensors[name].detach().numpy(force=True), copy=True)
    if "__tuple__" in node:
        return tuple(_decode(v, tensors, where) for v in node["__tuple__"])
    if "__dict__" in node:
        out = {}
        for pair in node["__dict__"]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise SerializationError(errors.at_user(f"load: {where} has a malformed structure"))
            out[pair[0]] = _decode(pair[1], tensors, where)
        return out
    raise SerializationError(errors.at_user(f"load: {where} has a malformed structure"))


def _read(path: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    try:
        # NOTE: opened without blocking and checked to be a regular file before it is read: a
        # FIFO, device or directory in its place is an error, never a hang
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise CheckpointNotFoundError(errors.at_user(f"load: no such file {path!r}")) from None
    except OSError as e:
        raise SerializationError(errors.at_user(f"load: cannot open {path!r}: {e.strerror}")) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SerializationError(errors.at_user(
            f"load: {path!r} is not a regular file (a directory, FIFO or device); give the "
            "path of a safetensors file"))
    with os.fdopen(fd, "rb") as f:
        data = f.read()
    return _read_bytes(data, repr(path))


def load(path: str | os.PathLike, map_location: Any = None, weights_only: bool = True,
         **_ignored: Any) -> Any:
    """Load what `save` wrote (or any safetensors file: a dict of tensors). `map_location`
    ('cpu', 'cuda', a device) puts every tensor on that device."""
    if hasattr(path, "read"):
        arrays, metadata = _read_bytes(path.read())
        path = getattr(path, "name", "<file object>")
    else:
        path = os.fspath(path)
        arrays, metadata = _read(path)
    return _rebuild(arrays, metadata, path, map_location)


# safetensors' dtype names -> numpy dtypes (BF16 as ml_dtypes' bfloat16, which safetensors'
# own numpy loader does not map)
_ST_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16,
              "I32": np.int32, "I64": np.int64, "F16": np.float16,
              "BF16": DType.bfloat16.np, "F32": np.float32, "F64": np.float64}


def _read_bytes(data: bytes, where: str = "the data") -> tuple[dict[str, np.ndarray],
                                                             dict[str, str]]:
    """The arrays and metadata of safetensors bytes, checked by safetensors' own parser."""
    from safetensors import deserialize

    try:
        n = int.from_bytes(data[:8], "little")
        if len(data) < 8 or n > len(data) - 8:
            raise ValueError("the header is truncated")
        header = json.loads(data[8:8 + n])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")  # noqa: TRY004  (caught below)
        metadata = header.get("__metadata__") or {}
        entries = deserialize(bytes(data))
    except Exception as e:  # noqa: BLE001  (safetensors rejected the bytes: say so in our terms)
        raise SerializationError(errors.at_user(
            f"load: {where} is not a valid safetensors file (truncated, corrupt or another "
            f"format): {e}")) from None
    arrays = {}
    for name, entry in entries:
        dtype = _ST_DTYPES.get(entry["dtype"])
        if dtype is None:
            raise SerializationError(errors.at_user(
                f"load: tensor {name!r} of {where} has dtype {entry['dtype']}, which hybrid does "
                f"not hold (it has {', '.join(_ST_DTYPES)}); convert it with the tool that "
                "wrote it"))
        arrays[name] = np.frombuffer(entry["data"], dtype=dtype).reshape(entry["shape"])
    return arrays, metadata


def _rebuild(arrays: dict, metadata: dict, path: str, map_location: Any) -> Any:
    """The saved object from the file's arrays and its structure metadata."""
    from hybrid.ops.creation import from_numpy

    tensors: dict[str, Any] = {}
    for name, arr in arrays.items():
        t = from_numpy(np.array(arr, copy=True))
        tensors[name] = t.to(map_location) if map_location is not None else t
    text = metadata.get(_STRUCT)
    if text is None:  # a plain safetensors file from another tool
        return OrderedDict(tensors)
    try:
        structure = json.loads(text)
    except ValueError as e:
        raise SerializationError(
            errors.at_user(f"load: {path!r} has malformed {_STRUCT!r} metadata (not JSON: {e})")
        ) from None
    try:
        return _decode(structure, tensors, repr(path))
    except (TypeError, KeyError, AttributeError, RecursionError) as e:  # a hand-edited structure
        raise SerializationError(
            errors.at_user(f"load: {path!r} has a malformed structure ({type(e).__name__}: {e})")
        ) from None
