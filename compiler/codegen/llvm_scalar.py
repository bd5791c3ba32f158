"""LLVM lowering of each elementwise primitive: one scalar (or lane) value per op, apart from any
loop nest.

The expression emitter (llvm_expr.py) calls these for the `Apply` nodes of a kernel's
expressions, inside the loops the CPU code generator (llvm_cpu.py) builds; another LLVM target
(NVPTX) can reuse them under its own loop structure. Elementwise
primitives are lowered through two registries, `FLOAT` (float16/32/64 computed in float32/64)
and `INT` (bool, integers), filled with `@lowering(...)`: `supports(op, dtype)` reads them, so
what the native backend can compile is known before fusion, and tests/compiler/test_registry.py
checks that every elementwise primitive of the op table has a lowering for each dtype its rule
accepts (or is listed in NO_LOWERING).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from llvmlite import ir

try:
    from compiler.codegen import llvm_math
except ImportError:  # pragma: no cover  (the polynomial library is optional: libm then)
    llvm_math = None
from compiler.ir.ops import Op
from compiler.ir.types import DType

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()

_STORAGE = {DType.bool: I8, DType.int32: I32, DType.int64: I64, DType.float16: F16,
            DType.float32: F32, DType.float64: F64}
_COMPUTE = {DType.bool: I1, DType.int32: I32, DType.int64: I64, DType.float16: F32,
            DType.float32: F32, DType.float64: F64}
REASSOC = ("reassoc", "contract")


def storage_type(d: DType) -> ir.Type:
    return _STORAGE[d]


def compute_type(d: DType) -> ir.Type:
    return _COMPUTE[d]


def const(value: Any, dtype: DType) -> ir.Constant:
    ty = compute_type(dtype)
    if dtype is DType.bool:
        return ir.Constant(I1, int(bool(value)))
    if dtype.is_integer:
        return ir.Constant(ty, int(value))
    return ir.Constant(ty, float(value))


def identity(op: Op, dtype: DType) -> ir.Constant:
    if op is Op.SUM:
        return const(0, dtype)
    if op is Op.PROD:
        return const(1, dtype)
    if dtype.is_floating:
        return const(-math.inf, dtype)
    return const(-(2 ** (8 * dtype.itemsize - 1)), dtype)


def combine(m: ir.Module, b: ir.IRBuilder, op: Op, dtype: DType, acc: ir.Value,
            v: ir.Value) -> ir.Value:
    if dtype.is_floating:
        if op is Op.SUM:
            return b.fadd(acc, v, flags=REASSOC)
        if op is Op.PROD:
            return b.fmul(acc, v, flags=REASSOC)
        return intrinsic(m, b, "llvm.maximum", [acc, v])
    if op is Op.SUM:
        return b.add(acc, v)
    if op is Op.PROD:
        return b.mul(acc, v)
    return b.select(b.icmp_signed(">", v, acc), v, acc)


def intrinsic(m: ir.Module, b: ir.IRBuilder, name: str, args: list) -> ir.Value:
    ty = args[0].type
    suffix = {F32: "f32", F64: "f64", F16: "f16"}[ty] if ty in (F32, F64, F16) else f"i{ty.width}"
    full = f"{name}.{suffix}"
    fn = m.globals.get(full)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(ty, [a.type for a in args]), name=full)
    return b.call(fn, args)


def libm(m: ir.Module, b: ir.IRBuilder, name: str, args: list) -> ir.Value:
    ty = args[0].type
    fname = name if ty == F64 else name + "f"
    fn = m.globals.get(fname)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(ty, [a.type for a in args]), name=fname)
    return b.call(fn, args)


def _to_float32_round_to_odd(b: ir.IRBuilder, d: ir.Value) -> ir.Value:
    """float64 -> float32 rounded to odd: truncated toward zero, with the last bit set when
    inexact. float32 keeps 13 more bits than float16, so rounding this to half is the correctly
    rounded half of `d` (no double rounding). NaN stays NaN, overflow stays above half's max."""
    f = b.fptrunc(d, F32)
    inexact = b.fcmp_unordered("!=", b.fpext(f, F64), d)
    away = b.fcmp_ordered(">", _fabs(b, b.fpext(f, F64)), _fabs(b, d))
    bits = b.bitcast(f, I32)
    toward_zero = b.select(away, b.sub(bits, ir.Constant(I32, 1)), bits)
    odd = b.or_(toward_zero, ir.Constant(I32, 1))
    return b.bitcast(b.select(inexact, odd, bits), F32)


def _fabs(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    m = b.module
    name = "llvm.fabs.f64"
    fn = m.globals.get(name)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(F64, [F64]), name=name)
    return b.call(fn, [x])


def cast_value(b: ir.IRBuilder, v: ir.Value, src: DType, dst: DType) -> ir.Value:
    """Convert a compute value of dtype src to dtype dst (numpy's astype semantics)."""
    if src is dst:
        return v
    st, dt = compute_type(src), compute_type(dst)
    if dst is DType.bool:
        if src.is_floating:
            return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
        return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
    if dst is DType.float16:
        # NOTE: float16 computes in float32, but a cast to it must round to half precision.
        # Only float32 -> half is converted (one instruction with F16C); float64 -> half and
        # int -> half would be compiler-rt calls MCJIT cannot resolve, so they go through float32
        # (a float64 source is rounded to float32 *to odd*, so that the second rounding gives
        # the correctly rounded half, as numpy's direct conversion does).
        f = _to_float32_round_to_odd(b, v) if src is DType.float64 else \
            cast_value(b, v, src, DType.float32)
        return b.fpext(b.fptrunc(f, F16), F32)
    if src is DType.bool:
        return b.uitofp(v, dt) if dst.is_floating else b.zext(v, dt)
    if src.is_floating and dst.is_floating:
        if st == dt:
            return v
        return b.fpext(v, dt) if dt == F64 else b.fptrunc(v, dt)
    if src.is_floating:
        return b.fptosi(v, dt)
    if dst.is_floating:
        return b.sitofp(v, dt)
    if st.width < dt.width:
        return b.sext(v, dt)
    return b.trunc(v, dt)


# --- elementwise lowerings ----------------------------------------------------------------------

Lowering = Callable[[ir.Module, ir.IRBuilder, Op, DType, list], ir.Value]
FLOAT: dict[Op, Lowering] = {}  # on float compute values (float16 computes in float32)
INT: dict[Op, Lowering] = {}  # on bool (i1) and integer values
# Elementwise primitives this backend does not lower (none today): a graph holding one runs on
# the interpreter, with a warning naming the op (hybrid/compile.py).
NO_LOWERING: frozenset[Op] = frozenset()


def lowering(*ops: Op, on: str = "float int") -> Callable[[Lowering], Lowering]:
    """Register the decorated function as the lowering of `ops` for the dtype classes in `on`."""

    def register(fn: Lowering) -> Lowering:
        for op in ops:
            for cls in on.split():
                {"float": FLOAT, "int": INT}[cls][op] = fn
        return fn

    return register


def supports(op: Op, dtype: DType) -> bool:
    """Whether elementwise primitive `op` on compute values of `dtype` has a lowering here."""
    return op in (FLOAT if dtype.is_floating else INT)


def elementwise(m: ir.Module, b: ir.IRBuilder, op: Op, dtype: DType, args: list) -> ir.Value:
    """One elementwise primitive on compute values of input dtype `dtype`."""
    fn = (FLOAT if dtype.is_floating else INT).get(op)
    if fn is None:
        raise NotImplementedError(f"codegen: {op.value} on {dtype.name}")
    return fn(m, b, op, dtype, args)


_FCMP = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}


@lowering(*_FCMP)
def _compare(m, b, op, dtype, args):
    x, y = args
    if dtype.is_floating:
        if op is Op.NE:
            return b.fcmp_unordered("!=", x, y)
        return b.fcmp_ordered(_FCMP[op], x, y)
    if dtype is DType.bool:
        return b.icmp_unsigned(_FCMP[op], x, y)
    return b.icmp_signed(_FCMP[op], x, y)


@lowering(Op.COPY)
def _copy(m, b, op, dtype, args):
    return args[0]


# --- on floats


def _math(m: ir.Module, b: ir.IRBuilder, name: str, dtype: DType, args: list) -> ir.Value:
    kind = "f64" if dtype is DType.float64 else "f32"  # float16 computes in float32
    if llvm_math is not None and llvm_math.supports(name, kind):
        return getattr(llvm_math, name)(b, *args)
    if name == "sigmoid":
        one = ir.Constant(args[0].type, 1.0)
        return b.fdiv(one, b.fadd(one, _math(m, b, "exp", dtype, [b.fneg(args[0])])))
    return libm(m, b, name, args)


# The ops computed by llvm_math's polynomials where it has them, else by libm of the same name.
_MATH = {Op.EXP: "exp", Op.LOG: "log", Op.TANH: "tanh", Op.SIGMOID: "sigmoid", Op.ERF: "erf",
         Op.ERFC: "erfc", Op.SIN: "sin", Op.COS: "cos", Op.LOG1P: "log1p", Op.EXPM1: "expm1",
         Op.POW: "pow", Op.ATAN2: "atan2"}


@lowering(*_MATH, on="float")
def _math_op(m, b, op, dtype, args):
    return _math(m, b, _MATH[op], dtype, args)


_FLOAT_INSTR = {Op.ADD: "fadd", Op.SUB: "fsub", Op.MUL: "fmul", Op.DIV: "fdiv"}


@lowering(*_FLOAT_INSTR, on="float")
def _float_arith(m, b, op, dtype, args):
    return getattr(b, _FLOAT_INSTR[op])(*args)


@lowering(Op.NEG, on="float")
def _fneg(m, b, op, dtype, args):
    return b.fneg(args[0])


_FLOAT_INTRINSIC = {Op.ABS: "llvm.fabs", Op.SQRT: "llvm.sqrt", Op.FLOOR: "llvm.floor",
                    Op.CEIL: "llvm.ceil", Op.TRUNC: "llvm.trunc", Op.ROUND: "llvm.roundeven",
                    Op.MAXIMUM: "llvm.maximum", Op.MINIMUM: "llvm.minimum"}


@lowering(*_FLOAT_INTRINSIC, on="float")
def _float_intrinsic(m, b, op, dtype, args):
    return intrinsic(m, b, _FLOAT_INTRINSIC[op], args)


@lowering(Op.RSQRT, Op.RECIPROCAL, on="float")
def _reciprocals(m, b, op, dtype, args):
    one = ir.Constant(args[0].type, 1.0)
    x = intrinsic(m, b, "llvm.sqrt", args) if op is Op.RSQRT else args[0]
    return b.fdiv(one, x)


@lowering(Op.SIGN, on="float")
def _fsign(m, b, op, dtype, args):
    x = args[0]
    ty = x.type
    zero, one = ir.Constant(ty, 0.0), ir.Constant(ty, 1.0)
    s = b.select(b.fcmp_ordered(">", x, zero), one,
                 b.select(b.fcmp_ordered("<", x, zero), ir.Constant(ty, -1.0), zero))
    return b.select(b.fcmp_unordered("uno", x, x), x, s)


@lowering(Op.FLOORDIV, Op.REMAINDER, on="float")
def _float_divmod(m, b, op, dtype, args):
    """numpy's float floor_divide / remainder (npy_divmod): the quotient is rounded from
    (x - fmod(x, y)) / y, the remainder takes the divisor's sign, y == 0 gives x / y and
    fmod(x, 0)."""
    x, y = args
    ty = x.type
    zero, one = ir.Constant(ty, 0.0), ir.Constant(ty, 1.0)
    mod = b.frem(x, y)
    y_zero = b.fcmp_ordered("==", y, zero)
    if op is Op.REMAINDER:
        mod_nz = b.fcmp_unordered("!=", mod, zero)
        fix = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
        fixed = b.select(fix, b.fadd(mod, y), mod)
        signed_zero = intrinsic(m, b, "llvm.copysign", [zero, y])
        return b.select(y_zero, mod, b.select(mod_nz, fixed, signed_zero))
    div = b.fdiv(b.fsub(x, mod), y)
    mod_nz = b.fcmp_unordered("!=", mod, zero)
    fix = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    div = b.select(fix, b.fsub(div, one), div)
    fl = intrinsic(m, b, "llvm.floor", [div])
    fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), ir.Constant(ty, 0.5)), b.fadd(fl, one), fl)
    quotient = b.fdiv(x, y)
    signed_zero = intrinsic(m, b, "llvm.copysign", [zero, quotient])
    res = b.select(b.fcmp_unordered("!=", div, zero), fl, signed_zero)
    return b.select(y_zero, quotient, res)


# --- on bool and integers


@lowering(Op.ADD, Op.MUL, on="int")
def _int_add_mul(m, b, op, dtype, args):
    if dtype is DType.bool:  # logical or / and, as numpy's bool + and *
        return b.or_(*args) if op is Op.ADD else b.and_(*args)
    return b.add(*args) if op is Op.ADD else b.mul(*args)


_INT_INSTR = {Op.SUB: "sub", Op.AND: "and_", Op.OR: "or_", Op.XOR: "xor"}


@lowering(*_INT_INSTR, on="int")
def _int_instr(m, b, op, dtype, args):
    return getattr(b, _INT_INSTR[op])(*args)


@lowering(Op.NEG, on="int")
def _ineg(m, b, op, dtype, args):
    return b.sub(ir.Constant(args[0].type, 0), args[0])


@lowering(Op.NOT, on="int")
def _not(m, b, op, dtype, args):
    return b.xor(args[0], ir.Constant(args[0].type, 1))


@lowering(Op.ABS, on="int")
def _iabs(m, b, op, dtype, args):
    x = args[0]
    zero = ir.Constant(x.type, 0)
    return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)


@lowering(Op.SIGN, on="int")
def _isign(m, b, op, dtype, args):
    x = args[0]
    ty = x.type
    zero = ir.Constant(ty, 0)
    return b.select(b.icmp_signed(">", x, zero), ir.Constant(ty, 1),
                    b.select(b.icmp_signed("<", x, zero), ir.Constant(ty, -1), zero))


@lowering(Op.MAXIMUM, Op.MINIMUM, on="int")
def _iminmax(m, b, op, dtype, args):
    x, y = args
    cmp = "icmp_unsigned" if dtype is DType.bool else "icmp_signed"
    gt = getattr(b, cmp)(">", x, y)
    return b.select(gt, x, y) if op is Op.MAXIMUM else b.select(gt, y, x)


@lowering(Op.FLOORDIV, Op.REMAINDER, on="int")
def _int_divmod(m, b, op, dtype, args):
    x, y = args
    ty = x.type
    zero = ir.Constant(ty, 0)
    # NOTE: numpy gives 0 for a zero divisor and wraps MIN // -1 to MIN; sdiv would trap
    # (SIGFPE) on both, so those divisors are replaced by 1 and the -1 case fixed up.
    minus_one = b.icmp_signed("==", y, ir.Constant(ty, -1))
    safe = b.select(b.or_(b.icmp_signed("==", y, zero), minus_one), ir.Constant(ty, 1), y)
    q, r = b.sdiv(x, safe), b.srem(x, safe)
    q = b.select(minus_one, b.sub(zero, x), q)
    adjust = b.and_(b.icmp_signed("!=", r, zero),
                    b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", safe, zero)))
    if op is Op.FLOORDIV:
        return b.select(b.icmp_signed("==", y, zero), zero,
                        b.select(adjust, b.sub(q, ir.Constant(ty, 1)), q))
    return b.select(b.icmp_signed("==", y, zero), zero,
                    b.select(adjust, b.add(r, safe), r))


@lowering(Op.POW, on="int")
def _int_pow(m, b, op, dtype, args):
    ty = args[0].type
    zero = ir.Constant(ty, 0)
    # square-and-multiply over the exponent's bits: numpy's wrapping integer power; a
    # negative exponent truncates 1 / x ** -y as PyTorch does (1 for x == 1, +-1 for
    # x == -1, else 0)
    x, y = args
    result, base = ir.Constant(ty, 1), x
    for bit in range(ty.width - 1):
        on = b.icmp_unsigned("!=", b.and_(y, ir.Constant(ty, 1 << bit)), zero)
        result = b.select(on, b.mul(result, base), result)
        if bit < ty.width - 2:
            base = b.mul(base, base)
    one, minus_one = ir.Constant(ty, 1), ir.Constant(ty, -1)
    odd = b.icmp_unsigned("!=", b.and_(y, one), zero)
    neg_pow = b.select(b.icmp_signed("==", x, one), one,
                       b.select(b.icmp_signed("==", x, minus_one),
                                b.select(odd, minus_one, one), zero))
    return b.select(b.icmp_signed("<", y, zero), neg_pow, result)
