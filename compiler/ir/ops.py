"""The primitive op set: one enum and one table row per op, the registry every layer reads.

A row declares the op's kind, arity, shape/dtype rule, whether it is differentiable, its cost
class (what fusion pays to inline it), its reference implementation (an array-API name, a
`special:` function, or by default the op's entry in reference.make_impls) and the frontend it
gets (`frontend=`: a public hybrid function, Tensor method, in-place method and out= form made
from the row by hybrid/ops/elementwise.py, or a reduction by hybrid/ops/reduce.py). Gradients
are registered beside it in hybrid/ops/vjp.py and lowerings per backend
(compiler/codegen/llvm_scalar.py); the registry test
(tests/compiler/test_registry.py) checks that every row has all three. Everything a user calls is
composed of these."""

from __future__ import annotations

import enum
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.ir import control, infer
from compiler.ir.reference import make_impls
from compiler.ir.types import DType, OpError, TensorType


class Op(enum.Enum):
    """A primitive. The value is its printed name."""

    # unary elementwise
    NEG = "neg"
    ABS = "abs"
    SIGN = "sign"
    EXP = "exp"
    LOG = "log"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    SIN = "sin"
    COS = "cos"
    TANH = "tanh"
    ERF = "erf"
    ERFC = "erfc"
    SIGMOID = "sigmoid"
    LOG1P = "log1p"
    EXPM1 = "expm1"
    RECIPROCAL = "reciprocal"
    FLOOR = "floor"
    CEIL = "ceil"
    ROUND = "round"
    TRUNC = "trunc"
    NOT = "not"
    COPY = "copy"
    # binary elementwise (numpy broadcasting, equal dtypes)
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    POW = "pow"
    MAXIMUM = "maximum"
    MINIMUM = "minimum"
    FLOORDIV = "floordiv"
    REMAINDER = "remainder"
    ATAN2 = "atan2"
    AND = "and"
    OR = "or"
    XOR = "xor"
    # comparisons (-> bool)
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    # other elementwise
    WHERE = "where"
    CAST = "cast"
    # reductions over `axes`, dims kept as size 1
    SUM = "sum"
    PROD = "prod"
    MAX = "max"
    # movement
    RESHAPE = "reshape"
    PERMUTE = "permute"
    EXPAND = "expand"
    SLICE = "slice"
    PAD = "pad"
    CONCAT = "concat"
    # compute and indexing
    MATMUL = "matmul"
    GATHER = "gather"
    SCATTER = "scatter"
    SCATTER_ADD = "scatter_add"
    # sources (no tensor inputs, except rand's generator state)
    CONSTANT = "constant"
    FULL = "full"
    IOTA = "iota"
    RAND = "rand"
    # control flow: body graphs in attributes (compiler/ir/control.py)
    SCAN = "scan"
    WHILE = "while"
    COND = "cond"

    def __repr__(self) -> str:
        return f"Op.{self.name}"


class Kind(enum.Enum):
    """What shape of computation a primitive is; passes and code generators group by it."""

    UNARY = "unary"
    BINARY = "binary"
    COMPARE = "compare"
    TERNARY = "ternary"
    CAST = "cast"
    REDUCE = "reduce"
    MOVEMENT = "movement"
    MATMUL = "matmul"
    INDEX = "index"
    SOURCE = "source"
    CONTROL = "control"


# Cost classes: the size fusion charges for inlining an op's expression into a consumer kernel
# (passes/fuse.py recomputes shared values up to a budget instead of storing them).
FREE = 0  # index arithmetic only (movement, a broadcast scalar)
CHEAP = 1  # one or two instructions
EXPENSIVE = 6  # a transcendental, a division, a data-dependent load


@dataclass(frozen=True)
class OpDef:
    """One row of the op table."""

    kind: Kind
    arity: int | None  # number of tensor inputs; None = variadic (concat)
    rule: Callable[..., TensorType]
    differentiable: bool = True
    cost: int = CHEAP
    # The reference implementation: None = reference.make_impls()[op.value]; "name" = the array
    # module's function of that name (numpy and CuPy share it); "special:name" = scipy.special's
    # (cupyx.scipy.special's) function, its result cast back to the input dtype.
    ref: str | None = None
    # The public function made from the row: None = written by hand in hybrid/ops; "float" =
    # f(x) applies the op after promoting integers and bools to the default float dtype
    # (hybrid/ops/elementwise.py); "accumulate" = f(x, dim=None, keepdim=False, *, dtype=None)
    # reduces with bools and integers accumulated as int64 (hybrid/ops/reduce.py).
    frontend: str | None = None


_U, _B = Kind.UNARY, Kind.BINARY
_X = EXPENSIVE


def _float_unary(ref: str | None = None, cost: int = _X) -> OpDef:
    """A unary float op with a public function of its own name (exp, erf, ...)."""
    return OpDef(_U, 1, infer.unary_float, cost=cost, ref=ref, frontend="float")


OPS: dict[Op, OpDef] = {
    Op.NEG: OpDef(_U, 1, infer.unary_numeric),
    Op.ABS: OpDef(_U, 1, infer.unary_numeric),
    Op.SIGN: OpDef(_U, 1, infer.unary_numeric),
    Op.EXP: _float_unary("exp"),
    Op.LOG: _float_unary("log"),
    Op.SQRT: _float_unary("sqrt"),
    Op.RSQRT: _float_unary(),
    Op.SIN: _float_unary("sin"),
    Op.COS: _float_unary("cos"),
    Op.TANH: _float_unary("tanh"),
    Op.ERF: _float_unary("special:erf"),
    Op.ERFC: _float_unary("special:erfc"),
    Op.SIGMOID: _float_unary(),
    Op.LOG1P: _float_unary("log1p"),
    Op.EXPM1: _float_unary("expm1"),
    Op.RECIPROCAL: _float_unary("reciprocal", cost=CHEAP),
    Op.FLOOR: OpDef(_U, 1, infer.unary_float),
    Op.CEIL: OpDef(_U, 1, infer.unary_float),
    Op.ROUND: OpDef(_U, 1, infer.unary_float),
    Op.TRUNC: OpDef(_U, 1, infer.unary_float),
    Op.NOT: OpDef(_U, 1, infer.unary_bool, differentiable=False),
    Op.COPY: OpDef(_U, 1, infer.identity),
    Op.ADD: OpDef(_B, 2, infer.binary_any),
    Op.SUB: OpDef(_B, 2, infer.binary_numeric),
    Op.MUL: OpDef(_B, 2, infer.binary_any),
    Op.DIV: OpDef(_B, 2, infer.binary_float, cost=_X),
    Op.POW: OpDef(_B, 2, infer.binary_numeric, cost=_X),
    Op.MAXIMUM: OpDef(_B, 2, infer.binary_any),
    Op.MINIMUM: OpDef(_B, 2, infer.binary_any),
    Op.FLOORDIV: OpDef(_B, 2, infer.binary_numeric, differentiable=False),
    Op.REMAINDER: OpDef(_B, 2, infer.binary_numeric),
    Op.ATAN2: OpDef(_B, 2, infer.binary_float, cost=_X),
    Op.AND: OpDef(_B, 2, infer.binary_bitwise, differentiable=False),
    Op.OR: OpDef(_B, 2, infer.binary_bitwise, differentiable=False),
    Op.XOR: OpDef(_B, 2, infer.binary_bitwise, differentiable=False),
    Op.EQ: OpDef(Kind.COMPARE, 2, infer.compare, differentiable=False),
    Op.NE: OpDef(Kind.COMPARE, 2, infer.compare, differentiable=False),
    Op.LT: OpDef(Kind.COMPARE, 2, infer.compare, differentiable=False),
    Op.LE: OpDef(Kind.COMPARE, 2, infer.compare, differentiable=False),
    Op.GT: OpDef(Kind.COMPARE, 2, infer.compare, differentiable=False),
    Op.GE: OpDef(Kind.COMPARE, 2, infer.compare, differentiable=False),
    Op.WHERE: OpDef(Kind.TERNARY, 3, infer.where),
    Op.CAST: OpDef(Kind.CAST, 1, infer.cast),
    Op.SUM: OpDef(Kind.REDUCE, 1, infer.reduce, frontend="accumulate"),
    Op.PROD: OpDef(Kind.REDUCE, 1, infer.reduce, frontend="accumulate"),
    Op.MAX: OpDef(Kind.REDUCE, 1, infer.reduce),
    Op.RESHAPE: OpDef(Kind.MOVEMENT, 1, infer.reshape, cost=FREE),
    Op.PERMUTE: OpDef(Kind.MOVEMENT, 1, infer.permute, cost=FREE),
    Op.EXPAND: OpDef(Kind.MOVEMENT, 1, infer.expand, cost=FREE),
    Op.SLICE: OpDef(Kind.MOVEMENT, 1, infer.slice_, cost=FREE),
    Op.PAD: OpDef(Kind.MOVEMENT, 1, infer.pad, cost=_X),
    Op.CONCAT: OpDef(Kind.MOVEMENT, None, infer.concat),
    Op.MATMUL: OpDef(Kind.MATMUL, 2, infer.matmul),
    Op.GATHER: OpDef(Kind.INDEX, 2, infer.gather, cost=_X),
    Op.SCATTER: OpDef(Kind.INDEX, 3, infer.scatter),
    Op.SCATTER_ADD: OpDef(Kind.INDEX, 3, infer.scatter),
    Op.CONSTANT: OpDef(Kind.SOURCE, 0, infer.source, differentiable=False),
    Op.FULL: OpDef(Kind.SOURCE, 0, infer.source, differentiable=False, cost=FREE),
    Op.IOTA: OpDef(Kind.SOURCE, 0, infer.source, differentiable=False),
    Op.RAND: OpDef(Kind.SOURCE, 1, infer.rand, differentiable=False, cost=_X),
    # differentiated as a whole by hybrid/control_flow.py (a custom Function), not per node
    Op.SCAN: OpDef(Kind.CONTROL, None, control.result_type, differentiable=False, ref="control"),
    Op.WHILE: OpDef(Kind.CONTROL, None, control.result_type, differentiable=False,
                    ref="control"),
    Op.COND: OpDef(Kind.CONTROL, None, control.result_type, differentiable=False, ref="control"),
}

CONTROL = frozenset(op for op, d in OPS.items() if d.kind is Kind.CONTROL)

ELEMENTWISE = frozenset(
    op for op, d in OPS.items() if d.kind in (Kind.UNARY, Kind.BINARY, Kind.COMPARE,
                                              Kind.TERNARY, Kind.CAST)
)


def infer_type(op: Op, types: list[TensorType] | tuple[TensorType, ...], attrs: dict) -> TensorType:
    """The output type of `op` on inputs of `types`; OpError if the rule rejects them."""
    d = OPS[op]
    if d.arity is not None and len(types) != d.arity:
        raise OpError(op.value, f"takes {d.arity} inputs, got {len(types)}", TypeError)
    if d.arity is None and not types and d.kind is not Kind.CONTROL:
        raise OpError(op.value, "needs at least one input", TypeError)
    return d.rule(op.value, types, **attrs)


class Literal:
    """A constant array held by a `constant` node: hashable by content, printed briefly."""

    __slots__ = ("array", "_key")

    def __init__(self, array: Any):
        self.array = np.ascontiguousarray(array)
        self.array.setflags(write=False)
        digest = hashlib.sha1(self.array.tobytes()).hexdigest()
        self._key = (self.array.dtype.str, self.array.shape, digest)

    def __hash__(self) -> int:
        return hash(self._key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Literal) and other._key == self._key

    def __repr__(self) -> str:
        if self.array.size <= 4:
            return np.array2string(self.array, separator=",").replace("\n", "")
        return f"<{self.array.size} values>"


def _same_dtype(fn: Callable) -> Callable:
    """`fn` with its result cast back to the input dtype (scipy's erf computes half in float64)."""

    def run(x):
        return fn(x).astype(x.dtype, copy=False)

    return run


def _control_impl(name: str, xp: Any) -> Callable:
    """A control-flow node run on its own (one result; the interpreter runs siblings once)."""

    def run(*arrays: Any, **attrs: Any) -> Any:
        from compiler.ir.interpret import interpret

        res = control.run(name, list(arrays), attrs, lambda g, a: interpret(g, a, xp), xp)
        return res[attrs.get("index", 0)]

    return run


@functools.cache
def impls(xp: Any) -> dict[Op, Callable]:
    """The reference implementations bound to array module `xp` (numpy or cupy), keyed by Op."""
    if xp is np:
        import scipy.special as special

        by_name = make_impls(np, np.add.at)
    else:  # CuPy
        import cupyx
        import cupyx.scipy.special as special

        by_name = make_impls(xp, cupyx.scatter_add)
    table = {}
    for op, d in OPS.items():
        if d.ref is None:
            table[op] = by_name[op.value]
        elif d.ref == "control":
            table[op] = _control_impl(op.value, xp)
        elif d.ref.startswith("special:"):
            table[op] = _same_dtype(getattr(special, d.ref.removeprefix("special:")))
        else:
            table[op] = getattr(xp, d.ref)
    return table


__all__ = ["Op", "Kind", "OpDef", "OPS", "ELEMENTWISE", "CONTROL", "infer_type", "impls", "Literal",
           "OpError", "DType", "TensorType", "FREE", "CHEAP", "EXPENSIVE"]
