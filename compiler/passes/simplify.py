"""Algebraic simplification: a table of rewrite rules (`RULES`) run to a fixed point.

Every rule is exact in IEEE arithmetic and keeps the node's shape and dtype:
  * `x + 0.0 -> x` is NOT a rule for floats: (-0.0) + 0.0 is +0.0. Only `x + (-0.0) -> x` is
    exact (and `x + 0` for ints/bool). `x - 0.0 -> x` is exact (-0.0 - 0.0 = -0.0).
  * `x * 0 -> 0` only for ints/bool: for floats inf * 0 and NaN * 0 are NaN, and -1.0 * 0 is -0.0.
  * A "one"/"zero" is a `full` node or a `constant` with that value in every element (same bits).
  * NOTE: when broadcasting against the constant makes the result larger than `x`
    (`x: f32[3] * ones(f32[4,3])`), the node becomes `expand(x, shape=(4,3))`, a view, rather
    than being left alone: the arithmetic goes, the shape stays right.
  * `copy(x) -> x`: the IR is SSA with no in-place ops, so a copy is only the value again
    (buffer aliasing is decided later, by memory planning); a copy of a permuted, sliced or
    expanded view stays, as the row-major array eager made there.
Replacement values that the rules leave unused are removed by `dce`."""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph, Node, Value
from compiler.ir.ops import Op
from compiler.ir.types import DType
from compiler.passes.patterns import Context, New, Replacement, Rule, rewrite

# (narrow, wide): casting narrow -> wide -> narrow gives back every narrow value exactly.
LOSSLESS = frozenset({
    (DType.float16, DType.float32), (DType.float16, DType.float64),
    (DType.float32, DType.float64),
    (DType.int32, DType.int64), (DType.int32, DType.float64),
    (DType.bool, DType.int32), (DType.bool, DType.int64),
    (DType.bool, DType.float16), (DType.bool, DType.float32), (DType.bool, DType.float64),
})


# --- what a constant operand holds -------------------------------------------------------------

def is_one(ctx: Context, v: Value) -> bool:
    s = ctx.scalar(v)
    return s is not None and s == 1


def is_zero(ctx: Context, v: Value) -> bool:
    """Zero of either sign (for ints/bool there is only one)."""
    s = ctx.scalar(v)
    return s is not None and s == 0


def is_zero_signed(ctx: Context, v: Value, negative: bool) -> bool:
    """A float zero of the given sign."""
    s = ctx.scalar(v)
    return s is not None and s == 0 and bool(np.signbit(s)) == negative


def is_additive_identity(ctx: Context, v: Value) -> bool:
    """x + v == x for every x: -0.0 for floats, 0 for ints/bool."""
    if v.type.dtype.is_floating:
        return is_zero_signed(ctx, v, negative=True)
    return is_zero(ctx, v)


def keep(x: Value, node: Node) -> Replacement:
    """`x` as the node's result: x itself when the types agree, else x broadcast to the shape."""
    if x.type == node.out.type:
        return x
    if x.type.dtype is node.out.type.dtype:
        return New(Op.EXPAND, (x,), {"shape": node.out.type.shape})
    return None


# --- the rules ---------------------------------------------------------------------------------

def mul_one(n: Node, ctx: Context) -> Replacement:
    a, b = n.inputs
    if is_one(ctx, b):
        return keep(a, n)
    if is_one(ctx, a):
        return keep(b, n)
    return None


def mul_zero(n: Node, ctx: Context) -> Replacement:
    if n.out.type.dtype.is_floating:
        return None
    for z in n.inputs:
        if is_zero(ctx, z):
            if z.type == n.out.type:
                return z
            return New(Op.FULL, (), {"value": 0, "shape": n.out.type.shape,
                                     "dtype": n.out.type.dtype})
    return None


def add_zero(n: Node, ctx: Context) -> Replacement:
    a, b = n.inputs
    if is_additive_identity(ctx, b):
        return keep(a, n)
    if is_additive_identity(ctx, a):
        return keep(b, n)
    return None


def sub_zero(n: Node, ctx: Context) -> Replacement:
    a, b = n.inputs
    if b.type.dtype.is_floating:
        ok = is_zero_signed(ctx, b, negative=False)
    else:
        ok = is_zero(ctx, b)
    return keep(a, n) if ok else None


def div_one(n: Node, ctx: Context) -> Replacement:
    a, b = n.inputs
    return keep(a, n) if is_one(ctx, b) else None


def neg_neg(n: Node, ctx: Context) -> Replacement:
    inner = ctx.producer(n.inputs[0])
    return inner.inputs[0] if inner is not None and inner.op is Op.NEG else None


def permute_identity(n: Node, ctx: Context) -> Replacement:
    perm = n.attrs["perm"]
    return n.inputs[0] if tuple(perm) == tuple(range(len(perm))) else None


def permute_permute(n: Node, ctx: Context) -> Replacement:
    inner = ctx.producer(n.inputs[0])
    if inner is None or inner.op is not Op.PERMUTE:
        return None
    p, q = inner.attrs["perm"], n.attrs["perm"]
    return New(Op.PERMUTE, inner.inputs, {"perm": tuple(p[i] for i in q)})


def transpose_of_matmul(n: Node, ctx: Context) -> Replacement:
    """permute(a @ b) swapping the last two dims -> permute(b) @ permute(a), when the product has
    no other use: the same sums of the same products, computed straight into the layout the
    consumer reads (a weight gradient (x^T g)^T becomes g^T x; its permutes fold into BLAS)."""
    inner = ctx.producer(n.inputs[0])
    perm = tuple(n.attrs["perm"])
    r = len(perm)
    if inner is None or inner.op is not Op.MATMUL or ctx.uses(inner.out) != 1 or \
            perm[-2:] != (r - 1, r - 2):
        return None
    a, b = inner.inputs
    return New(Op.MATMUL, (New(Op.PERMUTE, (b,), {"perm": perm}),
                           New(Op.PERMUTE, (a,), {"perm": perm})))


def same_op_twice(n: Node, ctx: Context) -> Replacement:
    """reshape(reshape(x)) and expand(expand(x)): only the outer shape matters."""
    inner = ctx.producer(n.inputs[0])
    if inner is None or inner.op is not n.op:
        return None
    return New(n.op, inner.inputs, {"shape": n.attrs["shape"]})


def movement_identity(n: Node, ctx: Context) -> Replacement:
    """reshape/expand/slice/pad to the input's own shape move nothing (a same-shape slice is the
    whole range; a same-shape pad adds nothing)."""
    x = n.inputs[0]
    return x if x.type == n.out.type else None


def cast_same(n: Node, ctx: Context) -> Replacement:
    x = n.inputs[0]
    return x if x.type.dtype is n.attrs["dtype"] else None


def cast_round_trip(n: Node, ctx: Context) -> Replacement:
    inner = ctx.producer(n.inputs[0])
    if inner is None or inner.op is not Op.CAST:
        return None
    x = inner.inputs[0]
    if x.type.dtype is n.attrs["dtype"] and (x.type.dtype, inner.attrs["dtype"]) in LOSSLESS:
        return x
    return None


def copy_value(n: Node, ctx: Context) -> Replacement:
    # NOTE: a copy of a permuted, sliced or expanded view stays: it is where eager makes a
    # row-major array (x.contiguous(), a conv's NCHW result), and reductions over it must see
    # eager's memory order for the interpreter to match eager bit for bit. The native backend
    # fuses it like any elementwise identity.
    src = ctx.producer(n.inputs[0])
    if src is not None and src.op in (Op.PERMUTE, Op.SLICE, Op.EXPAND):
        return None
    return n.inputs[0]


def where_same(n: Node, ctx: Context) -> Replacement:
    c, x, y = n.inputs
    return keep(x, n) if x is y else None


def where_known(n: Node, ctx: Context) -> Replacement:
    c, x, y = n.inputs
    s = ctx.scalar(c)
    if s is None:
        return None
    return keep(x if s else y, n)  # (broadcast to the result's shape when c made it larger)


def _rule(name: str, ops: tuple[Op, ...], fn) -> Rule:
    return Rule(name, frozenset(ops), fn)


RULES: list[Rule] = [
    _rule("x*1 -> x, 1*x -> x", (Op.MUL,), mul_one),
    _rule("x*0 -> 0 (int/bool)", (Op.MUL,), mul_zero),
    _rule("x+(-0.0) -> x (float), x+0 -> x (int/bool)", (Op.ADD,), add_zero),
    _rule("x-0 -> x", (Op.SUB,), sub_zero),
    _rule("x/1 -> x", (Op.DIV,), div_one),
    _rule("neg(neg(x)) -> x", (Op.NEG,), neg_neg),
    _rule("permute(x, identity) -> x", (Op.PERMUTE,), permute_identity),
    _rule("permute(permute(x)) -> permute(x)", (Op.PERMUTE,), permute_permute),
    _rule("reshape/expand/slice/pad to the input type -> x",
          (Op.RESHAPE, Op.EXPAND, Op.SLICE, Op.PAD), movement_identity),
    _rule("permute(a @ b) -> permute(b) @ permute(a) (a product used once)", (Op.PERMUTE,),
          transpose_of_matmul),
    _rule("reshape(reshape(x)) -> reshape(x), expand(expand(x)) -> expand(x)",
          (Op.RESHAPE, Op.EXPAND), same_op_twice),
    _rule("cast(x, x.dtype) -> x", (Op.CAST,), cast_same),
    _rule("cast(cast(x, wide), narrow) -> x", (Op.CAST,), cast_round_trip),
    _rule("copy(x) -> x (x not a permuted, sliced or expanded view)", (Op.COPY,), copy_value),
    _rule("where(c, x, x) -> x", (Op.WHERE,), where_same),
    _rule("where(true, x, y) -> x, where(false, x, y) -> y", (Op.WHERE,),
          where_known),
]


def simplify(graph: Graph) -> Graph:
    """The graph rewritten by RULES until none applies (unused leftovers stay for dce)."""
    return rewrite(graph, RULES)
