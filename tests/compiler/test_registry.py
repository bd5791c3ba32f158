"""The op registry (compiler/ir/ops.py) is complete: every primitive has a reference, a cost class,
a gradient when it is differentiable, and a native lowering (or a declared fallback) for every
dtype its rule accepts; the frontend functions made from the table exist in every form."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from compiler.codegen import llvm_scalar
from compiler.ir.graph import Graph
from compiler.ir.ops import CHEAP, ELEMENTWISE, EXPENSIVE, FREE, OPS, Kind, Op, OpError, impls
from compiler.ir.types import NATIVE, DType, TensorType
from hybrid.ops import core
from hybrid.ops.vjp import VJP

SHAPE = (16,)
# where and cast are lowered by the kernel builder (a select, a conversion), not the registry.
_STRUCTURAL = {Op.WHERE, Op.CAST}


def test_every_primitive_has_a_row_and_a_reference():
    assert set(OPS) == set(Op)
    table = impls(np)
    assert set(table) == set(Op)
    assert all(callable(f) for f in table.values())
    assert {d.cost for d in OPS.values()} <= {FREE, CHEAP, EXPENSIVE}


def test_differentiable_primitives_have_a_gradient_and_only_they():
    want = {op for op, d in OPS.items() if d.differentiable}
    have = {op for op in VJP if isinstance(op, Op)}  # (custom Functions register pseudo-ops too)
    assert have == want, (sorted(o.value for o in want - have), sorted(o.value for o in have - want))
    # every op whose rule reads the output is a differentiable one (the tape keeps it alive)
    assert core.SAVES_OUTPUT <= want and core.SAVES_OUTPUT


def _accepted(op: Op, dtype) -> bool:
    types = [TensorType(SHAPE, dtype)] * (OPS[op].arity or 1)
    try:
        OPS[op].rule(op.value, types)
    except OpError:
        return False
    return True


def _elementwise_pairs():
    for op in sorted(ELEMENTWISE - _STRUCTURAL, key=lambda o: o.value):
        for dt in sorted(NATIVE, key=lambda d: d.name):
            if _accepted(op, dt):
                yield op, dt


def test_every_elementwise_primitive_has_a_native_lowering_or_a_declared_fallback():
    missing = [f"{op.value} on {dt.name}" for op, dt in _elementwise_pairs()
               if not llvm_scalar.supports(op, dt) and op not in llvm_scalar.NO_LOWERING]
    assert not missing


def _inputs(op: Op, dtype, rng) -> list[np.ndarray]:
    n = OPS[op].arity
    if dtype.is_floating:
        xs = [rng.uniform(-3, 3, SHAPE).astype(dtype.np) for _ in range(n)]
    elif dtype.is_bool:
        xs = [rng.random(SHAPE) < 0.5 for _ in range(n)]
    else:
        xs = [rng.integers(-6, 7, SHAPE).astype(dtype.np) for _ in range(n)]
        if op in (Op.FLOORDIV, Op.REMAINDER):  # integer division by zero raises on every backend
            xs[1] = np.where(xs[1] == 0, 3, xs[1]).astype(dtype.np)
    return xs


@pytest.mark.parametrize("dtype", sorted(NATIVE, key=lambda d: d.name), ids=lambda d: d.name)
def test_each_lowering_computes_the_reference(dtype):
    """One graph per dtype holding every elementwise primitive its rules accept, compiled once:
    each lowering the registry declares gives the reference implementation's values."""
    from compiler.backend_cpu import CpuExecutable, unsupported
    from compiler.ir.interpret import interpret

    rng = np.random.default_rng(7)
    g = Graph(name=f"registry_{dtype.name}")
    arrays, outs = [], []
    for op, dt in _elementwise_pairs():
        if dt is not dtype:
            continue
        xs = _inputs(op, dtype, rng)
        ins = [g.add_input(TensorType(SHAPE, dtype), f"{op.value}{i}") for i in range(len(xs))]
        arrays += xs
        outs.append(g.add(op, ins))
    g.set_outputs(outs)
    assert unsupported(g) == []
    with np.errstate(all="ignore"):
        want = interpret(g, arrays)
        got = CpuExecutable(g, use_cache=False)(arrays)
    tol = {"float16": 1e-3, "float32": 2e-6, "float64": 1e-13}.get(dtype.name, 0)
    for out, x, y in zip(g.outputs, got, want):
        name = next(n.op.value for n in g.nodes if n.out is out)
        assert x.dtype == y.dtype, name
        np.testing.assert_allclose(x.astype(np.float64) if x.dtype.kind == "f" else x,
                                   y.astype(np.float64) if y.dtype.kind == "f" else y,
                                   rtol=tol, atol=tol, equal_nan=True, err_msg=name)


def test_an_op_without_a_lowering_is_found_before_fusion(monkeypatch):
    from compiler.backend_cpu import unsupported

    g = Graph(name="no_lowering")
    x = g.add_input(TensorType(SHAPE, DType.float32), "x")
    g.set_outputs([g.add(Op.ERFC, [x])])
    assert unsupported(g) == []
    monkeypatch.delitem(llvm_scalar.FLOAT, Op.ERFC)
    assert unsupported(g) == ["erfc on float32"]


FROM_TABLE = sorted(op.value for op, d in OPS.items() if d.frontend == "float")


@pytest.mark.parametrize("name", FROM_TABLE)
def test_table_frontends_exist_in_every_form_and_differentiate(name):
    """hybrid.f, Tensor.f, Tensor.f_, hybrid.f_ and out= exist for each table-made function, and
    its gradient (the registered rule, with what it saves) matches central differences."""
    op = Op(name)
    ref = impls(np)[op]
    x = np.linspace(0.2, 0.9, 7)
    t = hybrid.tensor(x, requires_grad=True)
    y = getattr(hybrid, name)(t)
    np.testing.assert_allclose(y.detach().numpy(), ref(x), rtol=1e-14)
    y.sum().backward()
    h = 1e-6
    fd = (ref(x + h) - ref(x - h)) / (2 * h)
    np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(getattr(hybrid.tensor(x), name)().numpy(), ref(x), rtol=1e-14)
    u = hybrid.tensor(x)
    assert getattr(u, name + "_")() is u
    np.testing.assert_allclose(u.numpy(), ref(x), rtol=1e-14)
    v = hybrid.tensor(x)
    getattr(hybrid, name + "_")(v)
    np.testing.assert_allclose(v.numpy(), ref(x), rtol=1e-14)
    out = hybrid.empty(7, dtype=hybrid.float64)
    getattr(hybrid, name)(hybrid.tensor(x), out=out)
    np.testing.assert_allclose(out.numpy(), ref(x), rtol=1e-14)
    # integers promote to the default float dtype
    assert getattr(hybrid, name)(hybrid.tensor([1, 2])).dtype is hybrid.float32


ACCUMULATE = sorted(op.value for op, d in OPS.items() if d.frontend == "accumulate")


@pytest.mark.parametrize("name", ACCUMULATE)
def test_table_reductions_exist_and_follow_pytorch(name):
    """hybrid.f and Tensor.f for each table-made reduction: dims, keepdim, int64 accumulation of
    bools and integers, dtype=, and a gradient matching central differences."""
    assert name in ("sum", "prod")  # the rows this test knows numpy's names for
    ref = getattr(np, name)
    x = np.linspace(0.5, 1.5, 12).reshape(3, 4)
    for dim, keepdim in ((None, False), (1, False), ((0, 1), True), (-2, True)):
        want = ref(x, axis=dim, keepdims=keepdim)
        got = getattr(hybrid, name)(hybrid.tensor(x), dim, keepdim)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-14)
        np.testing.assert_allclose(getattr(hybrid.tensor(x), name)(dim, keepdim).numpy(), want,
                                   rtol=1e-14)
    ints = hybrid.tensor([[1, 2], [3, 4]], dtype=hybrid.int32)
    assert getattr(hybrid, name)(ints).dtype is hybrid.int64
    assert getattr(hybrid, name)(hybrid.tensor([True, True])).dtype is hybrid.int64
    assert getattr(ints, name)(dtype=hybrid.float32).dtype is hybrid.float32
    t = hybrid.tensor(x, requires_grad=True)
    getattr(hybrid, name)(t, 1).sum().backward()
    h = 1e-6
    fd = np.empty_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = h
        fd[i] = (ref(x + d, axis=1).sum() - ref(x - d, axis=1).sum()) / (2 * h)
    np.testing.assert_allclose(t.grad.numpy(), fd, rtol=1e-6, atol=1e-9)


def test_cost_classes_follow_the_kinds():
    assert all(OPS[op].cost == FREE for op in (Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.SLICE))
    assert all(OPS[op].cost == EXPENSIVE for op in OPS if OPS[op].frontend == "float"
               and op is not Op.RECIPROCAL)
    assert OPS[Op.ADD].cost == CHEAP and OPS[Op.ADD].kind is Kind.BINARY
