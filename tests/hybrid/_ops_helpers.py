"""The machinery of the table-driven op suite (tests/hybrid/test_ops.py): the dtype groups, the
OpInfo row and its samples (S, Idx, Mask), and the sample-value generators shared by the rows in
_ops_table_elementwise.py and _ops_table_structural.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import hybrid

F16, F32, F64 = hybrid.float16, hybrid.float32, hybrid.float64
I32, I64, B8 = hybrid.int32, hybrid.int64, hybrid.bool
FLOATS = (F32, F64)
INTS = (I32, I64)


class Idx(np.ndarray):
    """An index array: passed as an int64 tensor, never cast or made non-contiguous."""


class Mask(np.ndarray):
    """A bool mask: passed as a bool tensor."""


def idx(a) -> Idx:
    return np.asarray(a, dtype=np.int64).view(Idx)


def mask(a) -> Mask:
    return np.asarray(a, dtype=bool).view(Mask)


@dataclass
class S:
    """One sample: positional args (numpy arrays become tensors) and keyword args."""

    args: tuple
    kwargs: dict = field(default_factory=dict)

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@dataclass
class OpInfo:
    name: str
    op: Callable  # the hybrid function, on tensors
    ref: Callable  # numpy float64 reference
    samples: Callable[[np.random.Generator, Any], list]  # (rng, dtype) -> [S]
    dtypes: tuple = FLOATS
    grad: bool = True
    out_dtype: Callable | None = None  # input dtype -> output dtype (default: the same)
    atol: float = 1e-5
    rtol: float = 1e-5

    def __repr__(self) -> str:
        return self.name


# --- sample values ------------------------------------------------------------------------------


def values(rng, shape, kind="any", dtype=F64):
    return np.asarray(_values(rng, shape, kind, dtype))


def _values(rng, shape, kind="any", dtype=F64):
    """Random values of `shape` for a domain: any, pos, nonzero, frac (away from integers and
    halves), unit (-0.9, 0.9), bool, int."""
    if dtype is B8 or kind == "bool":
        return rng.random(shape) < 0.5
    if dtype in INTS or kind == "int":
        v = rng.integers(-9, 10, shape)
        if kind in ("pos", "nonzero"):
            v = np.where(v == 0, 3, np.abs(v) if kind == "pos" else v)
        return v.astype(np.int64)
    if kind == "any":
        return rng.uniform(-2, 2, shape)
    if kind == "pos":
        return rng.uniform(0.5, 2.5, shape)
    if kind == "nonzero":
        return rng.uniform(0.3, 2, shape) * rng.choice([-1.0, 1.0], shape)
    if kind == "frac":
        return rng.integers(-3, 4, shape) + rng.choice([0.2, 0.35, 0.65, 0.8], shape)
    if kind == "unit":
        return rng.uniform(-0.9, 0.9, shape)
    raise ValueError(kind)


UNARY_SHAPES = [(3, 4), (), (0, 3), (5,), (2, 1, 3)]
BINARY_SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((3, 2), ()),
                 ((), ()), ((0, 4), (4,)), ((1, 0), (3, 1))]


def unary(kind="any"):
    return lambda rng, dt: [S(values(rng, s, kind, dt)) for s in UNARY_SHAPES]


def binary(ka="any", kb="any", scalars=(2.5, -1.5)):
    def gen(rng, dt):
        out = [S(values(rng, sa, ka, dt), values(rng, sb, kb, dt)) for sa, sb in BINARY_SHAPES]
        a = values(rng, (3, 4), ka, dt)
        for c in scalars:  # int tensors get int scalars (float scalars promote: test_tensor)
            out.append(S(a, c if dt.is_floating or dt is B8 else int(c) or 2))
        return out

    return gen


def _rev_binary(ka="any", scalars=(2.5,)):
    """(scalar, tensor) samples: exercises __radd__ and friends."""
    return lambda rng, dt: [S(c if dt.is_floating else 3, values(rng, (3, 4), ka, dt))
                            for c in scalars]


def both(*gens):
    return lambda rng, dt: [s for g in gens for s in g(rng, dt)]


def as_float(d):
    return d if d.is_floating else F32


def to_bool(d):
    return B8
