"""Differential tests: hypothesis builds random programs (tests/hybrid/diff_programs.py: every
dtype family, empty and size-1 dims, nan/inf/-0.0, non-contiguous and negative-stride inputs,
elementwise ops with broadcasting, reductions, movement ops, matmul, indexing/gather); eager
execution and @hybrid.compile must agree on every backend, on the results and on the gradients,
whether the backward pass runs inside the compiled function (autograd.grad or loss.backward())
or eagerly after a compiled forward, and when the same leaves are used across calls (.grad
accumulates into gradients that already exist). Every compiled graph is checked with verify.

Examples per test: the hypothesis profile (tests/conftest.py): "ci" (default, small) or
HYBRID_HYPOTHESIS_PROFILE=dev (thousands)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from hypothesis import given

import hybrid as h
from compiler.ir.verify import verify

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from diff_programs import FLOATS, Program, programs, tensor_of  # noqa: E402

pytestmark = pytest.mark.usefixtures("compiled_backend")

# (rtol, atol relative to the largest finite magnitude) of compiled vs eager: eager rounds every
# float16 op to float16, a fused native kernel only at its stores; float32/64 differ by the order
# of sums and vector math.
TOL = {"float16": (2e-2, 2e-2), "float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10)}


def arr(t):
    return t.detach().numpy()


def leaves(p: Program, layout: bool) -> list:
    """Fresh input tensors: in the program's layouts (compiled side) or contiguous (eager)."""
    diff = set(p.differentiable())
    return [tensor_of(a, lay if layout else "contiguous", i in diff)
            for i, (a, lay) in enumerate(zip(p.inputs, p.layouts))]


def check_close(got, want, what: str, p: Program) -> None:
    got, want = np.asarray(got), np.asarray(want)
    msg = f"{what}: {p!r}"
    assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype, msg)
    if got.dtype.kind != "f":
        np.testing.assert_array_equal(got, want, err_msg=msg)
        return
    finite = np.abs(want[np.isfinite(want)].astype(np.float64))
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    rtol, atol = TOL[got.dtype.name]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, equal_nan=True,
                               err_msg=msg)


def grads_of(ins: list, p: Program) -> list:
    return [None if ins[i].grad is None else arr(ins[i].grad) for i in p.differentiable()]


def check_grads(got: list, want: list, p: Program) -> None:
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None or not np.any(g), f"grad {k}: {p!r}"
        else:
            assert g is not None, f"grad {k} missing: {p!r}"
            check_close(g, w, f"grad {k}", p)


def seed_grads(ins: list, p: Program) -> None:
    """Give every other differentiable leaf a .grad already (accumulation must add to it)."""
    for n, i in enumerate(p.differentiable()):
        if n % 2 == 0:
            a = np.linspace(-1, 1, ins[i].numel()).reshape(tuple(ins[i].shape))
            ins[i].grad = h.tensor(a.astype(p.inputs[i].dtype))


@given(programs())
def test_compiled_with_autograd_grad_inside_matches_eager(case):
    p, cot = case
    floating = p.dtype in FLOATS and cot.dtype.kind == "f"
    fl = p.differentiable() if floating else []

    def f(ins, c):
        out = p(ins)
        if not fl:
            return out, []
        gs = h.autograd.grad([(out * c).sum()], [ins[i] for i in fl], allow_unused=True)
        return out, list(gs)

    want_out, want_gs = f(leaves(p, False), h.tensor(cot))
    cf = h.compile(f)
    ins, c = leaves(p, True), h.tensor(cot)
    for _ in range(2):  # the same leaves again: a cache hit, no .grad anywhere
        out, gs = cf(ins, c)
        check_close(arr(out), arr(want_out), "output", p)
        check_grads([None if g is None else arr(g) for g in gs],
                    [None if g is None else arr(g) for g in want_gs], p)
    verify(cf.graph_for(ins, c))
    assert all(t.grad is None for t in ins)
    assert cf.cache_size() == 1


@given(programs(dtypes=FLOATS))
def test_compiled_with_backward_inside_accumulates_like_eager(case):
    p, cot = case

    def f(ins, c):
        out = p(ins)
        (out * c).sum().backward()
        return out

    cf = h.compile(f)
    ref, ins = leaves(p, False), leaves(p, True)
    seed_grads(ref, p)
    seed_grads(ins, p)
    c = h.tensor(cot)
    for call in range(3):  # the same leaves every call: .grad accumulates as in eager
        want = f(ref, c)
        out = cf(ins, c)
        check_close(arr(out), arr(want), f"output, call {call}", p)
        check_grads(grads_of(ins, p), grads_of(ref, p), p)
    verify(cf.graph_for(ins, c))


@given(programs(dtypes=FLOATS))
def test_compiled_forward_eager_backward_matches_eager(case):
    p, cot = case
    cf = h.compile(lambda ins: p(ins))
    ref, ins = leaves(p, False), leaves(p, True)
    seed_grads(ref, p)
    seed_grads(ins, p)
    c = h.tensor(cot)
    for call in range(2):
        want = p(ref)
        out = cf(ins)
        check_close(arr(out), arr(want), f"output, call {call}", p)
        if out.requires_grad:
            (want * c).sum().backward()
            (out * c).sum().backward()
        check_grads(grads_of(ins, p), grads_of(ref, p), p)
    verify(cf.graph_for(ins))


@given(programs())
def test_eager_results_do_not_depend_on_the_input_layout(case):
    p, _ = case
    check_close(arr(p(leaves(p, True))), arr(p(leaves(p, False))), "layout", p)
