"""default_collate and default_convert: samples to batches, with torch.utils.data's rules.

Tensors and numpy arrays are stacked along a new first dim, Python floats become a float64
tensor, ints an int64 one, bools a bool one, numpy scalars keep their dtype, strings and bytes
stay a list; dicts, namedtuples, tuples and lists are collated field by field (a tuple becomes a
list, as in PyTorch). A batch that cannot be stacked raises a HybridError naming the element."""

from __future__ import annotations

import collections.abc
import copy
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.tensor import Tensor

_WHAT = "tensors, numpy arrays, numbers, strings, dicts, tuples or lists"
_FIX = ("pass collate_fn= to DataLoader to batch these samples yourself (for example pad them to "
        "one shape, or return a list)")


def _where(path: str) -> str:
    return f"sample{path}" if path else "the samples"


def _shape(s: tuple) -> str:
    return "[" + ", ".join(str(d) for d in s) + "]"


def _check_shapes(batch: list, path: str, shape_of: Any) -> None:
    """Raise a ShapeError naming the element and the first two differing shapes."""
    first = tuple(shape_of(batch[0]))
    for i, b in enumerate(batch[1:], 1):
        if tuple(shape_of(b)) != first:
            raise errors.ShapeError(errors.at_user(
                f"default_collate: cannot stack {_where(path)}: shape {_shape(first)} in sample 0 "
                f"and {_shape(tuple(shape_of(b)))} in sample {i} of the batch differ; make the "
                f"dataset return one shape, or {_FIX}"))


def _numpy_dtype_ok(arr: np.ndarray, path: str) -> None:
    from compiler.ir.types import DType

    if arr.dtype.kind in "OSUV":
        raise errors.DTypeError(errors.at_user(
            f"default_collate: {_where(path)} is a numpy array of dtype {arr.dtype}; batches must "
            f"contain {_WHAT}; {_FIX}"))
    try:
        DType.from_np(arr.dtype)
    except TypeError:
        raise errors.DTypeError(errors.at_user(
            f"default_collate: {_where(path)} is a numpy array of dtype {arr.dtype}, which hybrid "
            "has no tensor type for; convert it in the dataset (e.g. arr.astype(np.float32) or "
            f"arr.astype(np.int64)), or {_FIX}")) from None


def _stack_tensors(batch: list, path: str) -> Tensor:
    from hybrid.ops.core import ndarray, wrap
    from hybrid.ops.shape import stack

    for b in batch:
        if not isinstance(b, Tensor):
            raise _mixed(batch, path)
    _check_shapes(batch, path, lambda t: t.shape)
    values = [t._value for t in batch]
    dt = values[0].dtype
    if all(v.__class__ is ndarray and v.dtype == dt for v in values) and \
            not any(t.requires_grad for t in batch):
        return wrap(np.stack(values))  # NOTE: one copy, no per-sample graph ops
    return stack(batch, 0)


def _stack_arrays(batch: list, path: str) -> Tensor:
    from hybrid.ops.core import wrap

    for b in batch:
        if not isinstance(b, np.ndarray):
            raise _mixed(batch, path)
        _numpy_dtype_ok(b, path)
    _check_shapes(batch, path, lambda a: a.shape)
    if all(b.dtype == batch[0].dtype for b in batch):
        return wrap(np.stack(batch))
    from hybrid.ops.creation import as_tensor

    return _stack_tensors([as_tensor(b) for b in batch], path)  # torch's dtype promotion


def _mixed(batch: list, path: str) -> errors.HybridError:
    kinds = sorted({type(b).__name__ for b in batch})
    return errors.DTypeError(errors.at_user(
        f"default_collate: {_where(path)} mixes types {', '.join(kinds)} across the batch; make "
        f"the dataset return one type for this element, or {_FIX}"))


def _numbers(batch: list, path: str, dtype: Any) -> Tensor:
    from hybrid.ops.creation import tensor

    for b in batch:
        if not isinstance(b, (int, float, np.bool_, np.number)):
            raise _mixed(batch, path)
    return tensor(batch, dtype=dtype)


def _numpy_scalars(batch: list, path: str) -> Tensor:
    from hybrid.ops.creation import tensor

    for b in batch:
        if not isinstance(b, (np.generic, int, float)):
            raise _mixed(batch, path)
    arr = np.asarray(batch)
    _numpy_dtype_ok(arr, path)
    return tensor(arr)


def _sub(path: str, key: Any) -> str:
    return f"{path}[{key!r}]"


def _collate(batch: list, path: str) -> Any:
    from hybrid.dtypes import float64, int64

    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch, path)
    if isinstance(elem, np.ndarray):
        return _stack_arrays(batch, path)
    if isinstance(elem, (np.bool_, np.number)):
        return _numpy_scalars(batch, path)
    if isinstance(elem, bool):
        return _numbers(batch, path, None)
    if isinstance(elem, float):
        return _numbers(batch, path, float64)
    if isinstance(elem, int):
        return _numbers(batch, path, int64 if all(isinstance(b, int) for b in batch) else None)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        for i, b in enumerate(batch):
            if not isinstance(b, collections.abc.Mapping) or b.keys() != elem.keys():
                got = list(b.keys()) if isinstance(b, collections.abc.Mapping) else type(b).__name__
                raise errors.ShapeError(errors.at_user(
                    f"default_collate: {_where(path)} has keys {list(elem.keys())} in sample 0 "
                    f"but {got} in sample {i}; give every sample the same keys, or {_FIX}"))
        fields = {k: _collate([b[k] for b in batch], _sub(path, k)) for k in elem}
        return _rebuild_mapping(elem, fields)
    if isinstance(elem, collections.abc.Sequence):
        for i, b in enumerate(batch):
            if not isinstance(b, collections.abc.Sequence) or len(b) != len(elem):
                got = len(b) if isinstance(b, collections.abc.Sequence) else type(b).__name__
                raise errors.ShapeError(errors.at_user(
                    f"default_collate: each element in the batch should be of equal size: "
                    f"{_where(path)} has {len(elem)} items in sample 0 but {got} in sample {i}; "
                    f"{_FIX}"))
        # NOTE: each column stays the tuple zip made (strings come back as a tuple, as torch).
        cols = [_collate(col, _sub(path, j)) for j, col in enumerate(zip(*batch))]
        return _rebuild_sequence(elem, cols)
    raise errors.DTypeError(errors.at_user(
        f"default_collate: {_where(path)} is a {type(elem).__name__}; batches must contain "
        f"{_WHAT}; {_FIX}"))


def _rebuild_mapping(elem: Any, fields: dict) -> Any:
    if type(elem) is dict:
        return fields
    try:
        if isinstance(elem, collections.abc.MutableMapping):
            clone = copy.copy(elem)
            clone.update(fields)
            return clone
        return type(elem)(fields)
    except TypeError:
        return fields


def _rebuild_sequence(elem: Any, items: list) -> Any:
    if isinstance(elem, tuple):
        # NOTE: a namedtuple keeps its type; a plain tuple becomes a list, as in PyTorch.
        return type(elem)(*items) if hasattr(elem, "_fields") else items
    if type(elem) is list:
        return items
    try:
        if isinstance(elem, collections.abc.MutableSequence):
            clone = copy.copy(elem)
            for i, item in enumerate(items):
                clone[i] = item
            return clone
        return type(elem)(items)
    except TypeError:
        return items


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, with torch.utils.data.default_collate's rules."""
    if not isinstance(batch, collections.abc.Sequence) or isinstance(batch, (str, bytes)) or \
            len(batch) == 0:
        raise errors.ShapeError(errors.at_user(
            "default_collate: expected a non-empty list of samples, got "
            f"{type(batch).__name__}{' of length 0' if hasattr(batch, '__len__') else ''}"))
    return _collate(batch, "")


def default_convert(data: Any) -> Any:
    """numpy arrays and scalars to tensors, recursively through containers (batch_size=None)."""
    from hybrid.ops.creation import as_tensor

    if isinstance(data, Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if data.dtype.kind in "OSUV" else as_tensor(data)
    if isinstance(data, (np.bool_, np.number)):
        return as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return _rebuild_mapping(data, {k: default_convert(v) for k, v in data.items()})
    if isinstance(data, tuple):
        items = [default_convert(d) for d in data]
        return type(data)(*items) if hasattr(data, "_fields") else items
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild_sequence(data, [default_convert(d) for d in data])
    return data
