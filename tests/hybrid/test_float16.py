"""float16 exactly: casts round to nearest even (ties, overflow, subnormals, signed zero, nan),
elementwise arithmetic and reductions equal float32 math rounded once to float16, gradients
against float64 formulas; eager and compiled on every backend.

Why these references: PyTorch (and hybrid) compute a float16 op in float32 and round the result
to float16, so the exact expectation of one op is numpy's float32 computation on the float16
inputs, cast with numpy's round-to-nearest-even. One float16 ulp is 2^-10 relative (~1e-3): a
tolerance of one ulp catches any real error (a +0.1 mistake is ~100 ulps at 1.0)."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid as h

F16 = np.float16
# Values whose float16 rounding is a tie or a boundary (2^-11 is half an ulp at 1.0).
TIES = [1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 2049.0, 2051.0, 65504.0, 65519.0, 65520.0,
        70000.0, -70000.0, 2**-24, 2**-25, 3 * 2**-26, 2**-14 - 2**-25, 6e-8, -0.0, 0.0, 0.1,
        1 / 3, np.pi, 1e-3, -12.34375, 4096.5]


def bits(a: np.ndarray) -> np.ndarray:
    """The float16 bit patterns (so -0.0 != 0.0 and nan payloads aside, exact)."""
    a = np.asarray(a, F16)
    return np.where(np.isnan(a), np.uint16(0x7E00), a.view(np.uint16))


def ulp16(want: np.ndarray) -> np.ndarray:
    """One float16 ulp at each expected value (the spacing to the next float16)."""
    return np.abs(np.spacing(np.asarray(want, F16))).astype(np.float64)


def run(fn, *args, mode: str):
    """fn(*args) eagerly, or compiled on the backend `run_mode` set."""
    return (fn if mode == "eager" else h.compile(fn))(*args)


# --- casts -------------------------------------------------------------------------------------


def _cast_sources():
    vals = np.array(TIES + [np.nan, np.inf, -np.inf])
    ints = np.array([0, 1, -1, 2047, 2049, 2051, 4097, 65504, 65519, 65520, 70000, -70000,
                     2**31 - 1])
    return {"float32": vals.astype(np.float32), "float64": vals, "int32": ints.astype(np.int32),
            "int64": ints.astype(np.int64) * np.array([1] * 12 + [2**20]),
            "bool": np.array([True, False, True])}


@pytest.mark.parametrize("src", ["float32", "float64", "int32", "int64", "bool"])
def test_cast_to_float16_rounds_to_nearest_even(src, run_mode):
    a = _cast_sources()[src]
    got = run(lambda t: t.half(), h.tensor(a), mode=run_mode)
    assert got.dtype is h.float16
    with np.errstate(over="ignore"):
        want = a.astype(F16)
    np.testing.assert_array_equal(bits(got.numpy()), bits(want), err_msg=str(a))


def test_cast_float64_to_float16_rounds_once(run_mode):
    """1 + 2^-11 + 2^-40 is just above a float16 tie: it rounds up to 1 + 2^-10. Rounding to
    float32 first (2^-40 is below float32's half ulp) makes it the tie, which goes to even, 1.0
    (the native backend did that until it rounded float64 -> float32 to odd)."""
    a = np.array([1 + 2**-11 + 2**-40, -(1 + 2**-11 + 2**-40), 2049 + 2**-30, 1 + 3 * 2**-11 - 2**-40])
    got = run(lambda t: t.half(), h.tensor(a), mode=run_mode)
    np.testing.assert_array_equal(bits(got.numpy()), bits(a.astype(F16)))


def test_cast_float64_to_float16_at_every_tie(run_mode):
    """Every midpoint between consecutive finite float16 values, exactly and nudged by 2^-40
    relative either way, both signs, plus nan, inf, overflow and values below half's range."""
    lo = np.arange(0, 0x7BFF, dtype=np.uint16).view(F16).astype(np.float64)
    hi = np.arange(1, 0x7C00, dtype=np.uint16).view(F16).astype(np.float64)
    mid = (lo + hi) / 2
    a = np.concatenate([mid, mid * (1 + 2**-40), mid * (1 - 2**-40), -mid,
                        [np.nan, np.inf, -np.inf, 1e300, -1e300, 65520.0, 2.9e-8, 1e-320]])
    got = run(lambda t: t.half(), h.tensor(a), mode=run_mode)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(bits(got.numpy()), bits(a.astype(F16)))


def test_cast_from_float16_is_exact(run_mode):
    every = np.arange(2**16, dtype=np.uint16).view(F16)  # every float16 value
    got = run(lambda t: (t.float(), t.double()), h.tensor(every), mode=run_mode)
    np.testing.assert_array_equal(got[0].numpy(), every.astype(np.float32))
    np.testing.assert_array_equal(got[1].numpy(), every.astype(np.float64))
    finite = every[np.isfinite(every)]
    got = run(lambda t: t.long(), h.tensor(finite), mode=run_mode)
    np.testing.assert_array_equal(got.numpy(), np.trunc(finite.astype(np.float64)).astype(np.int64))


# --- arithmetic and reductions -----------------------------------------------------------------

ELEMENTWISE = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "maximum": (lambda a, b: h.maximum(a, b), np.maximum),
    "neg": (lambda a, b: -a, lambda a, b: -a),
    "abs": (lambda a, b: a.abs(), lambda a, b: np.abs(a)),
    "exp": (lambda a, b: a.exp(), lambda a, b: np.exp(a)),
    "log": (lambda a, b: a.abs().log(), lambda a, b: np.log(np.abs(a))),
    "sqrt": (lambda a, b: b.abs().sqrt(), lambda a, b: np.sqrt(np.abs(b))),
    "sin": (lambda a, b: a.sin(), lambda a, b: np.sin(a)),
    "tanh": (lambda a, b: a.tanh(), lambda a, b: np.tanh(a)),
    "sigmoid": (lambda a, b: a.sigmoid(), lambda a, b: 1 / (1 + np.exp(-a))),
    "square_plus": (lambda a, b: a * a + b, lambda a, b: a * a + b),  # one fused kernel natively
    "scalar": (lambda a, b: a * 0.5 + 3.0, lambda a, b: a * np.float32(0.5) + np.float32(3.0)),
}


def _f16_inputs():
    rng = np.random.default_rng(16)
    a = (rng.standard_normal(257) * 4).astype(F16)
    b = (rng.standard_normal(257) * 4).astype(F16)
    b[b == 0] = F16(0.5)
    return a, b


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_float16_elementwise_is_float32_math_rounded_once(name, run_mode):
    op, ref = ELEMENTWISE[name]
    a, b = _f16_inputs()
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    with np.errstate(all="ignore"):
        want = np.asarray(ref(a32, b32), np.float32).astype(F16)
        if name == "square_plus" and run_mode != "native":
            # two ops, two roundings (a fused native kernel rounds once, at its store)
            want = ((a32 * a32).astype(F16).astype(np.float32) + b32).astype(F16)
    got = run(op, h.tensor(a), h.tensor(b), mode=run_mode)
    assert got.dtype is h.float16
    err = np.abs(got.numpy().astype(np.float64) - want.astype(np.float64))
    if name in ("add", "sub", "mul", "div", "maximum", "neg", "abs", "scalar", "square_plus"):
        ulps = 0  # one rounding of a correctly rounded float32 result
    elif name == "sigmoid" and run_mode != "native":
        # NOTE: the reference sigmoid (compiler/ir/reference.py) computes exp, 1 + e and the
        # quotient each in float16: up to 2 ulps (PyTorch computes it in float32: 1 ulp)
        ulps = 2
    else:
        ulps = 1  # float32 libm / polynomial results near a float16 tie may round either way
    assert np.all(err <= ulps * ulp16(want)), (name, np.max(err / ulp16(want)))


REDUCTIONS = {
    "sum": (lambda t: t.sum(1), lambda x: x.sum(1)),
    "mean": (lambda t: t.mean(0), lambda x: x.mean(0)),
    "amax": (lambda t: t.amax(1), lambda x: x.max(1)),
    "amin": (lambda t: t.amin(0), lambda x: x.min(0)),
    "prod": (lambda t: t.prod(1), lambda x: x.prod(1)),
    "logsumexp": (lambda t: h.logsumexp(t, 1), lambda x: np.log(np.exp(x).sum(1))),
    "var": (lambda t: t.var(0), lambda x: x.var(0, ddof=1)),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_float16_reductions_accumulate_in_float32(name, run_mode):
    op, ref = REDUCTIONS[name]
    x = (np.random.default_rng(17).standard_normal((37, 53)) * 2).astype(F16)
    if name == "prod":
        x = (x * F16(0.125) + F16(1.0)).astype(F16)  # products of numbers near 1 stay finite
    want = np.asarray(ref(x.astype(np.float64))).astype(F16)  # float64 stands in for exact
    got = run(op, h.tensor(x), mode=run_mode)
    assert got.dtype is h.float16
    err = np.abs(got.numpy().astype(np.float64) - want.astype(np.float64))
    # a float32 accumulator is exact to ~1e-7 of sum|x|: one ulp of the result, plus that
    slack = ulp16(want) + 1e-6 * np.abs(x.astype(np.float64)).sum()
    assert np.all(err <= slack), (name, np.max(err / ulp16(want)))


def test_a_wrong_float16_answer_fails_these_checks():
    """The tolerance above is tight: a +0.1 error (what atol 0.2 let through) is caught."""
    a, b = _f16_inputs()
    want = (a.astype(np.float32) + b.astype(np.float32)).astype(F16)
    wrong = (want.astype(np.float32) + 0.1).astype(F16)
    assert not np.all(np.abs(wrong.astype(np.float64) - want) <= ulp16(want))
    assert not np.array_equal(bits(wrong), bits(want))


# --- gradients ---------------------------------------------------------------------------------


def test_float16_gradients_match_float64_formulas(run_mode):
    a, b = _f16_inputs()

    def step(x, y):
        loss = (x.sin() * x + (y * x).tanh()).sum()
        loss.backward()
        return loss

    x = h.tensor(a, requires_grad=True)
    y = h.tensor(b, requires_grad=True)
    run(step, x, y, mode=run_mode)
    assert x.grad.dtype is h.float16 and y.grad.dtype is h.float16
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    sech2 = 1 - np.tanh(a64 * b64) ** 2
    want_x = np.sin(a64) + a64 * np.cos(a64) + b64 * sech2
    want_y = a64 * sech2
    mag_x = np.abs(np.sin(a64)) + np.abs(a64 * np.cos(a64)) + np.abs(b64 * sech2)
    # each term is rounded to float16 a few times before the sum (which may cancel); tanh's
    # gradient 1 - t^2 uses the stored float16 t, off by up to 2 * 2^-11 (PyTorch's too)
    for got, want, mag, other in ((x.grad, want_x, mag_x, b64), (y.grad, want_y, want_y, a64)):
        err = np.abs(got.numpy().astype(np.float64) - want)
        tol = 4 * ulp16(np.abs(mag)) + ulp16(want) + 2e-3 * np.abs(other)
        assert np.all(err <= tol), np.max(err - tol)
