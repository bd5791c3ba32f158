"""Inverse trigonometric and hyperbolic functions (asin ... atanh), composed of primitives so that
they differentiate and compile with no rule of their own."""

from __future__ import annotations

import math
from typing import Any

from hybrid.ops import elementwise as ew

# NOTE: above this magnitude asinh/acosh use log(2|x|) (the x*x of the exact form would overflow
# float32 near 1.8e19); the error of the approximation there is below 1e-16 relative.
_BIG = 2.0**28


def _odd(x: Any, f) -> Any:
    """f on |x| with x's sign; |x| is taken with where (abs has gradient 0 at 0, f' may not)."""
    neg = x < 0
    return ew.where(neg, -f(ew.where(neg, -x, x)), f(ew.where(neg, -x, x)))


def asin(x: Any) -> Any:
    """Elementwise arcsine (NaN outside [-1, 1])."""
    x = ew.to_float(x)
    return ew.atan2(x, ew.sqrt((1 - x) * (1 + x)))


def acos(x: Any) -> Any:
    """Elementwise arccosine (NaN outside [-1, 1])."""
    x = ew.to_float(x)
    return ew.atan2(ew.sqrt((1 - x) * (1 + x)), x)


def atan(x: Any) -> Any:
    """Elementwise arctangent."""
    x = ew.to_float(x)
    return ew.atan2(x, ew.scalar(1.0, x.dtype, x))


def sinh(x: Any) -> Any:
    """Elementwise hyperbolic sine (through expm1: exact near 0)."""
    x = ew.to_float(x)
    return (ew.expm1(x) - ew.expm1(-x)) * 0.5


def cosh(x: Any) -> Any:
    """Elementwise hyperbolic cosine."""
    x = ew.to_float(x)
    return (ew.exp(x) + ew.exp(-x)) * 0.5


def _asinh_pos(a: Any) -> Any:
    big = a > _BIG
    s = ew.where(big, 1.0, a)
    small = ew.log1p(s + s * s / (1 + ew.sqrt(s * s + 1)))
    return ew.where(big, ew.log(ew.where(big, a, 1.0)) + math.log(2), small)


def asinh(x: Any) -> Any:
    """Elementwise inverse hyperbolic sine."""
    return _odd(ew.to_float(x), _asinh_pos)


def acosh(x: Any) -> Any:
    """Elementwise inverse hyperbolic cosine (NaN below 1)."""
    x = ew.to_float(x)
    big = x > _BIG
    t = ew.where(big, 1.0, x) - 1
    small = ew.log1p(t + ew.sqrt(t * (t + 2)))
    return ew.where(big, ew.log(ew.where(big, x, 1.0)) + math.log(2), small)


def atanh(x: Any) -> Any:
    """Elementwise inverse hyperbolic tangent (+-inf at +-1, NaN outside [-1, 1])."""
    x = ew.to_float(x)
    return ew.log1p(2 * x / (1 - x)) * 0.5


arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh
