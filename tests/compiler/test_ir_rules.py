"""IR rules: for every primitive, the shape/dtype rule agrees with the reference implementation on
numpy arrays of the sample types, and rejects bad inputs with OpError."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir.control import Body
from compiler.ir.graph import Graph
from compiler.ir.ops import OPS, Kind, Literal, Op, OpError, impls, infer_type
from compiler.ir.types import DType, TensorType

NP = impls(np)
F32, F64, F16, I32, I64, B8 = (DType.float32, DType.float64, DType.float16, DType.int32,
                              DType.int64, DType.bool)


def T(dtype, *shape) -> TensorType:  # noqa: N802
    return TensorType(tuple(shape), dtype)


def array(t: TensorType, rng) -> np.ndarray:
    if t.dtype.is_bool:
        return rng.random(t.shape) < 0.5
    if t.dtype.is_integer:  # small: valid indices for gather/scatter along any sample axis
        return rng.integers(0, 2, t.shape).astype(t.dtype.np)
    return rng.uniform(0.5, 2.0, t.shape).astype(t.dtype.np)


UNARY = [op for op, d in OPS.items() if d.kind is Kind.UNARY]
BINARY = [op for op, d in OPS.items() if d.kind in (Kind.BINARY, Kind.COMPARE)]
FLOAT_ONLY = {op for op in UNARY if OPS[op].rule.__name__ == "unary_float"}

# (op, input types, attrs)
GOOD: list = []
for _op in UNARY:
    for _dt in (F32, F16, F64, I32, I64, B8):
        rule = OPS[_op].rule.__name__
        if (rule == "unary_float" and not _dt.is_floating) or (rule == "unary_bool" and _dt is not B8) \
                or (rule == "unary_numeric" and _dt is B8):
            continue
        GOOD += [(_op, [T(_dt, 3, 4)], {}), (_op, [T(_dt)], {}), (_op, [T(_dt, 0, 2)], {})]
for _op in BINARY:
    rule = OPS[_op].rule.__name__
    for _dt in (F32, F64, F16, I32, I64, B8):
        if (rule == "binary_float" and not _dt.is_floating) or (
                rule == "binary_numeric" and _dt is B8) or (rule == "binary_bitwise" and _dt.is_floating):
            continue
        GOOD += [(_op, [T(_dt, 3, 4), T(_dt, 4)], {}), (_op, [T(_dt, 2, 1, 3), T(_dt, 4, 1)], {}),
                 (_op, [T(_dt), T(_dt, 0, 3)], {})]
GOOD += [
    (Op.WHERE, [T(B8, 3, 1), T(F32, 4), T(F32, 3, 4)], {}),
    (Op.WHERE, [T(B8), T(I64, 2), T(I64)], {}),
    *[(Op.CAST, [T(s, 2, 3)], {"dtype": d}) for s in (F32, I32, B8, F16) for d in DType],
    (Op.SUM, [T(F32, 2, 3, 4)], {"axes": (0, 2)}), (Op.SUM, [T(I64, 2, 3)], {"axes": ()}),
    (Op.SUM, [T(F16, 2, 3)], {"axes": (1,)}), (Op.SUM, [T(F32, 0, 3)], {"axes": (0,)}),
    (Op.PROD, [T(F64, 2, 3)], {"axes": (1,)}), (Op.PROD, [T(I32, 2, 3)], {"axes": (0, 1)}),
    (Op.MAX, [T(F32, 2, 3)], {"axes": (1,)}), (Op.MAX, [T(I32, 4)], {"axes": (0,)}),
    (Op.MAX, [T(F32, 0, 3)], {"axes": (1,)}),
    (Op.RESHAPE, [T(F32, 2, 6)], {"shape": (3, 4)}), (Op.RESHAPE, [T(I64)], {"shape": (1, 1)}),
    (Op.RESHAPE, [T(F32, 0, 3)], {"shape": (3, 0)}),
    (Op.PERMUTE, [T(F32, 2, 3, 4)], {"perm": (2, 0, 1)}), (Op.PERMUTE, [T(B8)], {"perm": ()}),
    (Op.EXPAND, [T(F32, 3, 1)], {"shape": (2, 3, 4)}), (Op.EXPAND, [T(I32)], {"shape": (2,)}),
    (Op.SLICE, [T(F32, 5, 6)], {"starts": (1, 0), "stops": (5, 6), "steps": (2, 3)}),
    (Op.SLICE, [T(F32, 5)], {"starts": (2,), "stops": (2,), "steps": (1,)}),
    (Op.PAD, [T(F32, 2, 3)], {"pads": ((1, 0, 0), (0, 2, 1)), "value": 0.0}),
    (Op.PAD, [T(I64, 0)], {"pads": ((1, 1, 2),), "value": 3}),
    (Op.CONCAT, [T(F32, 2, 3), T(F32, 4, 3)], {"axis": 0}),
    (Op.CONCAT, [T(I32, 2, 3), T(I32, 2, 1), T(I32, 2, 0)], {"axis": 1}),
    (Op.MATMUL, [T(F32, 2, 3), T(F32, 3, 4)], {}), (Op.MATMUL, [T(I64, 5, 2, 3), T(I64, 5, 3, 1)], {}),
    (Op.MATMUL, [T(F64, 0, 3), T(F64, 3, 2)], {}),
    (Op.GATHER, [T(F32, 4, 3), T(I64, 2, 5)], {"axis": 0}),
    (Op.GATHER, [T(F32, 4, 3), T(I32, 2)], {"axis": 1}),
    (Op.SCATTER, [T(F32, 4, 3), T(I64, 2), T(F32, 2, 3)], {"axis": 0}),
    (Op.SCATTER_ADD, [T(F32, 4, 3), T(I64, 2, 2), T(F32, 4, 2, 2)], {"axis": 1}),
    (Op.CONSTANT, [], {"value": Literal(np.arange(6)), "shape": (2, 3), "dtype": F32}),
    (Op.FULL, [], {"value": 1.5, "shape": (2, 3), "dtype": F64}),
    (Op.FULL, [], {"value": True, "shape": (), "dtype": B8}),
    (Op.IOTA, [], {"shape": (3, 4), "axis": 1, "dtype": I64}),
    (Op.IOTA, [], {"shape": (3,), "axis": 0, "dtype": F32}),
    (Op.RAND, [T(I64, 2)], {"shape": (3, 4), "dtype": F32, "offset": 0}),
    (Op.RAND, [T(I64, 2)], {"shape": (5,), "dtype": F64, "offset": 7}),
    (Op.RAND, [T(I64, 2)], {"shape": (2,), "dtype": F16, "offset": 0}),
]


def _id(case) -> str:
    op, ts, attrs = case
    return f"{op.value}(" + ",".join(map(str, ts)) + ")" + (str(sorted(attrs)) if attrs else "")


def _body(ins: list, outs) -> Body:
    """A body graph on inputs `ins` whose results `outs(graph, values)` builds."""
    g = Graph(name="body")
    vs = [g.add_input(t) for t in ins]
    g.set_outputs(outs(g, vs))
    return Body(g)


# scan body: (carry f32[3], x f32[3], const f32[3]) -> (carry * const + x, tanh(carry))
_SCAN = _body([T(F32, 3)] * 3, lambda g, v: [g.add(Op.ADD, [g.add(Op.MUL, [v[0], v[2]]), v[1]]),
                                             g.add(Op.TANH, [v[0]])])
# while: (c f32[], limit f32[]): while c < limit + 2: c = c + limit (limit >= 0.5: it ends)
_COND = _body([T(F32), T(F32)], lambda g, v: [g.add(Op.LT, [v[0], g.add(
    Op.ADD, [v[1], g.add(Op.FULL, [], value=2.0, shape=(), dtype=F32)])])])
_STEP = _body([T(F32), T(F32)], lambda g, v: [g.add(Op.ADD, [v[0], v[1]])])
_THEN = _body([T(F32, 2), T(I64, 2)], lambda g, v: [g.add(Op.EXP, [v[0]]), v[1]])
_ELSE = _body([T(F32, 2), T(I64, 2)], lambda g, v: [v[0], g.add(Op.NEG, [v[1]])])
_SCAN_ATTRS = {"body": _SCAN, "n_carry": 1, "n_x": 1, "length": 4, "reverse": False}
GOOD += [
    *[(Op.SCAN, [T(F32, 3), T(F32, 4, 3), T(F32, 3)], dict(_SCAN_ATTRS, history=h, index=k))
      for h, k in ((False, 0), (False, 1), (True, 2))],
    (Op.SCAN, [T(F32, 3), T(F32, 4, 3), T(F32, 3)], dict(_SCAN_ATTRS, reverse=True, index=1)),
    (Op.WHILE, [T(F32), T(F32)], {"cond": _COND, "body": _STEP, "n_carry": 1, "index": 0}),
    *[(Op.COND, [T(B8), T(F32, 2), T(I64, 2)], {"then": _THEN, "else_": _ELSE, "index": k})
      for k in (0, 1)],
]
BAD_CONTROL = [
    (Op.SCAN, [T(F32, 3), T(F32, 5, 3), T(F32, 3)], dict(_SCAN_ATTRS, index=0)),  # length
    (Op.SCAN, [T(F64, 3), T(F32, 4, 3), T(F32, 3)], dict(_SCAN_ATTRS, index=0)),  # carry dtype
    (Op.SCAN, [T(F32, 3), T(F32, 4, 3)], dict(_SCAN_ATTRS, index=0)),  # arity
    (Op.SCAN, [T(F32, 3), T(F32, 4, 3), T(F32, 3)], dict(_SCAN_ATTRS, index=2)),  # no history
    (Op.WHILE, [T(F32), T(F32)], {"cond": _STEP, "body": _STEP, "n_carry": 1}),  # cond not bool
    (Op.WHILE, [T(F64), T(F32)], {"cond": _COND, "body": _STEP, "n_carry": 1}),
    (Op.COND, [T(F32), T(F32, 2), T(I64, 2)], {"then": _THEN, "else_": _ELSE}),  # pred
    (Op.COND, [T(B8), T(F32, 2), T(I64, 2)], {"then": _THEN, "else_": _THEN, "index": 5}),
]


@pytest.mark.parametrize("case", GOOD, ids=[_id(c) for c in GOOD])
def test_rule_matches_reference(case) -> None:
    op, ts, attrs = case
    rng = np.random.default_rng(0)
    want = infer_type(op, ts, attrs)
    xs = [array(t, rng) for t in ts]
    if op is Op.RAND:
        xs = [np.array([42, 0], dtype=np.int64)]
    if op in (Op.FLOORDIV, Op.REMAINDER) and xs[1].dtype.kind in "iu":
        xs[1] = np.where(xs[1] == 0, 1, xs[1])  # integer division by zero raises (as PyTorch)
    with np.errstate(all="ignore"):
        out = np.asarray(NP[op](*xs, **attrs))
    got = TensorType(tuple(out.shape), DType.from_np(out.dtype))
    assert got == want, f"{_id(case)}: rule {want}, reference {got}"


BAD = [
    (Op.EXP, [T(I32, 3)], {}), (Op.NEG, [T(B8, 3)], {}), (Op.NOT, [T(F32, 3)], {}),
    (Op.ADD, [T(F32, 3), T(F64, 3)], {}), (Op.ADD, [T(F32, 3), T(F32, 4)], {}),
    (Op.SUB, [T(B8, 3), T(B8, 3)], {}), (Op.DIV, [T(I32, 3), T(I32, 3)], {}),
    (Op.AND, [T(F32, 3), T(F32, 3)], {}), (Op.LT, [T(F32, 2), T(I32, 2)], {}),
    (Op.WHERE, [T(F32, 2), T(F32, 2), T(F32, 2)], {}),
    (Op.WHERE, [T(B8, 2), T(F32, 2), T(I32, 2)], {}),
    (Op.SUM, [T(F32, 2, 3)], {"axes": (2,)}), (Op.SUM, [T(F32, 2, 3)], {"axes": (1, 0)}),
    (Op.SUM, [T(B8, 2)], {"axes": (0,)}), (Op.PROD, [T(F32, 2)], {"axes": (1,)}), (Op.MAX, [T(F32, 0, 3)], {"axes": (0,)}),
    (Op.RESHAPE, [T(F32, 2, 3)], {"shape": (4, 2)}), (Op.RESHAPE, [T(F32, 2, 3)], {"shape": (-1, 3)}),
    (Op.PERMUTE, [T(F32, 2, 3)], {"perm": (0, 0)}),
    (Op.EXPAND, [T(F32, 3, 2)], {"shape": (3, 4)}), (Op.EXPAND, [T(F32, 3)], {"shape": ()}),
    (Op.SLICE, [T(F32, 5)], {"starts": (3,), "stops": (2,), "steps": (1,)}),
    (Op.SLICE, [T(F32, 5)], {"starts": (0,), "stops": (6,), "steps": (1,)}),
    (Op.SLICE, [T(F32, 5)], {"starts": (0,), "stops": (5,), "steps": (0,)}),
    (Op.PAD, [T(F32, 2)], {"pads": ((-1, 0, 0),), "value": 0.0}),
    (Op.PAD, [T(F32, 2)], {"pads": (), "value": 0.0}),
    (Op.CONCAT, [T(F32, 2, 3), T(F32, 2, 4)], {"axis": 0}),
    (Op.CONCAT, [T(F32, 2, 3), T(F64, 2, 3)], {"axis": 0}),
    (Op.CONCAT, [T(F32, 2, 3)], {"axis": 2}), (Op.CONCAT, [], {"axis": 0}),
    (Op.MATMUL, [T(F32, 32, 64), T(F32, 32, 10)], {}), (Op.MATMUL, [T(F32, 3), T(F32, 3)], {}),
    (Op.MATMUL, [T(B8, 2, 2), T(B8, 2, 2)], {}), (Op.MATMUL, [T(F32, 2, 2, 3), T(F32, 3, 3, 2)], {}),
    (Op.GATHER, [T(F32, 4), T(F32, 2)], {"axis": 0}), (Op.GATHER, [T(F32, 4), T(I64, 2)], {"axis": 1}),
    (Op.SCATTER, [T(F32, 4, 3), T(I64, 2), T(F32, 2, 2)], {"axis": 0}),
    (Op.SCATTER_ADD, [T(F32, 4), T(I64, 2), T(F64, 2)], {"axis": 0}),
    (Op.RAND, [T(I32, 2)], {"shape": (2,), "dtype": F32, "offset": 0}),
    (Op.RAND, [T(I64, 2)], {"shape": (2,), "dtype": I32, "offset": 0}),
    (Op.ADD, [T(F32, 2)], {}),  # arity
    *BAD_CONTROL,
]


@pytest.mark.parametrize("case", BAD, ids=[_id(c) for c in BAD])
def test_rule_rejects_bad_inputs(case) -> None:
    op, ts, attrs = case
    with pytest.raises(OpError) as e:
        infer_type(op, ts, attrs)
    assert str(e.value).startswith(op.value + ":")
    assert e.value.kind in (ValueError, TypeError, IndexError)


def test_matmul_message_names_types() -> None:
    with pytest.raises(OpError, match=r"f32\[32,64\].*f32\[32,10\]"):
        infer_type(Op.MATMUL, [T(F32, 32, 64), T(F32, 32, 10)], {})


def test_every_op_is_covered() -> None:
    assert {c[0] for c in GOOD} == set(Op)
    assert {c[0] for c in BAD} >= {op for op in Op if op not in
                                   (Op.COPY, Op.CAST, Op.CONSTANT, Op.FULL, Op.IOTA, Op.ABS,
                                    Op.SIGN) and OPS[op].kind not in (Kind.UNARY, Kind.BINARY,
                                                                        Kind.COMPARE)}
    assert set(OPS) == set(Op) and set(NP) == set(Op)


def test_type_printing() -> None:
    assert str(T(F32, 128, 512)) == "f32[128,512]" and str(T(B8)) == "b8[]"
