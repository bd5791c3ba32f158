"""The OpInfo rows of the elementwise ops (unary, binary arithmetic, comparisons, logical and
bitwise, casts), checked by tests/hybrid/test_ops.py."""

from __future__ import annotations

import math

import numpy as np
from _ops_helpers import (
    B8,
    BINARY_SHAPES,
    F16,
    F32,
    F64,
    FLOATS,
    I32,
    I64,
    INTS,
    UNARY_SHAPES,
    OpInfo,
    S,
    _rev_binary,
    as_float,
    binary,
    both,
    mask,
    to_bool,
    unary,
    values,
)

import hybrid


def np_erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def np_erfc(x):
    return np.vectorize(math.erfc, otypes=[np.float64])(x)


def ref_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def ref_round(x):
    return np.round(x)  # half to even, as PyTorch


# --- the table ----------------------------------------------------------------------------------

OPS: list[OpInfo] = []


def add(*infos: OpInfo) -> None:
    OPS.extend(infos)


add(
    OpInfo("neg", hybrid.neg, np.negative, unary(), FLOATS + INTS),
    OpInfo("neg_dunder", lambda x: -x, np.negative, unary()),
    OpInfo("abs", hybrid.abs, np.abs, unary("nonzero"), FLOATS + INTS),
    OpInfo("sign", hybrid.sign, np.sign, unary("nonzero"), FLOATS + INTS),
    OpInfo("exp", hybrid.exp, np.exp, unary()),
    OpInfo("exp_int", hybrid.exp, np.exp, unary(), INTS, grad=False, out_dtype=as_float,
           rtol=1e-5, atol=1e-3),
    OpInfo("exp2", hybrid.exp2, np.exp2, unary()),
    OpInfo("log", hybrid.log, np.log, unary("pos")),
    OpInfo("log2", hybrid.log2, np.log2, unary("pos")),
    OpInfo("log10", hybrid.log10, np.log10, unary("pos")),
    OpInfo("sqrt", hybrid.sqrt, np.sqrt, unary("pos")),
    OpInfo("sqrt_int", hybrid.sqrt, np.sqrt, unary("pos"), INTS, grad=False, out_dtype=as_float),
    OpInfo("rsqrt", hybrid.rsqrt, lambda x: 1 / np.sqrt(x), unary("pos")),
    OpInfo("sin", hybrid.sin, np.sin, unary()),
    OpInfo("cos", hybrid.cos, np.cos, unary()),
    OpInfo("tan", hybrid.tan, np.tan, unary("unit")),
    OpInfo("tanh", hybrid.tanh, np.tanh, unary()),
    OpInfo("sigmoid", hybrid.sigmoid, ref_sigmoid, unary()),
    OpInfo("sigmoid_wide", hybrid.sigmoid, ref_sigmoid,
           lambda rng, dt: [S(np.array([-800.0, -30.0, 0.0, 30.0, 800.0]))], (F64,), grad=False),
    OpInfo("erf", hybrid.erf, np_erf, unary()),
    OpInfo("erfc", hybrid.erfc, np_erfc, unary()),
    OpInfo("log1p", hybrid.log1p, np.log1p, unary("unit")),
    OpInfo("expm1", hybrid.expm1, np.expm1, unary()),
    OpInfo("reciprocal", hybrid.reciprocal, lambda x: 1 / x, unary("nonzero")),
    OpInfo("square", hybrid.square, np.square, unary(), FLOATS + INTS),
    OpInfo("floor", hybrid.floor, np.floor, unary("frac"), FLOATS + INTS),
    OpInfo("ceil", hybrid.ceil, np.ceil, unary("frac"), FLOATS + INTS),
    OpInfo("round", hybrid.round, ref_round, unary("frac"), FLOATS + INTS),
    OpInfo("round_half_even", hybrid.round, ref_round,
           lambda rng, dt: [S(np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]))], grad=False),
    OpInfo("trunc", hybrid.trunc, np.trunc, unary("frac"), FLOATS + INTS),
    OpInfo("relu", hybrid.relu, lambda x: np.maximum(x, 0), unary("nonzero"), FLOATS + INTS),
    OpInfo("isnan", hybrid.isnan, np.isnan,
           lambda rng, dt: [S(np.array([1.0, np.nan, np.inf, -np.inf, 0.0])), S(np.array(np.nan)),
                            S(np.zeros((0, 2)))], grad=False, out_dtype=to_bool),
    OpInfo("isinf", hybrid.isinf, np.isinf,
           lambda rng, dt: [S(np.array([1.0, np.nan, np.inf, -np.inf, 0.0])), S(np.array(np.inf))],
           grad=False, out_dtype=to_bool),
    OpInfo("isfinite", hybrid.isfinite, np.isfinite,
           lambda rng, dt: [S(np.array([1.0, np.nan, np.inf, -np.inf, 0.0])), S(np.array(2.0))],
           grad=False, out_dtype=to_bool),
    OpInfo("isnan_int", hybrid.isnan, np.isnan, unary("int"), INTS, grad=False, out_dtype=to_bool),
    OpInfo("isfinite_int", hybrid.isfinite, np.isfinite, unary("int"), INTS, grad=False,
           out_dtype=to_bool),
    OpInfo("nan_to_num", lambda x: hybrid.nan_to_num(x, nan=0.5, posinf=9.0, neginf=-9.0),
           lambda x: np.nan_to_num(x, nan=0.5, posinf=9.0, neginf=-9.0),
           lambda rng, dt: [S(np.array([1.0, np.nan, np.inf, -np.inf, 0.0]))], grad=False),
    OpInfo("logical_not", hybrid.logical_not, np.logical_not, unary("any"), FLOATS + INTS + (B8,),
           grad=False, out_dtype=to_bool),
    OpInfo("bitwise_not", hybrid.bitwise_not, np.invert, unary("int"), INTS + (B8,), grad=False),
    OpInfo("invert_dunder", lambda x: ~x, np.invert, unary("int"), INTS + (B8,), grad=False),
)

# binary arithmetic
add(
    OpInfo("add", hybrid.add, np.add, both(binary(), _rev_binary()), FLOATS + INTS),
    OpInfo("add_dunder", lambda a, b: a + b, np.add, both(binary(), _rev_binary()),
           FLOATS + INTS),
    OpInfo("add_alpha", lambda a, b: hybrid.add(a, b, alpha=2), lambda a, b: a + 2 * b, binary()),
    OpInfo("sub", hybrid.sub, np.subtract, both(binary(), _rev_binary()), FLOATS + INTS),
    OpInfo("sub_dunder", lambda a, b: a - b, np.subtract, both(binary(), _rev_binary()),
           FLOATS + INTS),
    OpInfo("sub_alpha", lambda a, b: hybrid.sub(a, b, alpha=3), lambda a, b: a - 3 * b, binary()),
    OpInfo("mul", hybrid.mul, np.multiply, both(binary(), _rev_binary()), FLOATS + INTS),
    OpInfo("mul_dunder", lambda a, b: a * b, np.multiply, both(binary(), _rev_binary()),
           FLOATS + INTS),
    OpInfo("div", hybrid.div, np.divide, both(binary("any", "nonzero"), _rev_binary("nonzero"))),
    OpInfo("div_dunder", lambda a, b: a / b, np.divide,
           both(binary("any", "nonzero"), _rev_binary("nonzero"))),
    OpInfo("div_int", hybrid.div, np.divide, binary("int", "nonzero", scalars=(2, 3)), INTS,
           grad=False, out_dtype=as_float),
    OpInfo("div_floor", lambda a, b: hybrid.div(a, b, rounding_mode="floor"),
           lambda a, b: np.floor(a / b), binary("any", "nonzero"), grad=False),
    OpInfo("div_floor_int", lambda a, b: hybrid.div(a, b, rounding_mode="floor"),
           lambda a, b: np.floor_divide(a, b), binary("int", "nonzero", scalars=(2, -3)), INTS,
           grad=False),
    OpInfo("div_trunc", lambda a, b: hybrid.div(a, b, rounding_mode="trunc"),
           lambda a, b: np.trunc(a / b), binary("any", "nonzero"), grad=False),
    OpInfo("div_trunc_int", lambda a, b: hybrid.div(a, b, rounding_mode="trunc"),
           lambda a, b: np.trunc(a / b), binary("int", "nonzero", scalars=(2, -3)), INTS,
           grad=False),
    OpInfo("floor_divide", hybrid.floor_divide, lambda a, b: np.floor(a / b),
           binary("any", "nonzero"), grad=False),
    OpInfo("floor_divide_int", lambda a, b: a // b, np.floor_divide,
           binary("int", "nonzero", scalars=(2, -3)), INTS, grad=False),
    OpInfo("remainder", hybrid.remainder, np.remainder, binary("any", "nonzero")),
    OpInfo("remainder_int", lambda a, b: a % b, np.remainder,
           binary("int", "nonzero", scalars=(4, -3)), INTS, grad=False),
    OpInfo("pow_scalar_exp", hybrid.pow, np.power,
           lambda rng, dt: [S(values(rng, s, "pos"), e) for s in UNARY_SHAPES
                            for e in (2, 3, 0.5, 2.5, -1.0, 1, 0)]),
    OpInfo("pow_dunder", lambda a, b: a ** b, np.power,
           lambda rng, dt: [S(values(rng, (3, 4), "pos"), 1.5), S(values(rng, (3,), "pos"),
                                                                 values(rng, (2, 3), "unit"))]),
    OpInfo("pow_scalar_base", hybrid.pow, np.power,
           lambda rng, dt: [S(2.0, values(rng, s)) for s in UNARY_SHAPES]
           + [S(0.5, values(rng, (4,)))]),
    OpInfo("rpow_dunder", lambda a, b: a ** b, np.power,
           lambda rng, dt: [S(3.0, values(rng, (2, 3)))]),
    OpInfo("pow_tensor", hybrid.pow, np.power,
           lambda rng, dt: [S(values(rng, sa, "pos"), values(rng, sb, "any"))
                            for sa, sb in BINARY_SHAPES]),
    OpInfo("pow_int", hybrid.pow, np.power,
           lambda rng, dt: [S(values(rng, (3, 4), "int", dt), 2), S(values(rng, (3,), "int", dt), 3),
                            S(values(rng, (3,), "int", dt), np.array([0, 1, 2]))], INTS, grad=False),
    OpInfo("maximum", hybrid.maximum, np.maximum, binary(scalars=()), FLOATS + INTS),
    OpInfo("minimum", hybrid.minimum, np.minimum, binary(scalars=()), FLOATS + INTS),
    OpInfo("atan2", hybrid.atan2, np.arctan2, binary("nonzero", "nonzero", scalars=())),
    OpInfo("lerp", hybrid.lerp, lambda a, b, w: a + w * (b - a),
           lambda rng, dt: [S(values(rng, (3, 4)), values(rng, (4,)), 0.3),
                            S(values(rng, (3, 4)), values(rng, (3, 4)), values(rng, (3, 1), "unit")),
                            S(values(rng, ()), values(rng, ()), 0.7)]),
    OpInfo("clamp", hybrid.clamp, lambda x, lo=None, hi=None: np.clip(x, lo, hi),
           lambda rng, dt: [S(values(rng, (3, 4)), -0.5, 0.75), S(values(rng, (5,)), -0.5),
                            S(values(rng, ()), None, 0.5), S(values(rng, (0, 2)), -1.0, 1.0)],
           FLOATS),
    OpInfo("clamp_tensor", lambda x, lo, hi: hybrid.clamp(x, lo, hi), np.clip,
           lambda rng, dt: [S(values(rng, (3, 4)), values(rng, (4,), "unit") - 1.2,
                              values(rng, (3, 1), "unit") + 1.2)]),
    OpInfo("clamp_int", lambda x: hybrid.clamp(x, -3, 4), lambda x: np.clip(x, -3, 4),
           unary("int"), INTS, grad=False),
    OpInfo("where", hybrid.where, np.where,
           lambda rng, dt: [S(mask(rng.random((3, 4)) < 0.5), values(rng, (3, 4)),
                              values(rng, (4,))),
                            S(mask(rng.random((3, 1)) < 0.5), values(rng, (1, 4)), 0.5),
                            S(mask(rng.random(()) < 0.5), values(rng, ()), values(rng, (2,))),
                            S(mask(np.zeros((0, 3))), values(rng, (0, 3)), -1.0)]),
    OpInfo("where_int", hybrid.where, np.where,
           lambda rng, dt: [S(mask(rng.random((3, 4)) < 0.5), values(rng, (3, 4), "int", dt),
                              values(rng, (4,), "int", dt))], INTS, grad=False),
)

# comparisons, logical and bitwise
for _name, _fn, _ref in [("eq", hybrid.eq, np.equal), ("ne", hybrid.ne, np.not_equal),
                         ("lt", hybrid.lt, np.less), ("le", hybrid.le, np.less_equal),
                         ("gt", hybrid.gt, np.greater), ("ge", hybrid.ge, np.greater_equal)]:
    add(OpInfo(_name, _fn, _ref, binary("int", "int", scalars=(2, 0.5)), FLOATS + INTS,
               grad=False, out_dtype=to_bool))
add(
    OpInfo("lt_dunder", lambda a, b: a < b, np.less, binary(), FLOATS, grad=False,
           out_dtype=to_bool),
    OpInfo("eq_dunder", lambda a, b: a == b, np.equal, binary("int", "int"), FLOATS + INTS,
           grad=False, out_dtype=to_bool),
    OpInfo("ge_dunder", lambda a, b: a >= b, np.greater_equal, binary("int", "int"), INTS,
           grad=False, out_dtype=to_bool),
)
for _name, _fn, _ref in [("logical_and", hybrid.logical_and, np.logical_and),
                         ("logical_or", hybrid.logical_or, np.logical_or),
                         ("logical_xor", hybrid.logical_xor, np.logical_xor)]:
    add(OpInfo(_name, _fn, _ref, binary("int", "int", scalars=(0, 1)), FLOATS + INTS + (B8,),
               grad=False, out_dtype=to_bool))
for _name, _fn, _ref in [("bitwise_and", hybrid.bitwise_and, np.bitwise_and),
                         ("bitwise_or", hybrid.bitwise_or, np.bitwise_or),
                         ("bitwise_xor", hybrid.bitwise_xor, np.bitwise_xor),
                         ("and_dunder", lambda a, b: a & b, np.bitwise_and),
                         ("or_dunder", lambda a, b: a | b, np.bitwise_or),
                         ("xor_dunder", lambda a, b: a ^ b, np.bitwise_xor)]:
    add(OpInfo(_name, _fn, _ref, binary("int", "int", scalars=(5,)), INTS, grad=False),
        OpInfo(_name + "_bool", _fn, _ref, binary("bool", "bool", scalars=(True,)), (B8,),
               grad=False))


# --- casts ------------------------------------------------------------------------------------

for _dst in (F16, F32, F64, I32, I64, B8):
    add(OpInfo(f"to_{_dst.name}", lambda x, d=_dst: x.to(d), lambda x, d=_dst: x.astype(d.np),
               unary("frac"), FLOATS + INTS + (B8,), grad=False, out_dtype=lambda _, d=_dst: d,
               atol=2e-3, rtol=1e-3))
add(
    OpInfo("float", lambda x: x.float(), lambda x: x, unary("frac"), FLOATS, grad=False,
           out_dtype=lambda _: F32),
    OpInfo("double", lambda x: x.double(), lambda x: x, unary("frac"), FLOATS,
           out_dtype=lambda _: F64),
    OpInfo("half_roundtrip", lambda x: x.half().float(), lambda x: x.astype(np.float16),
           unary(), (F32,), grad=False, out_dtype=lambda _: F32, atol=0, rtol=0),  # exact: one rounding
    OpInfo("long", lambda x: x.long(), lambda x: np.trunc(x), unary("frac"), FLOATS, grad=False,
           out_dtype=lambda _: I64),
)
