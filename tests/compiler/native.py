"""Checks shared by the native-backend tests: a graph runs the same on the interpreter (the spec),
the numpy evaluator of its fused program, and the compiled CpuExecutable."""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.interpret import interpret
from compiler.kernel_eval import run_program
from compiler.passes.fuse import fuse


def reference(g: Graph, inputs: list) -> list:
    with np.errstate(all="ignore"):
        return interpret(g, inputs)


def assert_match(got: list, want: list, rtol: float = 0.0, atol: float = 0.0,
                 what: str = "") -> None:
    """Same shapes and dtypes; floats within tolerances (NaN matching NaN), the rest exact."""
    assert len(got) == len(want), what
    for i, (x, y) in enumerate(zip(got, want)):
        x, y = np.asarray(x), np.asarray(y)
        msg = f"{what} output {i}"
        assert x.shape == y.shape and x.dtype == y.dtype, (msg, x.shape, x.dtype, y.shape, y.dtype)
        if x.dtype.kind == "f" and (rtol or atol):
            np.testing.assert_allclose(x.astype(np.float64), y.astype(np.float64), rtol=rtol,
                                       atol=atol, equal_nan=True, err_msg=msg)
        else:
            np.testing.assert_array_equal(x, y, err_msg=msg)
            if x.dtype.kind == "f":  # signed zeros too
                keep = ~np.isnan(y)
                np.testing.assert_array_equal(np.signbit(x)[keep], np.signbit(y)[keep],
                                              err_msg=msg + " (sign bits)")


def check_eval(g: Graph, inputs: list, rtol: float = 0.0, atol: float = 0.0):
    """fuse(g) run by kernel_eval equals interpret(g); returns the fused program."""
    prog = fuse(g)
    with np.errstate(all="ignore"):
        got = run_program(prog, [np.asarray(a) for a in inputs])
    assert_match(got, reference(g, inputs), rtol, atol, f"kernel_eval {g.name}")
    return prog


def check_native(g: Graph, inputs: list, rtol: float = 0.0, atol: float = 0.0, eval_too=True):
    """kernel_eval and CpuExecutable(g, use_cache=False) both match the interpreter."""
    from compiler.backend_cpu import CpuExecutable

    want = reference(g, inputs)
    if eval_too:
        check_eval(g, inputs, rtol, atol)
    ex = CpuExecutable(g, use_cache=False)
    got = ex([np.asarray(a) for a in inputs])
    assert_match(got, want, rtol, atol, f"native {g.name}")
    return ex
