"""How closely compiled results must match eager ones, per backend and dtype (tests/README.md).

The interpreter runs the very reference implementations eager mode runs, so it must match bit
for bit. The native backend sums in another order, uses vectorized polynomial math and fused
multiply-adds: it must match within a few units of the dtype's precision."""

from __future__ import annotations

from typing import Any

import numpy as np

import hybrid

# (rtol, atol) of native vs eager per float dtype: a few ulps of each (float16 stores round to
# 2^-11 relative, float32 to 2^-24, float64 to 2^-53) times a small reduction depth.
NATIVE_TOL = {"float16": (2e-3, 1e-3), "float32": (1e-5, 1e-6), "float64": (1e-12, 1e-12)}


def _array(x: Any) -> np.ndarray:
    if isinstance(x, hybrid.Tensor):
        return x.detach().numpy()
    return np.asarray(x)


def assert_matches_eager(got: Any, want: Any, err_msg: str = "") -> None:
    """`got` (compiled) equals `want` (eager): bit for bit on the interpreter and for integers
    and bools, within NATIVE_TOL on the native backend."""
    g, w = _array(got), _array(want)
    assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype, err_msg)
    if hybrid.config.backend == "interpreter" or g.dtype.kind not in "fc":
        np.testing.assert_array_equal(g, w, err_msg=err_msg)
    else:
        rtol, atol = NATIVE_TOL[g.dtype.name]
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True, err_msg=err_msg)


def fwd_bwd(fn: Any, n_inputs: int) -> Any:
    """A step for comparing compiled with eager: step(*inputs, cotangent) runs fn on fresh
    leaves of the first n_inputs tensors and returns (fn's output, each leaf's gradient of
    sum(output * cotangent))."""

    def step(*ts: Any) -> tuple:
        leaves = [t.detach().requires_grad_() for t in ts[:n_inputs]]
        y = fn(*leaves)
        (y * ts[n_inputs]).sum().backward()
        return (y.detach(),) + tuple(t.grad for t in leaves)

    return step
