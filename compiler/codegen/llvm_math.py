"""Vectorizable elementwise math emitted inline as LLVM IR (no libm calls).

Each public function takes an `ir.IRBuilder` and values of type `float`, `double`, `<N x float>`
or `<N x double>` and returns a value of the same type. The emitted code uses only arithmetic,
comparisons, selects, bitcasts, integer ops and intrinsics that vectorize (`llvm.fmuladd`,
`llvm.fabs`, `llvm.copysign`;
not `llvm.rint`/`llvm.floor`, which are libm calls on x86-64 without SSE4.1), so LLVM's loop vectorizer can widen a
scalar loop that uses them; a call to `expf` in a loop body would keep that loop scalar.

NOTE: polynomials use `llvm.fmuladd`, not `llvm.fma`: on a CPU without FMA, `llvm.fma` becomes a
call to `fmaf` (scalar, slow) while `fmuladd` becomes a multiply and an add. Every algorithm here
is accurate with or without fusion (Cody-Waite constants have short mantissas so `n * C1` is exact).

NOTE: the emitted instructions carry no fast-math flags, and callers must not add `nnan`/`ninf`
(or `fast`) to them or to the loop: NaN and inf inputs are handled with explicit compares and
selects that those flags would let LLVM delete.

`supports(name, dtype)` says which (function, dtype) pairs exist; for the others the code
generator calls libm (`erf`, `sin`, `cos`, `atan2`, `pow` in double precision).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from llvmlite import ir

F32 = ir.FloatType()
F64 = ir.DoubleType()
I1 = ir.IntType(1)


class _Emit:
    """Typed helpers for one float type (scalar or vector): constants, intrinsics, polynomials."""

    def __init__(self, b: ir.IRBuilder, ty: ir.Type):
        self.b = b
        self.ty = ty
        self.elem = ty.element if isinstance(ty, ir.VectorType) else ty
        if self.elem not in (F32, F64):
            raise TypeError(f"llvm_math: expected float/double (or a vector of them), got {ty}")
        self.is_f64 = self.elem == F64
        self.bits = 64 if self.is_f64 else 32
        self.ity = self.like(ir.IntType(self.bits))

    def like(self, elem: ir.Type) -> ir.Type:
        """`elem`, or a vector of `elem` with as many lanes as this type."""
        if isinstance(self.ty, ir.VectorType):
            return ir.VectorType(elem, self.ty.count)
        return elem

    def const(self, value: float, elem: ir.Type | None = None) -> ir.Constant:
        ty = self.like(elem or self.elem)
        if isinstance(ty, ir.VectorType):
            return ir.Constant(ty, [ir.Constant(ty.element, value)] * ty.count)
        return ir.Constant(ty, value)

    def iconst(self, value: int) -> ir.Constant:
        return self.const(value, ir.IntType(self.bits))

    def intrinsic(self, name: str, *args: ir.Value) -> ir.Value:
        ty = args[0].type
        fname = f"llvm.{name}.{_mangle(ty)}"
        module = self.b.module
        fn = module.globals.get(fname)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(ty, [a.type for a in args]), fname)
        return self.b.call(fn, args)

    # arithmetic ---------------------------------------------------------------------------
    def add(self, a, c):
        return self.b.fadd(a, c)

    def sub(self, a, c):
        return self.b.fsub(a, c)

    def mul(self, a, c):
        return self.b.fmul(a, c)

    def div(self, a, c):
        return self.b.fdiv(a, c)

    def neg(self, a):
        return self.b.fneg(a)

    def fma(self, a, c, d):
        """a * c + d, fused where the target has FMA."""
        return self.intrinsic("fmuladd", a, c, d)

    def poly(self, x, coeffs: Sequence[float]):
        """Horner evaluation; `coeffs` from the highest degree down to the constant term."""
        acc = self.const(coeffs[0])
        for c in coeffs[1:]:
            acc = self.fma(acc, x, self.const(c))
        return acc

    def rint(self, a):
        """Round to nearest even, for |a| < 2^22 (f32) / 2^51 (f64) only.

        NOTE: not `llvm.rint`: without SSE4.1 that becomes a call to `rintf`. Adding and
        subtracting 1.5 * 2^mantissa rounds in the default rounding mode; it relies on LLVM not
        reassociating, i.e. on the absence of `reassoc`/`fast` flags."""
        magic = self.const(1.5 * 2.0 ** (52 if self.is_f64 else 23))
        return self.sub(self.add(a, magic), magic)

    def fabs(self, a):
        return self.intrinsic("fabs", a)

    def copysign(self, mag, sign):
        return self.intrinsic("copysign", mag, sign)

    # compares and selects -------------------------------------------------------------------
    def lt(self, a, c):
        return self.b.fcmp_ordered("<", a, c)

    def gt(self, a, c):
        return self.b.fcmp_ordered(">", a, c)

    def ge(self, a, c):
        return self.b.fcmp_ordered(">=", a, c)

    def eq(self, a, c):
        return self.b.fcmp_ordered("==", a, c)

    def isnan(self, a):
        return self.b.fcmp_unordered("uno", a, a)

    def sel(self, cond, a, c):
        return self.b.select(cond, a, c)

    def clamp(self, x, lo: float, hi: float):
        """min(max(x, lo), hi) with NaN mapped to `hi` (finite), so integer conversion is safe."""
        x = self.sel(self.lt(x, self.const(hi)), x, self.const(hi))
        return self.sel(self.gt(x, self.const(lo)), x, self.const(lo))

    def bits_of(self, a):
        return self.b.bitcast(a, self.ity)

    def from_bits(self, a):
        return self.b.bitcast(a, self.ty)


def _mangle(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_mangle(ty.element)}"
    return {F32: "f32", F64: "f64"}[ty]


# ---------------------------------------------------------------------------------------------
# exp
# f32: Cephes expf (Moshier): Cody-Waite reduction x = n*ln2 + r, |r| <= ln2/2, degree-6 minimax
# polynomial. f64: same reduction with fdlibm's ln2_hi/ln2_lo and the degree-13 Taylor series
# (truncation error < 2^-60 on |r| <= ln2/2). 2^n is applied as 2^(n>>1) * 2^(n - (n>>1)) so that
# results that overflow give inf and results in the subnormal range are rounded once.
_EXP_F32 = {
    "lo": -104.0, "hi": 89.0, "c1": 0.693359375, "c2": -2.12194440e-4,
    "coeffs": [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
            1.6666665459e-1, 5.0000001201e-1],
}  # fmt: skip
_EXP_F64 = {
    "lo": -746.0, "hi": 710.0, "c1": 6.93147180369123816490e-01, "c2": 1.90821492927058770002e-10,
    "coeffs": [1.0 / _f for _f in (6227020800.0, 479001600.0, 39916800.0, 3628800.0, 362880.0,
                                40320.0, 5040.0, 720.0, 120.0, 24.0, 6.0, 2.0)],
}  # fmt: skip
_LOG2E = 1.44269504088896340736


def _ldexp(m: _Emit, y, n):
    """y * 2^n for a float-valued integer n with 2^(n/2) in the normal range."""
    ni = m.b.fptosi(n, m.ity)
    n1 = m.b.ashr(ni, m.iconst(1))
    n2 = m.b.sub(ni, n1)
    mant = 52 if m.is_f64 else 23
    bias = 1023 if m.is_f64 else 127
    s1 = m.from_bits(m.b.shl(m.b.add(n1, m.iconst(bias)), m.iconst(mant)))
    s2 = m.from_bits(m.b.shl(m.b.add(n2, m.iconst(bias)), m.iconst(mant)))
    return m.mul(m.mul(y, s1), s2)


def _exp(m: _Emit, x):
    k = _EXP_F64 if m.is_f64 else _EXP_F32
    xc = m.clamp(x, k["lo"], k["hi"])  # beyond these, exp is 0 or inf anyway
    n = m.rint(m.mul(xc, m.const(_LOG2E)))
    r = m.fma(n, m.const(-k["c1"]), xc)  # exact: c1 has a short mantissa
    r = m.fma(n, m.const(-k["c2"]), r)
    p = m.poly(r, k["coeffs"])
    y = m.add(m.fma(p, m.mul(r, r), r), m.const(1.0))
    return m.sel(m.isnan(x), x, _ldexp(m, y, n))


def exp(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """e**x; f32 and f64. exp(>88.72) = inf, exp(<-103.97) = 0 (f32), NaN propagates."""
    return _exp(_Emit(b, x.type), x)


# ---------------------------------------------------------------------------------------------
# log
# f32: Cephes logf: x = 2^e * m with m in [sqrt(1/2), sqrt(2)), log(m) = f - f^2/2 + f^3 P(f)
# with f = m - 1 and Cephes' degree-8 minimax P; ln2 split as 0.693359375 - 2.12194440e-4.
# f64: fdlibm e_log.c: s = f / (2 + f), log(1 + f) = f - s*(f - R(s^2)), here with the exact
# atanh series coefficients 2/(2k+1), k = 1..11 (truncation < 2^-60 for |s| <= 0.1716).
_LOGF_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
           1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
           3.3333331174e-1]  # fmt: skip
_LOG_F64_R = [2.0 / (2 * _k + 1) for _k in range(11, 0, -1)]
_LN2_HI_F64, _LN2_LO_F64 = 6.93147180369123816490e-01, 1.90821492927058770002e-10


def _frexp(m: _Emit, x):
    """(e, f) with x = 2^e * (1 + f), 1 + f in [sqrt(1/2), sqrt(2)); x > 0 finite, subnormals ok."""
    mant, bias = (52, 1023) if m.is_f64 else (23, 127)
    tiny = 2.2250738585072014e-308 if m.is_f64 else 1.1754943508222875e-38
    sub = m.lt(x, m.const(tiny))
    x = m.sel(sub, m.mul(x, m.const(2.0**54 if m.is_f64 else 2.0**25)), x)
    bits = m.bits_of(x)
    # Offset the exponent so that the mantissa lands in [sqrt(1/2), sqrt(2)) directly.
    sqrt_half_bits = 0x3FE6A09E667F3BCD if m.is_f64 else 0x3F3504F3
    one_bits = 0x3FF0000000000000 if m.is_f64 else 0x3F800000
    shifted = m.b.add(bits, m.iconst(one_bits - sqrt_half_bits))
    e = m.b.sub(m.b.lshr(shifted, m.iconst(mant)), m.iconst(bias))
    mbits = m.b.add(m.b.and_(shifted, m.iconst((1 << mant) - 1)), m.iconst(sqrt_half_bits))
    e = m.b.sitofp(e, m.ty)
    e = m.sel(sub, m.sub(e, m.const(54.0 if m.is_f64 else 25.0)), e)
    f = m.sub(m.from_bits(mbits), m.const(1.0))
    return e, f


def _log(m: _Emit, x):
    e, f = _frexp(m, x)
    if m.is_f64:
        s = m.div(f, m.add(f, m.const(2.0)))
        z = m.mul(s, s)
        r = m.mul(z, m.poly(z, _LOG_F64_R))
        hfsq = m.mul(m.const(0.5), m.mul(f, f))
        t = m.fma(s, m.add(hfsq, r), m.mul(e, m.const(_LN2_LO_F64)))
        y = m.fma(e, m.const(_LN2_HI_F64), m.sub(f, m.sub(hfsq, t)))
    else:
        z = m.mul(f, f)
        y = m.mul(m.mul(f, z), m.poly(f, _LOGF_P))
        y = m.fma(e, m.const(-2.12194440e-4), y)
        y = m.fma(z, m.const(-0.5), y)
        y = m.fma(e, m.const(0.693359375), m.add(f, y))
    y = m.sel(m.eq(x, m.const(float("inf"))), x, y)
    y = m.sel(m.eq(x, m.const(0.0)), m.const(float("-inf")), y)
    y = m.sel(m.lt(x, m.const(0.0)), m.const(float("nan")), y)
    return m.sel(m.isnan(x), x, y)


def log(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Natural log; f32 and f64. log(0) = -inf, log(x<0) = NaN, log(inf) = inf."""
    return _log(_Emit(b, x.type), x)


# ---------------------------------------------------------------------------------------------
# log1p / expm1: the exact-rounding corrections of Goldberg ("What every computer scientist
# should know about floating-point", Theorem 4) and Kahan, as in Eigen's generic_log1p and
# generic_expm1: log1p(x) = x * log(u) / (u - 1) with u = 1 + x; expm1(x) = (u - 1) * x / log(u)
# with u = exp(x).
def _log1p(m: _Emit, x):
    u = m.add(x, m.const(1.0))
    y = m.mul(x, m.div(_log(m, u), m.sub(u, m.const(1.0))))
    keep_x = m.b.or_(m.eq(u, m.const(1.0)), m.eq(u, m.const(float("inf"))))
    return m.sel(keep_x, x, y)


def log1p(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """log(1 + x), accurate for small |x|; f32 and f64."""
    return _log1p(_Emit(b, x.type), x)


def _expm1(m: _Emit, x):
    u = _exp(m, x)
    um1 = m.sub(u, m.const(1.0))
    logu = _log(m, u)
    y = m.mul(um1, m.div(x, logu))
    y = m.sel(m.eq(logu, u), u, y)  # u = inf
    y = m.sel(m.eq(um1, m.const(-1.0)), m.const(-1.0), y)
    return m.sel(m.eq(u, m.const(1.0)), x, y)


def expm1(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """exp(x) - 1, accurate for small |x|; f32 and f64."""
    return _expm1(_Emit(b, x.type), x)


# ---------------------------------------------------------------------------------------------
# tanh
# f32: Cephes tanhf: |x| < 0.625: x + x^3 P(x^2) (degree-4 minimax P, so tanh(1e-4) is exact to
# rounding); otherwise 1 - 2 / (exp(2|x|) + 1) with the sign of x (exp overflow gives 1 exactly).
# f64: tanh = e / (e + 2), e = expm1(2|x|), sign restored; 1 for |x| > 20.
_TANHF_P = [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
            -3.33332819422e-1]  # fmt: skip


def _tanh(m: _Emit, x):
    a = m.fabs(x)
    if m.is_f64:
        e = _expm1(m, m.add(a, a))
        y = m.div(e, m.add(e, m.const(2.0)))
        y = m.sel(m.gt(a, m.const(20.0)), m.const(1.0), y)
        return m.copysign(y, x)
    z = m.mul(a, a)
    small = m.fma(m.mul(m.poly(z, _TANHF_P), z), a, a)  # on |x|, so tanh(-0) = -0 below
    e = _exp(m, m.add(a, a))
    large = m.sub(m.const(1.0), m.div(m.const(2.0), m.add(e, m.const(1.0))))
    return m.copysign(m.sel(m.lt(a, m.const(0.625)), small, large), x)


def tanh(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Hyperbolic tangent; f32 and f64; ±1 for large |x|, odd, exact near 0."""
    return _tanh(_Emit(b, x.type), x)


def _sigmoid(m: _Emit, x):
    # 1 / (1 + e^-x) for x >= 0 and e^x / (1 + e^x) for x < 0: neither overflows, and the small
    # tail e^x keeps full relative accuracy (down to subnormals).
    t = _exp(m, m.neg(m.fabs(x)))
    num = m.sel(m.ge(x, m.const(0.0)), m.const(1.0), t)
    return m.div(num, m.add(t, m.const(1.0)))


def sigmoid(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Logistic function 1 / (1 + exp(-x)); f32 and f64; never NaN for non-NaN x."""
    return _sigmoid(_Emit(b, x.type), x)


# ---------------------------------------------------------------------------------------------
# erf (f32 only)
# The split of N. Juffa's erff (CUDA libdevice style): |x| < 0.921875: x * P(x^2);
# |x| >= 0.921875: 1 - exp(Q(|x|)) with Q ~ log(erfc(|x|)) on [0.921875, 4]; erf(|x| >= 3.93)
# rounds to 1. P (degree 6 in x^2) and Q (degree 8) are our own minimax fits (Lawson-weighted
# least squares against scipy.special.erf/erfc in float64, coefficients rounded to float32).
_ERF_SMALL = [8.370082650799304e-05, -0.0008142699953168631, 0.005201031919568777,
              -0.026859398931264877, 0.11283695697784424, -0.37612634897232056,
              1.128379225730896]  # fmt: skip
_ERF_LOG_ERFC = [1.6024933984226664e-06, -4.535464177024551e-05, 0.0005907156737521291,
                 -0.004730283748358488, 0.026335544884204865, -0.10992518812417984,
                 -0.6319953203201294, -1.130131483078003, 0.0002942761348094791]  # fmt: skip


def _erf(m: _Emit, x):
    a = m.fabs(x)
    small = m.mul(x, m.poly(m.mul(x, x), _ERF_SMALL))
    t = m.sel(m.lt(a, m.const(4.0)), a, m.const(4.0))
    large = m.copysign(m.sub(m.const(1.0), _exp(m, m.poly(t, _ERF_LOG_ERFC))), x)
    y = m.sel(m.lt(a, m.const(0.921875)), small, large)
    return m.sel(m.isnan(x), x, y)


def erf(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Error function; f32 only; saturates to ±1."""
    return _erf(_Emit(b, x.type), x)


# ---------------------------------------------------------------------------------------------
# sin / cos (f32 only)
# Reduction x = n*pi/2 + r in double precision with pi/2 split into three doubles, the first two
# with 28-bit mantissas: n*P1, n*P2 are exact for n < 2^25, so results are accurate for
# |x| < SINCOS_MAX_ACCURATE_ARG on any target (with FMA hardware the fused products keep it
# accurate up to ~1e10, measured). Beyond, there is no Payne-Hanek reduction: results are
# inaccurate but stay in [-1, 1] (r is clamped). The kernels on |r| <= pi/4 are Cephes sinf/cosf.
SINCOS_MAX_ACCURATE_ARG = 2.0**25
_PIO2 = (1.570796325802803, 9.920935739593517e-10, 5.721188726109832e-18)
_SINF_P = [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1]
_COSF_P = [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2]


def _sincos(m: _Emit, x, quadrant_shift: int):
    if m.is_f64:
        raise TypeError("llvm_math.sin/cos: f32 only (use libm for f64)")
    a = m.fabs(x)
    finite = m.lt(a, m.const(float("inf")))
    d = _Emit(m.b, m.like(F64))
    ad = m.b.fpext(m.sel(finite, a, m.const(0.0)), d.ty)
    n = d.rint(d.clamp(d.mul(ad, d.const(0.63661977236758134308)), 0.0, 2.0**50))
    r = d.fma(n, d.const(-_PIO2[0]), ad)
    r = d.fma(n, d.const(-_PIO2[1]), r)
    r = d.fma(n, d.const(-_PIO2[2]), r)
    quarter = d.mul(n, d.const(0.25))  # n mod 4 = 4 * (n/4 - rint(n/4)) mod 4, exact
    q = d.mul(d.sub(quarter, d.rint(quarter)), d.const(4.0))
    q = m.b.add(m.b.fptosi(q, m.ity), m.iconst(quadrant_shift))
    rf = m.clamp(m.b.fptrunc(r, m.ty), -0.785398185253143310546875, 0.785398185253143310546875)
    z = m.mul(rf, rf)
    s = m.fma(m.mul(m.poly(z, _SINF_P), z), rf, rf)
    c = m.fma(m.mul(m.poly(z, _COSF_P), z), z, m.fma(z, m.const(-0.5), m.const(1.0)))
    zero = m.iconst(0)
    swap = m.b.icmp_signed("!=", m.b.and_(q, m.iconst(1)), zero)
    flip = m.b.icmp_signed("!=", m.b.and_(q, m.iconst(2)), zero)
    y = m.sel(swap, c, s)
    y = m.sel(flip, m.neg(y), y)
    return y, finite


def sin(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Sine; f32 only; accurate for |x| < 2^25 (see above); sin(±inf) = NaN."""
    m = _Emit(b, x.type)
    y, finite = _sincos(m, x, 0)
    sign = m.b.and_(m.bits_of(x), m.iconst(1 << 31))
    y = m.from_bits(m.b.xor(m.bits_of(y), sign))  # sin is odd
    return m.sel(finite, y, m.sub(x, x))


def cos(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """Cosine; f32 only; accurate for |x| < 2^25 (see above); cos(±inf) = NaN."""
    m = _Emit(b, x.type)
    y, finite = _sincos(m, x, 1)
    return m.sel(finite, y, m.sub(x, x))


# ---------------------------------------------------------------------------------------------
# atan2 (f32 only)
# a = min(|x|,|y|) / max(|x|,|y|) in [0, 1]; Cephes atanf: for a > tan(pi/8), atan(a) =
# pi/4 + atan((a - 1)/(a + 1)); degree-4 polynomial in a^2. Then octant fix-ups and the C99
# special cases (signed zeros, infinities) by selects.
_ATANF_P = [8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1]


def atan2(b: ir.IRBuilder, y: ir.Value, x: ir.Value) -> ir.Value:
    """atan2(y, x) in [-pi, pi] with the C99/numpy special cases; f32 only."""
    m = _Emit(b, x.type)
    if m.is_f64:
        raise TypeError("llvm_math.atan2: f32 only (use libm for f64)")
    ax, ay = m.fabs(x), m.fabs(y)
    y_bigger = m.gt(ay, ax)
    hi = m.sel(y_bigger, ay, ax)
    lo = m.sel(y_bigger, ax, ay)
    a = m.div(lo, hi)
    inf = m.const(float("inf"))
    a = m.sel(m.b.and_(m.eq(ax, inf), m.eq(ay, inf)), m.const(1.0), a)
    a = m.sel(m.eq(hi, m.const(0.0)), m.const(0.0), a)
    big = m.gt(a, m.const(0.41421356237309503))
    t = m.sel(big, m.div(m.sub(a, m.const(1.0)), m.add(a, m.const(1.0))), a)
    z = m.mul(t, t)
    r = m.fma(m.mul(m.poly(z, _ATANF_P), z), t, t)
    r = m.sel(big, m.add(r, m.const(0.78539816339744831)), r)
    r = m.sel(y_bigger, m.sub(m.const(1.57079632679489662), r), r)
    x_neg = m.b.icmp_signed("<", m.bits_of(x), m.iconst(0))  # sign bit, so -0 counts
    r = m.sel(x_neg, m.sub(m.const(3.14159265358979324), r), r)
    r = m.copysign(r, y)
    nan = m.b.or_(m.isnan(x), m.isnan(y))
    return m.sel(nan, m.add(x, y), r)


# ---------------------------------------------------------------------------------------------
# pow (f32 only): exp(y * log|x|) evaluated with the f64 exp/log above (so y*log|x| carries no
# float32 rounding error: result within ~0.5 ulp), then C99/numpy special cases by selects:
# pow(x, 0) = 1, pow(1, y) = 1, pow(-1, ±inf) = 1, x < 0 finite with non-integer y -> NaN,
# sign flip for negative (or -0) x with odd integer y, pow(±0, y<0) = ±inf.
def pow(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    """x ** y; f32 only."""
    m = _Emit(b, x.type)
    if m.is_f64:
        raise TypeError("llvm_math.pow: f32 only (use libm for f64)")
    d = _Emit(b, m.like(F64))
    ax = m.fabs(x)
    ld = _log(d, b.fpext(ax, d.ty))
    r = b.fptrunc(_exp(d, d.mul(b.fpext(y, d.ty), ld)), m.ty)
    ay = m.fabs(y)
    y_int = b.or_(m.ge(ay, m.const(2.0**22)), m.eq(m.rint(y), y))  # floats >= 2^23 are integers
    exact = m.lt(ay, m.const(16777216.0))  # above 2^24 every float is an even integer
    yi = b.fptosi(m.sel(exact, y, m.const(0.0)), m.ity)
    odd = b.icmp_signed("!=", b.and_(yi, m.iconst(1)), m.iconst(0))
    y_odd = b.and_(b.and_(y_int, exact), odd)
    x_signbit = b.icmp_signed("<", m.bits_of(x), m.iconst(0))
    r = m.sel(b.and_(x_signbit, y_odd), m.neg(r), r)
    neg_finite = b.and_(m.lt(x, m.const(0.0)), m.gt(x, m.const(float("-inf"))))
    r = m.sel(b.and_(neg_finite, b.not_(y_int)), m.const(float("nan")), r)
    one = m.const(1.0)
    r = m.sel(b.and_(m.eq(ax, one), m.eq(ay, m.const(float("inf")))), one, r)
    return m.sel(b.or_(m.eq(y, m.const(0.0)), m.eq(x, one)), one, r)


# ---------------------------------------------------------------------------------------------
# The table the code generator reads: name -> (emitter, arity, dtypes it supports).
FUNCTIONS: dict[str, tuple[Callable[..., ir.Value], int, tuple[str, ...]]] = {
    "exp": (exp, 1, ("f32", "f64")),
    "log": (log, 1, ("f32", "f64")),
    "log1p": (log1p, 1, ("f32", "f64")),
    "expm1": (expm1, 1, ("f32", "f64")),
    "tanh": (tanh, 1, ("f32", "f64")),
    "sigmoid": (sigmoid, 1, ("f32", "f64")),
    "erf": (erf, 1, ("f32",)),
    "sin": (sin, 1, ("f32",)),
    "cos": (cos, 1, ("f32",)),
    "atan2": (atan2, 2, ("f32",)),
    "pow": (pow, 2, ("f32",)),
}


def supports(fn_name: str, dtype: str) -> bool:
    """Whether `fn_name` has an inline vectorizable version for dtype 'f32' or 'f64'.

    When False, the code generator should call the libm function in double precision instead.
    """
    entry = FUNCTIONS.get(fn_name)
    return entry is not None and dtype in entry[2]
