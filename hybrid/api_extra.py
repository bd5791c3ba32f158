"""The top-level names of the extra ops, and the public functions that accept PyTorch's `out=`
keyword (hybrid/__init__.py re-exports everything in __all__)."""

from __future__ import annotations

from hybrid import linalg  # noqa: F401  (hybrid.linalg)
from hybrid import random as _random
from hybrid.dtypes import finfo, iinfo, int8, int16, short, uint8  # noqa: F401
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
         "bitwise_not neg abs sign floor ceil trunc round exp log sqrt rsqrt sin cos tan tanh erf "
         "sigmoid log1p expm1 reciprocal log2 log10 exp2 square clamp lerp nan_to_num where",
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
