"""compiler/codegen/llvm_math: accuracy (ulp vs numpy float64), special values, vectorization.

Each function is put in a scalar loop `for i: out[i] = fn(x[i])`, optimized at O3 for the host
and JIT-compiled; the loop vectorizer has to widen it, which the assembly checks confirm.
"""

from __future__ import annotations

import ctypes
import platform
import re

import numpy as np
import pytest
import scipy.special as sp
from llvmlite import ir

from compiler.codegen import jit, llvm_math

# Max ulp error measured on the sweeps below (x86-64 znver4, llvmlite 0.50), with some margin.
ULP_BOUND_F32 = {
    "exp": 2, "log": 2, "log1p": 3, "expm1": 3, "tanh": 3, "sigmoid": 3,
    "erf": 3, "sin": 2, "cos": 2, "atan2": 3, "pow": 1,
}  # fmt: skip
ULP_BOUND_F64 = {"exp": 2, "log": 2, "log1p": 3, "expm1": 3, "tanh": 5, "sigmoid": 3}


def _sigmoid64(x):
    # scipy's expit gives 0 below x = -709 where the true value is still a subnormal double.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1.0 + e)


REFERENCE = {
    "exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1, "tanh": np.tanh,
    "sigmoid": _sigmoid64, "erf": sp.erf, "sin": np.sin, "cos": np.cos, "atan2": np.arctan2,
    "pow": np.power,
}  # fmt: skip

_NP = {"f32": np.float32, "f64": np.float64}
_CT = {"f32": ctypes.c_float, "f64": ctypes.c_double}


def _ptr_type(elem: ir.Type) -> ir.Type:
    try:
        return ir.PointerType()  # opaque pointers (llvmlite >= 0.45 / LLVM >= 15)
    except TypeError:
        return ir.PointerType(elem)


def loop_ir(name: str, dtype: str) -> str:
    """IR for `void f(T* out, T* a[, T* b], i64 n) { for i: out[i] = fn(a[i][, b[i]]) }`."""
    fn, arity, _ = llvm_math.FUNCTIONS[name]
    elem = {"f32": ir.FloatType(), "f64": ir.DoubleType()}[dtype]
    i64 = ir.IntType(64)
    ptr = _ptr_type(elem)
    module = ir.Module(name=f"test_{name}")
    func = ir.Function(module, ir.FunctionType(ir.VoidType(), [ptr] * (arity + 1) + [i64]), "f")
    for arg in func.args[:-1]:
        arg.add_attribute("noalias")
    out, ins, n = func.args[0], func.args[1 : arity + 1], func.args[-1]
    entry, body, done = (func.append_basic_block(s) for s in ("entry", "body", "done"))
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(i64, 0)), body, done)
    b.position_at_end(body)
    i = b.phi(i64)
    i.add_incoming(ir.Constant(i64, 0), entry)
    args = [b.load(b.gep(p, [i], source_etype=elem), typ=elem) for p in ins]
    b.store(fn(b, *args), b.gep(out, [i], source_etype=elem))
    nxt = b.add(i, ir.Constant(i64, 1))
    i.add_incoming(nxt, body)
    b.cbranch(b.icmp_signed("<", nxt, n), body, done)
    b.position_at_end(done)
    b.ret_void()
    return str(module)


_CACHE: dict[tuple[str, str], object] = {}


def compiled(name: str, dtype: str = "f32"):
    """A numpy-callable kernel for `name` (cached per test session)."""
    key = (name, dtype)
    if key not in _CACHE:
        engine, addrs = jit.compile_module(loop_ir(name, dtype))
        arity = llvm_math.FUNCTIONS[name][1]
        ptr = ctypes.POINTER(_CT[dtype])
        cfunc = ctypes.CFUNCTYPE(None, *([ptr] * (arity + 1)), ctypes.c_int64)(addrs["f"])

        def call(*xs, _engine=engine, _cfunc=cfunc):
            xs = [np.ascontiguousarray(x, dtype=_NP[dtype]) for x in np.broadcast_arrays(*xs)]
            out = np.empty_like(xs[0])
            _cfunc(*(a.ctypes.data_as(ptr) for a in (out, *xs)), out.size)
            return out

        _CACHE[key] = call
    return _CACHE[key]


def ulp_error(got: np.ndarray, ref64: np.ndarray, dtype: str = "f32") -> np.ndarray:
    """Distance in ulps between `got` and the float64 reference rounded to `dtype`.

    NaN vs NaN and inf vs equal inf count 0; NaN vs a number counts as a huge error."""
    np_t = _NP[dtype]
    with np.errstate(over="ignore"):
        ref = ref64.astype(np_t)
    itype = np.int32 if dtype == "f32" else np.int64

    def ordered(v):
        i = v.view(itype).astype(np.int64)
        return np.where(i < 0, np.iinfo(itype).min - i, i)

    err = np.abs(ordered(got) - ordered(ref)).astype(np.float64)
    both_nan = np.isnan(got) & np.isnan(ref)
    one_nan = np.isnan(got) ^ np.isnan(ref)
    return np.where(both_nan, 0.0, np.where(one_nan, np.inf, err))


def sweep(name: str, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Dense inputs for `name`: linear over the useful range plus log-spaced magnitudes."""

    def mags(lo, hi, k):
        v = np.logspace(lo, hi, k)
        return np.concatenate([v, -v])

    lin = {
        "exp": (-104, 89), "log": (0, 100), "log1p": (-1, 10), "expm1": (-20, 89),
        "tanh": (-10, 10), "sigmoid": (-110, 90), "erf": (-5, 5), "sin": (-100, 100),
        "cos": (-100, 100),
    }  # fmt: skip
    if name == "atan2":
        y = np.concatenate([rng.uniform(-10, 10, 400_000), mags(-30, 30, 100_000)])
        x = np.concatenate([rng.uniform(-10, 10, 400_000), rng.permutation(mags(-30, 30, 100_000))])
        return y.astype(np.float32), x.astype(np.float32)
    if name == "pow":
        x = np.concatenate([rng.uniform(0, 10, 300_000), np.logspace(-30, 30, 100_000)])
        y = np.concatenate([rng.uniform(-20, 20, 300_000), rng.uniform(-3, 3, 100_000)])
        xi = rng.uniform(-10, 10, 100_000)
        yi = rng.integers(-20, 21, 100_000).astype(np.float64)
        return (np.concatenate([x, xi]).astype(np.float32),
                np.concatenate([y, yi]).astype(np.float32))  # fmt: skip
    lo, hi = lin[name]
    x = np.concatenate([np.linspace(lo, hi, 800_000), mags(-44, 1.9, 100_000)])
    if name in ("log",):
        x = np.concatenate([np.abs(x), np.logspace(-45, 38.5, 200_000)])
    if name in ("sin", "cos"):
        x = np.concatenate([x, mags(2, 7, 100_000)])
    if name == "log1p":
        x = x[x >= -1]
    return (x.astype(np.float32),)


@pytest.mark.parametrize("name", sorted(ULP_BOUND_F32))
def test_f32_max_ulp_error(name):
    xs = sweep(name, np.random.default_rng(0))
    got = compiled(name)(*xs)
    with np.errstate(all="ignore"):
        ref = REFERENCE[name](*(x.astype(np.float64) for x in xs))
    err = ulp_error(got, ref)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_BOUND_F32[name], (
        f"{name}: {err[worst]} ulp at x={[x[worst] for x in xs]}: got {got[worst]!r}, "
        f"want {ref[worst]!r}"
    )


@pytest.mark.parametrize("name", sorted(ULP_BOUND_F64))
def test_f64_max_ulp_error(name):
    rng = np.random.default_rng(1)
    lo, hi = {"exp": (-745, 709), "log": (0, 1e6), "log1p": (-1, 100), "expm1": (-40, 709),
              "tanh": (-20, 20), "sigmoid": (-745, 745)}[name]  # fmt: skip
    x = np.concatenate([rng.uniform(lo, hi, 300_000), np.logspace(-300, 2, 50_000),
                        -np.logspace(-300, 2, 50_000)])  # fmt: skip
    if name == "log":
        x = np.abs(x)
    if name == "log1p":
        x = x[x >= -1]
    got = compiled(name, "f64")(x)
    with np.errstate(all="ignore"):
        ref = REFERENCE[name](x)
    err = ulp_error(got, ref, "f64")
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_BOUND_F64[name], f"{name}: {err[worst]} ulp at x={x[worst]!r}"


INF, NAN = float("inf"), float("nan")
SPECIAL = np.array([INF, -INF, NAN, 0.0, -0.0, 1.0, -1.0, 3e38, -3e38, 1e-45, -1e-45, 1e-38,
                    -1e-38, 88.8, -88.8, 100.0, -100.0, 1e-4, -1e-4, 0.5, 2.0], np.float32)  # fmt: skip


@pytest.mark.parametrize("name", ["exp", "log", "log1p", "expm1", "tanh", "sigmoid", "erf",
                                  "sin", "cos"])  # fmt: skip
def test_f32_special_values(name):
    got = compiled(name)(SPECIAL)
    with np.errstate(all="ignore"):
        want = REFERENCE[name](SPECIAL.astype(np.float64)).astype(np.float32)
    # Exact for non-finite and zero results (incl. the sign of zero), else within the sweep bound.
    exact = ~np.isfinite(want) | (want == 0)
    np.testing.assert_array_equal(got[exact], want[exact])
    signed = exact & ~np.isnan(want)  # (the sign of a NaN is unspecified)
    np.testing.assert_array_equal(np.signbit(got[signed]), np.signbit(want[signed]))
    accurate = (
        np.abs(SPECIAL) < llvm_math.SINCOS_MAX_ACCURATE_ARG if name in ("sin", "cos") else ...
    )
    assert ulp_error(got[accurate], want[accurate].astype(np.float64)).max() <= ULP_BOUND_F32[name]
    if name in ("sin", "cos"):  # no reduction for huge |x|, but results stay bounded
        assert np.all(np.abs(got[np.isfinite(SPECIAL)]) <= 1)


def test_f32_named_cases():
    assert compiled("exp")(np.float32([100, -110])).tolist() == [INF, 0.0]
    assert compiled("log")(np.float32([0, -1])).tolist()[0] == -INF
    tanh = compiled("tanh")(np.float32([1e-4, -1e-4, 20, -20, 1e30]))
    assert abs(tanh[0] / np.tanh(1e-4) - 1) < 1e-7 and tanh[1] == -tanh[0]
    assert tanh[2:].tolist() == [1.0, -1.0, 1.0]
    assert compiled("sigmoid")(np.float32([-1e30, 1e30, -200, 200])).tolist() == [0, 1, 0, 1]
    assert compiled("erf")(np.float32([10, -10, INF, -INF])).tolist() == [1, -1, 1, -1]


def test_pow_special_values():
    vals = np.float32([0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, INF, -INF, NAN,
                       2.5, -2.5, 1e-45, 1e20])  # fmt: skip
    x, y = (a.ravel() for a in np.meshgrid(vals, vals))
    got = compiled("pow")(x, y)
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64)).astype(np.float32)
    err = ulp_error(got, want.astype(np.float64))
    bad = np.flatnonzero(err > 1)
    assert bad.size == 0, [(x[i], y[i], got[i], want[i]) for i in bad[:10]]
    signs_differ = (np.signbit(got) != np.signbit(want)) & ~np.isnan(want)
    assert not signs_differ.any(), [(x[i], y[i], got[i]) for i in np.flatnonzero(signs_differ)]


def test_atan2_special_values():
    vals = np.float32([0.0, -0.0, 1.0, -1.0, 1e-45, -1e-45, 3e38, -3e38, INF, -INF, NAN])
    y, x = (a.ravel() for a in np.meshgrid(vals, vals))
    got = compiled("atan2")(y, x)
    want = np.arctan2(y.astype(np.float64), x.astype(np.float64))
    assert ulp_error(got, want).max() <= ULP_BOUND_F32["atan2"]
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want.astype(np.float32)))


def test_supports():
    assert llvm_math.supports("exp", "f32") and llvm_math.supports("exp", "f64")
    assert llvm_math.supports("erf", "f32") and not llvm_math.supports("erf", "f64")
    assert not llvm_math.supports("lgamma", "f32")


# (target cpu, features) pairs the vectorization test runs on: the host, and baseline x86-64
# (SSE2, no FMA/SSE4.1) as a stand-in for older CI machines.
TARGETS = {"host": (None, None), "x86-64-baseline": ("x86-64", "")}


def _packed_simd_pattern(features: str) -> str:
    """Packed single-precision ops on the widest registers the target uses."""
    if "+avx" in features.split(","):
        return r"\bv\w+ps\s+.*%[yz]mm"
    return r"\b\w+ps\s+%xmm\d+, %xmm\d+"


@pytest.mark.parametrize("target", sorted(TARGETS))
@pytest.mark.parametrize("name,libm", [("exp", "expf"), ("tanh", "tanhf"), ("erf", "erff")])
def test_loop_is_vectorized(name, libm, target):
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("assembly patterns are for x86-64")
    cpu, features = TARGETS[target]
    tm = jit.target_machine(cpu, features)
    features = jit.host_features() if features is None else features
    asm = tm.emit_assembly(jit.optimize(jit.parse(loop_ir(name, "f32")), tm))
    assert re.search(_packed_simd_pattern(features), asm), f"no packed SIMD in {name} loop:\n{asm}"
    code = re.sub(r"#.*", "", asm)
    assert not re.search(rf"\b{libm}\b", code)
    assert not re.search(r"\bcall", code), "the loop still calls out"


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "erf", "sin", "atan2"])
def test_f32_accuracy_without_fma(name):
    """The algorithms do not depend on fused multiply-adds (baseline x86-64 has none)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("baseline target is x86-64")
    _engine, addrs = jit.compile_module(loop_ir(name, "f32"), *TARGETS["x86-64-baseline"])
    arity = llvm_math.FUNCTIONS[name][1]
    ptr = ctypes.POINTER(ctypes.c_float)
    cfunc = ctypes.CFUNCTYPE(None, *([ptr] * (arity + 1)), ctypes.c_int64)(addrs["f"])
    xs = [x[::7].copy() for x in sweep(name, np.random.default_rng(2))]
    out = np.empty_like(xs[0])
    cfunc(*(a.ctypes.data_as(ptr) for a in (out, *xs)), out.size)
    with np.errstate(all="ignore"):
        ref = REFERENCE[name](*(x.astype(np.float64) for x in xs))
    assert ulp_error(out, ref).max() <= ULP_BOUND_F32[name]
