"""Reference implementations of the primitives, written once against the array API that numpy
and CuPy share (`xp`). They are the spec: eager mode and the graph interpreter call them as is."""

from __future__ import annotations

import math
from typing import Any
from collections.abc import Callable

from compiler.errors import run_error
from compiler.ir.types import DType

# SplitMix64 constants (Steele, Lea, Flood 2014): the RNG is a counter-based hash, so element i of
# a draw at counter c is mix(key + (c + i + 1) * GAMMA) on every backend, eager or compiled.
GAMMA = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB

# the half-precision dtypes reductions accumulate in float32 (numpy and CuPy dtypes compare
# equal to these)
_BF16 = DType.bfloat16.np
_HALVES = (DType.float16.np, _BF16)


def splitmix_key(seed: int) -> int:
    """The 64-bit stream key of a seed (a scalar mix, so nearby seeds give unrelated streams)."""
    z = (seed * GAMMA + GAMMA) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * MIX1) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * MIX2) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def splitmix_uniform(xp: Any, seed: int, counters: Any, dtype: DType) -> Any:
    """The uniforms in [0, 1) of `dtype` at the 64-bit `counters` (an unsigned array) of the
    stream of `seed`: mix(key + counter * GAMMA), its top 53 (float64) or 24 bits. The one
    array form of the spec: the interpreter and the kernel evaluator both call it; the LLVM
    code generator emits the same arithmetic (codegen/llvm_cpu.py)."""
    # NOTE: in place, over chunks that stay in cache on numpy (3-10x faster than whole-array
    # temporaries, each a fresh 8 bytes per element), in one pass elsewhere (CuPy: one launch per
    # op); integer arithmetic and exact conversions, so the bits do not depend on the split
    u64 = xp.uint64
    key = u64(splitmix_key(seed))
    counters = xp.asarray(counters, dtype=u64)
    flat = counters.reshape(-1)
    wide = dtype is DType.float64
    out = xp.empty(flat.shape, dtype=xp.float64 if wide else xp.float32)
    chunk = _RNG_CHUNK if getattr(xp, "__name__", "") == "numpy" else max(flat.size, 1)
    z = xp.empty(min(flat.size, chunk), dtype=u64)
    t = xp.empty_like(z)
    for lo in range(0, flat.size, chunk):
        n = min(chunk, flat.size - lo)
        zc, tc, oc = z[:n], t[:n], out[lo:lo + n]
        xp.multiply(flat[lo:lo + n], u64(GAMMA), out=zc)
        xp.add(zc, key, out=zc)
        for shift, mult in ((30, MIX1), (27, MIX2)):
            xp.right_shift(zc, u64(shift), out=tc)
            xp.bitwise_xor(zc, tc, out=zc)
            xp.multiply(zc, u64(mult), out=zc)
        xp.right_shift(zc, u64(31), out=tc)
        xp.bitwise_xor(zc, tc, out=zc)
        xp.right_shift(zc, u64(11 if wide else 40), out=zc)
        oc[...] = zc  # below 2^53 (2^24): exact in float64 (float32)
        oc *= 2.0**-53 if wide else xp.float32(2.0**-24)
    out = out.reshape(counters.shape)
    return out if wide or dtype is DType.float32 else out.astype(dtype.np)


_RNG_CHUNK = 1 << 15  # counters per in-place chunk on numpy


def _numel(shape) -> int:
    return math.prod(shape)


def make_impls(xp, scatter_add: Callable) -> dict[str, Callable]:
    """Implementations keyed by primitive name, for one array module: the primitives whose row in
    the op table (ops.py) names no array-API or scipy.special function.

    `scatter_add(out, index_tuple, src)` is passed in because numpy and CuPy keep it outside the
    shared namespace (np.add.at / cupyx.scatter_add)."""
    u64 = xp.uint64

    def sigmoid(x):
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)

    def matmul(a, b):
        # NOTE: numpy multiplies a stack of transposed views (q @ k.transpose(-1, -2)) far
        # slower than a copy of it (0.43 vs 0.25 ms at (96, 64, 32)); 2-D views go to BLAS as is
        if a.ndim > 2 and not a.flags.c_contiguous:
            a = xp.ascontiguousarray(a)
        if b.ndim > 2 and not b.flags.c_contiguous:
            b = xp.ascontiguousarray(b)
        if a.dtype == _BF16:  # numpy's bfloat16 product is float32: accumulated, then rounded
            return xp.matmul(a, b).astype(a.dtype)
        return xp.matmul(a, b)

    def rsqrt(x):
        return 1 / xp.sqrt(x)

    def reduce(fn):
        def run(x, *, axes):
            if x.dtype in _HALVES:  # NOTE: accumulate half precision in float32, as PyTorch
                return fn(x, axis=axes, keepdims=True, dtype=xp.float32).astype(x.dtype)
            return fn(x, axis=axes, keepdims=True, dtype=x.dtype)

        return run

    def vmax(x, *, axes):
        return xp.max(x, axis=axes, keepdims=True)

    def pad(x, *, pads, value):
        shape = tuple(
            lo + hi + s + max(s - 1, 0) * it for s, (lo, hi, it) in zip(x.shape, pads)
        )
        out = xp.full(shape, value, dtype=x.dtype)
        region = tuple(slice(lo, lo + s + max(s - 1, 0) * it, it + 1)
                       for s, (lo, hi, it) in zip(x.shape, pads))
        out[region] = x
        return out

    def slice_(x, *, starts, stops, steps):
        return x[tuple(slice(b, e, s) for b, e, s in zip(starts, stops, steps))]

    # NOTE: gather / scatter / scatter_add take indices in [0, n) only (a negative index is an
    # error, not wrapped): ops that allow negative indices (x[i], take) wrap them before. Every
    # backend checks the same range (the native one with an error flag its kernels set).
    def check_index(op, idx, n, axis):
        if idx.size == 0:
            return
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            bad = lo if lo < 0 else hi
            raise run_error("index", f"{op}: index {bad} is out of bounds for dim {axis} with "
                            f"size {n} (valid: 0 <= index < {n})")

    def gather(x, idx, *, axis):
        check_index("gather", idx, x.shape[axis], axis)
        return xp.take(x, idx, axis=axis)

    def _where(axis, idx):
        return (slice(None),) * axis + (idx,)

    def scatter(x, idx, src, *, axis):
        check_index("scatter", idx, x.shape[axis], axis)
        out = x.copy()
        out[_where(axis, idx)] = src
        return out

    def scatter_add_(x, idx, src, *, axis):
        check_index("scatter_add", idx, x.shape[axis], axis)
        out = x.copy()
        scatter_add(out, _where(axis, idx), src)
        return out

    def iota(*, shape, dtype, axis):
        n = shape[axis]
        r = xp.arange(n, dtype=dtype.np).reshape((n,) + (1,) * (len(shape) - axis - 1))
        return xp.broadcast_to(r, shape).copy()

    def rand(state, *, shape, dtype, offset):
        # state = [seed, counter]; element i of this draw uses counter + offset + i + 1.
        start = (int(state[1]) + offset + 1) & 0xFFFFFFFFFFFFFFFF
        ctr = xp.arange(_numel(shape), dtype=u64) + u64(start)
        return splitmix_uniform(xp, int(state[0]), ctr, dtype).reshape(shape)

    def constant(*, value, shape, dtype):
        return xp.asarray(value.array, dtype=dtype.np).reshape(shape)

    def full(*, value, shape, dtype):
        return xp.full(shape, value, dtype=dtype.np)

    def copy(x):
        return xp.array(x, copy=True, order="C")

    def cast(x, *, dtype):
        return x.astype(dtype.np)

    def _no_int_zero(op, a, b):
        if a.dtype.kind in "iub" and b.dtype.kind in "iub" and not xp.all(b):
            raise run_error("zero_division", f"{op}: integer division by zero (PyTorch raises "
                            "ZeroDivisionError too); divide floats, or replace the zero "
                            "divisors first, e.g. where(b == 0, 1, b)")

    def floordiv(a, b):
        _no_int_zero("floor_divide", a, b)
        return xp.floor_divide(a, b)

    def remainder(a, b):
        _no_int_zero("remainder", a, b)
        return xp.remainder(a, b)

    def power(a, b):
        if b.dtype.kind not in "iu" or a.dtype.kind not in "iu":
            return xp.power(a, b)
        neg = b < 0
        if not xp.any(neg):
            return xp.power(a, b)
        # NOTE: PyTorch's integer power with tensor exponents: x ** -n truncates 1 / x ** n
        # (1 for x == 1, +-1 for x == -1, else 0); numpy refuses negative integer exponents.
        r = xp.power(a, xp.where(neg, 0, b))
        odd = (b % 2) != 0
        special = xp.where(a == 1, 1, xp.where(a == -1, xp.where(odd, -1, 1), 0))
        return xp.where(neg, special.astype(r.dtype), r)

    return {
        # unary
        "neg": xp.negative, "abs": xp.abs, "sign": xp.sign, "rsqrt": rsqrt, "sigmoid": sigmoid,
        "floor": xp.floor, "ceil": xp.ceil, "round": xp.round,
        "trunc": xp.trunc, "not": xp.logical_not, "copy": copy,
        # binary
        "add": xp.add, "sub": xp.subtract, "mul": xp.multiply, "div": xp.true_divide,
        "pow": power, "maximum": xp.maximum, "minimum": xp.minimum, "floordiv": floordiv,
        "remainder": remainder, "atan2": xp.arctan2,
        "and": xp.bitwise_and, "or": xp.bitwise_or, "xor": xp.bitwise_xor,
        "eq": xp.equal, "ne": xp.not_equal, "lt": xp.less, "le": xp.less_equal,
        "gt": xp.greater, "ge": xp.greater_equal,
        "where": xp.where, "cast": cast,
        # reductions (keep dims)
        "sum": reduce(xp.sum), "prod": reduce(xp.prod), "max": vmax,
        # movement
        "reshape": lambda x, *, shape: xp.reshape(x, shape),
        "permute": lambda x, *, perm: xp.transpose(x, perm),
        "expand": lambda x, *, shape: xp.broadcast_to(x, shape),
        "slice": slice_, "pad": pad,
        "concat": lambda *xs, axis: xp.concatenate(xs, axis=axis),
        # compute and indexing
        "matmul": matmul, "gather": gather, "scatter": scatter, "scatter_add": scatter_add_,
        # sources
        "constant": constant, "full": full, "iota": iota, "rand": rand,
    }
