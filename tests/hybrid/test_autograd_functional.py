"""hybrid.autograd.functional (jacobian, hessian, vjp, jvp, hvp) against PyTorch and closed
forms, and the autograd.profiler spans."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid


def _run(t):
    fn = t.autograd.functional

    def exp_adder(x, y):
        return 2 * x.exp() + 3 * y

    def scalar(x, y):
        return (x.exp() * y * y).sum()

    def two_out(x):
        return x * x, x.sum() * 2

    def doubling(x):
        y = x * 2
        while y.data.norm() < 1000:
            y = y * 2
        return y

    xs = (t.tensor([0.1, 0.5, 0.9], dtype=t.float64), t.tensor([0.2, 0.3, 0.4], dtype=t.float64))
    j = fn.jacobian(exp_adder, xs)
    single = fn.jacobian(lambda x: x.sin(), xs[0])
    multi = fn.jacobian(two_out, xs[0])
    h = fn.hessian(scalar, xs)
    out, vjp = fn.vjp(doubling, t.tensor([0.3, -0.2, 0.5], dtype=t.float64),
                      v=t.tensor([0.1, 1.0, 0.0001], dtype=t.float64))
    _, jvp = fn.jvp(exp_adder, xs, v=(t.ones(3, dtype=t.float64), t.ones(3, dtype=t.float64)))
    _, hvp = fn.hvp(scalar, xs, v=(t.ones(3, dtype=t.float64), t.ones(3, dtype=t.float64)))
    return [j[0], j[1], single, multi[0], multi[1], h[0][0], h[0][1], h[1][0], h[1][1], out, vjp,
            jvp, hvp[0], hvp[1]]


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    for i, (a, b) in enumerate(zip(_run(hybrid), _run(torch))):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"result {i}")


def test_closed_forms():
    x = np.array([0.1, 0.5, 0.9])
    res = _run(hybrid)
    np.testing.assert_allclose(res[0].numpy(), np.diag(2 * np.exp(x)), rtol=1e-12)
    np.testing.assert_allclose(res[1].numpy(), 3 * np.eye(3))
    np.testing.assert_allclose(res[2].numpy(), np.diag(np.cos(x)), rtol=1e-12)
    assert not res[0].requires_grad


def test_hessian_needs_a_scalar():
    with pytest.raises(hybrid.ShapeError, match="single-element"):
        hybrid.autograd.functional.hessian(lambda x: x * x, hybrid.ones(3))


def test_import_forms():
    from hybrid.autograd.function import Function, once_differentiable  # noqa: F401
    from hybrid.autograd.functional import jacobian  # noqa: F401
    from hybrid.autograd.profiler import profile, record_function  # noqa: F401


def test_profiler_records_spans():
    with hybrid.autograd.profiler.profile() as prf:
        for _ in range(3):
            with hybrid.autograd.profiler.record_function("step"):
                hybrid.ones(10) * 2
    rows = {name: calls for name, calls, _ in prf.key_averages()}
    assert rows == {"step": 3, "[profiled block]": 1}
    table = prf.key_averages().table(sort_by="self_cpu_time_total")
    assert "step" in table and "Calls" in table
