"""The random number generator: a counter-based SplitMix64 stream (seed, counter).

Every draw is the `rand` primitive on the generator's state, so a compiled function draws exactly
the numbers eager execution would after the same `manual_seed`, on every backend."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from compiler.ir.ops import Op
from compiler.ir.types import DType
from hybrid import errors
from hybrid.device import as_device
from hybrid.dtypes import as_dtype, get_default_dtype
from hybrid.ops import elementwise as ew
from hybrid.ops.core import STATE, apply, wrap
from hybrid.ops.shape import sizes


class Generator:
    """A random stream: `manual_seed(s)` resets it; each draw of n values advances it by n."""

    def __init__(self, seed: int | None = None):
        self._state = wrap(np.zeros(2, dtype=np.int64))  # [seed, counter]
        self.manual_seed(int(time.time_ns()) if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        v = self._state._value
        v[0] = np.int64(np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF).view(np.int64))
        v[1] = 0
        self._seed = int(seed)
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> np.ndarray:
        """The state as an int64 array [seed, counter] (a copy)."""
        return self._state._value.copy()

    def set_state(self, state: Any) -> None:
        arr = np.asarray(state, dtype=np.int64)
        if arr.shape != (2,):
            raise errors.ShapeError(errors.at_user(f"set_state: expected 2 int64 values, got {arr.shape}"))
        self._state._value[...] = arr

    def uniform(self, shape: tuple, dtype: DType, device: Any) -> Any:
        """Uniform [0, 1) values of `shape`: the `rand` primitive at this stream's counter."""
        n = math.prod(shape)
        if STATE.tracer is not None:
            offset = STATE.tracer.rng_draw(self, n)
            return apply(Op.RAND, self._state, shape=shape, dtype=dtype, offset=offset)
        state = self._state
        dev = as_device(device)
        if dev.type != "cpu":
            state = state.to(dev)
        out = apply(Op.RAND, state, shape=shape, dtype=dtype, offset=0)
        self._state._value[1] += n
        return out


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed the default generator (reproducible draws on every device, eager and compiled)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    s = int(time.time_ns()) & 0x7FFFFFFFFFFFFFFF
    default_generator.manual_seed(s)
    return s


def initial_seed() -> int:
    return default_generator.initial_seed()


def _float_dtype(dtype: Any) -> DType:
    dt = as_dtype(dtype) if dtype is not None else get_default_dtype()
    if not dt.is_floating:
        raise errors.DTypeError(errors.at_user(f"random: expected a floating dtype, got {dt.name}"))
    return dt


def _gen(generator: Generator | None) -> Generator:
    return generator if generator is not None else default_generator


def _finish(t: Any, requires_grad: bool) -> Any:
    return t.requires_grad_(True) if requires_grad else t


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform values in [0, 1)."""
    dt = _float_dtype(dtype)
    return _finish(_gen(generator).uniform(sizes(size), dt, device), requires_grad)


def _normal(shape: tuple, dt: DType, device: Any, generator: Generator | None) -> Any:
    # Box-Muller on one draw of 2n uniforms: the first half gives radii, the second angles.
    # NOTE: computed in float64 and rounded once, so that every backend (numpy's libm, the
    # compiler's polynomial log and cos) yields the same float32 values bit for bit.
    n = math.prod(shape)
    u = _gen(generator).uniform((2, n), DType.float64, device)
    r = ew.sqrt(ew.log(1.0 - u[0]) * -2.0)
    z = r * ew.cos(u[1] * (2 * math.pi))
    return ew.cast(z.reshape(shape), dt)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal values."""
    dt = _float_dtype(dtype)
    return _finish(_normal(sizes(size), dt, device, generator), requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None):
    """Integers uniform in [low, high)."""
    if high is None:
        low, high = 0, low
    elif size is None and isinstance(high, (tuple, list)):  # randint(high, size), as PyTorch
        low, high, size = 0, low, high
    if size is None:
        raise errors.ShapeError(errors.at_user("randint: give a size, e.g. randint(0, 10, (3,))"))
    if high <= low:
        raise errors.ShapeError(errors.at_user(f"randint: empty range [{low}, {high})"))
    u = _gen(generator).uniform(sizes((size,)), DType.float64, device)
    out = ew.floor(u * float(high - low)) + float(low)
    return ew.cast(out, as_dtype(dtype) if dtype is not None else DType.int64)


def rand_like(x, *, dtype=None, device=None, generator=None):
    return rand(x.shape, dtype=dtype or x.dtype, device=device or x.device, generator=generator)


def randn_like(x, *, dtype=None, device=None, generator=None):
    return randn(x.shape, dtype=dtype or x.dtype, device=device or x.device, generator=generator)


def randint_like(x, low, high=None, *, dtype=None, generator=None):
    return randint(low, high, x.shape, dtype=dtype or x.dtype, device=x.device,
                   generator=generator)


def normal(mean, std, size, *, generator=None, dtype=None, device=None):
    return _normal(sizes((size,)), _float_dtype(dtype), device, generator) * std + mean


def bernoulli_mask(shape: tuple, p_keep: float, like: Any, generator=None) -> Any:
    """A bool mask that is True with probability p_keep (dropout's mask)."""
    u = _gen(generator).uniform(tuple(shape), like.dtype if like.dtype.is_floating
                                else DType.float32, like.device)
    return u < p_keep


def randperm(n, *, generator=None, device=None, dtype=None):
    """A random permutation of 0..n-1 (argsort of uniform draws; eager only)."""
    u = _gen(generator).uniform((n,), DType.float64, "cpu")
    if STATE.tracer is not None:
        raise errors.TraceError(errors.at_user("randperm: needs a sort, which cannot be compiled yet"))
    perm = np.argsort(u._value, kind="stable").astype(np.int64)
    from hybrid.ops.creation import tensor

    return tensor(perm, device=device, dtype=dtype)
