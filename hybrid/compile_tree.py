"""A compiled call's argument tree: nested lists / tuples / namedtuples / dicts of leaves,
flattened in the one order compiled calls use (`call_leaves`), rebuilt for outputs
(`unflatten`), and the metadata a tensor's guard compares (`tensor_meta`)."""

from __future__ import annotations

from typing import Any

from hybrid.tensor import _TENSOR_CLASSES


def flatten(obj: Any) -> tuple[list, Any]:
    """Leaves (tensors and other non-container objects) in order, and a spec to rebuild obj."""
    leaves: list = []
    spec = _flatten(obj, leaves)
    return leaves, spec


def _flatten(obj: Any, leaves: list) -> Any:
    c = obj.__class__
    if c in _TENSOR_CLASSES:
        leaves.append(obj)
        return ("T",)
    if c is tuple or c is list:
        return (c.__name__, [_flatten(x, leaves) for x in obj])
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return ("namedtuple", c, [_flatten(x, leaves) for x in obj])
    if c is dict:
        return ("dict", list(obj), [_flatten(v, leaves) for v in obj.values()])
    leaves.append(obj)
    return ("C", obj)


def call_leaves(args: tuple, kwargs: dict) -> list:
    """The leaves of a call in the one order a compiled call uses: the positional arguments,
    then the keyword arguments by name (the key's order, so f(x, a=p, b=q) and f(x, b=q, a=p)
    are the same call)."""
    leaves, _ = flatten((args, dict(sorted(kwargs.items())) if len(kwargs) > 1 else kwargs))
    return leaves


def tensor_meta(t: Any) -> tuple:
    """What a tensor's guard compares: array type (device), shape, dtype, requires_grad. The
    key builder writes the same tuple inline on the hit path."""
    v = t._value
    return (v.__class__, v.shape, v.dtype, t._rg)


def unflatten(spec: Any, tensors: list) -> Any:
    """Rebuild a structure from its spec, taking tensors in order for the tensor leaves."""
    it = iter(tensors)
    return _unflatten(spec, it)


def _unflatten(spec: Any, it: Any) -> Any:
    kind = spec[0]
    if kind == "T":
        return next(it)
    if kind == "C":
        return spec[1]
    if kind == "list":
        return [_unflatten(s, it) for s in spec[1]]
    if kind == "tuple":
        return tuple(_unflatten(s, it) for s in spec[1])
    if kind == "namedtuple":
        return spec[1](*[_unflatten(s, it) for s in spec[2]])
    return dict(zip(spec[1], [_unflatten(s, it) for s in spec[2]]))
