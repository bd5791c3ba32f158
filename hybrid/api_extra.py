"""The top-level names of the extra ops, and the public functions that accept PyTorch's `out=`
keyword (hybrid/__init__.py re-exports everything in __all__)."""

from __future__ import annotations

from typing import Any

from hybrid import linalg
from hybrid import random as _random
from hybrid.dtypes import finfo, iinfo, int8, int16, short, uint8
from hybrid.ops import creation as _cr
from hybrid.ops import elementwise as _ew
from hybrid.ops import hyperbolic as _hy
from hybrid.ops import linalg as _la
from hybrid.ops import matrix as _mx
from hybrid.ops import norms as _nm
from hybrid.ops import reduce as _rd
from hybrid.ops import scan as _scan
from hybrid.ops import shape as _sh
from hybrid.ops import sorting as _so
from hybrid.ops.out import factory_with_out, with_out

_PLAIN = {
    _hy: "asin acos atan sinh cosh asinh acosh atanh arcsin arccos arctan arcsinh arccosh arctanh",
    _scan: "cumsum cumprod",
    _mx: "tril triu cross einsum addmm addmv baddbmm addbmm",
    _nm: "norm dist",
    _so: "sort argsort msort topk kthvalue unique bincount histc nonzero argwhere masked_select",
}
# Functions PyTorch gives an out= keyword (those returning one tensor).
_WITH_OUT = {
    _ew: "add sub mul div pow maximum minimum atan2 remainder floor_divide eq ne lt le gt ge "
         "logical_and logical_or logical_xor logical_not bitwise_and bitwise_or bitwise_xor "
         "bitwise_not neg abs sign floor ceil trunc round tan log2 log10 exp2 square clamp lerp "
         "nan_to_num where " + " ".join(_ew.FROM_TABLE),
    _rd: "sum prod mean amax amin argmax argmin logsumexp all any",
    _la: "matmul mm bmm dot outer",
    _sh: "cat concat stack flip",
    _hy: "asin acos atan sinh cosh asinh acosh atanh",
    _scan: "cumsum cumprod",
    _mx: "tril triu cross addmm addmv baddbmm addbmm",
    _nm: "norm dist",
}
_FACTORIES = {
    _cr: "zeros ones full empty arange linspace eye",
    _random: "rand randn randint randperm",
}

__all__ = ["linalg", "finfo", "iinfo", "int8", "int16", "short", "uint8"]

for _mod, _names in _PLAIN.items():
    for _n in _names.split():
        globals()[_n] = getattr(_mod, _n)
        __all__.append(_n)
for _mod, _names in _WITH_OUT.items():
    for _n in _names.split():
        globals()[_n] = with_out(getattr(_mod, _n), _n)
        if _n not in __all__:
            __all__.append(_n)
for _mod, _names in _FACTORIES.items():
    for _n in _names.split():
        globals()[_n] = factory_with_out(getattr(_mod, _n), _n)
        __all__.append(_n)

clip = clamp = globals()["clamp"]
multiply, subtract, divide, negative, absolute = (globals()[n] for n in
                                                  ("mul", "sub", "div", "neg", "abs"))
__all__ += ["clip", "multiply", "subtract", "divide", "negative", "absolute"]

# Function forms of the in-place unary ops (torch.sin_(x) is x.sin_()), as PyTorch has them.
_INPLACE = ("abs_ acos_ acosh_ arccos_ arcsin_ arctan_ asin_ asinh_ atan_ atanh_ ceil_ clamp_ "
            "clip_ cosh_ detach_ exp2_ fill_ floor_ log10_ log2_ nan_to_num_ neg_ negative_ relu_ "
            "round_ sinh_ square_ tan_ trunc_ zero_").split() + [n + "_" for n in _ew.FROM_TABLE]


def _inplace_function(name: str) -> Any:
    def fn(input: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(input, name)(*args, **kwargs)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"`input.{name}(...)`: updates input in place and returns it."
    return fn


for _n in _INPLACE:
    globals()[_n] = _inplace_function(_n)
    __all__.append(_n)


def svd(input: Any, some: bool = True, compute_uv: bool = True) -> Any:
    """torch.svd (deprecated in PyTorch for torch.linalg.svd, still in tutorials): (U, S, V) with
    V, not V^H; `some=False` gives the full U and V; compute_uv=False gives zero U and V."""
    u, s, vh = linalg.svd(input, full_matrices=not some)
    if not compute_uv:
        return _cr.zeros_like(u), s, _cr.zeros_like(vh)
    return u, s, vh.mT


__all__.append("svd")


# torch.det / torch.inverse / ... : the top-level linalg forms PyTorch kept from before
# torch.linalg (tutorials still use them), with their older argument names.
det, logdet, slogdet, inverse = linalg.det, linalg.logdet, linalg.slogdet, linalg.inv


def pinverse(input: Any, rcond: float = 1e-15) -> Any:
    """torch.pinverse: the pseudo-inverse, singular values below rcond * max cut off."""
    return linalg._plain("pinverse", lambda L, x: L.pinv(x, rcond), input)


def cholesky(input: Any, upper: bool = False) -> Any:
    """torch.cholesky (deprecated for torch.linalg.cholesky): L, or U = L^T when upper."""
    return linalg.cholesky(input, upper=upper)


def qr(input: Any, some: bool = True) -> Any:
    """torch.qr (deprecated for torch.linalg.qr): (Q, R); some=False is mode 'complete'."""
    return linalg.qr(input, mode="reduced" if some else "complete")


__all__ += ["det", "logdet", "slogdet", "inverse", "pinverse", "cholesky", "qr"]
