"""Errors and logs of @hybrid.compile guards: mutating a view and tensors escaping a trace, misses
explained in the recompile log, the recompile budget, trace errors at the user's line, the eager
fallback, and Python control flow on static values. The cache key itself is in
test_compile_cache.py.
NOTE: several tests check that a message names this file (test_compile_guards.py): keep its name."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from _compile_guards_helpers import arr, log_recompiles_fixture, recompile_lines  # noqa: F401
from subproc import run_python

import hybrid as h
from hybrid.config import config

# Every test runs on each backend (tests/conftest.py): the native one fails on a fallback.
pytestmark = pytest.mark.usefixtures("compiled_backend")


def lineno() -> int:
    return inspect.currentframe().f_back.f_lineno


# NOTE: test_compile_cache.py has its own SCALE.
SCALE = 2.0


# --- views mutated and tensors escaping a trace ----------------------------------------------


def test_mutating_a_view_inside_compile_raises():
    @h.compile
    def f(x):
        v = x[1:]
        v.add_(1.0)
        return x

    with pytest.raises(h.TraceError, match="view") as ei:
        f(h.zeros(4))
    assert "test_compile_guards.py" in str(ei.value)


_STASH: list = []


def test_tensor_escaping_a_trace_gives_a_clear_error():
    @h.compile
    def f(x):
        y = x * 2.0
        _STASH.append(y)
        return y

    @h.compile
    def g(x):
        return x + _STASH[0]

    x = h.randn(3)
    f(x)
    with pytest.raises(h.TraceError, match="escaped"):
        g(x)
    with pytest.raises(h.TraceError):
        _STASH[0].numpy()
    with pytest.raises(h.HybridError):
        _STASH[0] + x  # used eagerly later: an error, never a silently wrong value
    _STASH.clear()


# --- the recompile log -----------------------------------------------------------------------


def test_recompile_log_names_argument_old_new_and_call_site(log_recompiles):
    @h.compile
    def f(x, n):
        return x * n

    f(h.randn(3), 2)
    assert recompile_lines(log_recompiles) == []  # the first compile is not a recompile
    line = lineno() + 1
    f(h.randn(4), 2)
    f(h.randn(4), 3)
    msgs = recompile_lines(log_recompiles)
    assert len(msgs) == 2
    assert "argument 'x'" in msgs[0] and "f32[3] -> f32[4]" in msgs[0]
    assert f"test_compile_guards.py:{line}" in msgs[0]
    assert "argument 'n': 2 -> 3" in msgs[1]
    assert f"test_compile_guards.py:{line + 1}" in msgs[1]
    f(h.randn(4), 3)  # a hit logs nothing
    assert len(recompile_lines(log_recompiles)) == 2


def test_recompile_log_for_globals_grad_mode_and_dtype(log_recompiles):
    global SCALE

    @h.compile
    def f(x):
        return x * SCALE

    x = h.randn(3)
    f(x)
    try:
        SCALE = 4.0
        f(x)
    finally:
        SCALE = 2.0
    with h.no_grad():
        f(x)
    f(x.double())
    msgs = recompile_lines(log_recompiles)
    assert "global 'SCALE': 2.0 -> 4.0" in msgs[0]
    assert "grad mode on -> off" in msgs[1]
    assert "f32[3] -> f64[3]" in msgs[2]
    assert len(msgs) == 3


def test_recompile_log_names_the_nested_element(log_recompiles):
    @h.compile
    def f(xs, opts):
        return xs[0] * opts["k"] + xs[1].sum()

    a = h.randn(3)
    f([a, h.randn(3)], {"k": 1.0})
    f([a, h.randn(5)], {"k": 1.0})
    f([a, h.randn(5)], {"k": 2.0})
    msgs = recompile_lines(log_recompiles)
    assert "argument 'xs'[1]: f32[3] -> f32[5]" in msgs[0]
    assert "argument 'opts'['k']: 1.0 -> 2.0" in msgs[1]


def test_env_hybrid_log_recompiles_in_a_subprocess():
    code = (
        "import hybrid as h\n"
        "f = h.compile(lambda x, n: x * n)\n"
        "f(h.ones(2), 1)\n"
        "f(h.ones(2), 2)\n"
    )
    r = run_python(code, timeout=120, HYBRID_LOG="recompiles")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if "recompiling" in ln]
    assert len(lines) == 1
    assert "argument 'n': 1 -> 2" in lines[0] and "<string>:4" in lines[0]


def test_recompile_budget_warning_names_the_argument_that_keeps_changing():
    old = config.recompile_limit
    config.recompile_limit = 4

    @h.compile
    def f(x, step, flag):
        return x * step

    x = h.randn(2)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            f(x, 0, True)
            f(x, 0, False)  # a different argument changed once
            for i in range(1, 8):
                f(x, i, False)
        rec = [m for m in w if issubclass(m.category, h.RecompileWarning)]
        assert len(rec) == 1
        msg = str(rec[0].message)
        assert "'step'" in msg and "keeps changing" in msg
        assert "tensor" in msg and "static" in msg and "pad" in msg
        assert rec[0].filename == __file__
    finally:
        config.recompile_limit = old
    assert f.cache_size() == 9  # still correct past the budget
    np.testing.assert_allclose(arr(f(x, 7, False)), arr(x) * 7, rtol=1e-6)


RECOMPILE_COUNTER = """
import warnings
import hybrid as h
f = h.compile(lambda x, n: x * n)
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    for i in range(12):
        f(h.ones(2), i)
        print(i, sum(issubclass(m.category, h.RecompileWarning) for m in w))
print("limit", h.config.recompile_limit)
"""


@pytest.mark.parametrize("limit", [None, 3, 11])
def test_recompile_limit_from_the_environment_in_a_subprocess(limit):
    """HYBRID_RECOMPILE_LIMIT (default 8) variants compile quietly; the next one warns, once."""
    env = {} if limit is None else {"HYBRID_RECOMPILE_LIMIT": str(limit)}
    r = run_python(RECOMPILE_COUNTER, **env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    counts = [int(ln.split()[1]) for ln in lines[:12]]
    want = 8 if limit is None else limit
    assert counts == [0] * want + [1] * (12 - want)
    assert lines[12] == f"limit {want}"


# --- trace errors ----------------------------------------------------------------------------


def _bool(x):
    return x.sum() if bool(x.sum()) else x


def _if(x):
    if x.sum() > 0:
        return x
    return -x


def _item(x):
    return x * x.sum().item()


def _numpy(x):
    return x * float(x.numpy()[0])


def _int(x):
    return x * int(x[0])


def _float(x):
    return x * float(x[0])


def _range(x):
    n = x.sum().int()
    out = x
    for _ in range(n):
        out = out + 1.0
    return out


def _index(x):
    i = x.argmax()
    return x[int(i)]


def _index_dunder(x):
    i = x.argmax()
    return [1.0, 2.0, 3.0][i]


TRACE_ERRORS = [_bool, _if, _item, _numpy, _int, _float, _range, _index, _index_dunder]


def _offending_line(fn) -> int:
    src, start = inspect.getsourcelines(fn)
    keys = ("bool(", "if x", ".item()", ".numpy()", "int(x", "float(x", "range(", "int(i)",
            "[i]")
    for k, line in enumerate(src[1:], start=1):  # skip the `def` line
        if any(key in line for key in keys):
            return start + k
    raise AssertionError(fn)


@pytest.mark.parametrize("fn", TRACE_ERRORS, ids=[f.__name__ for f in TRACE_ERRORS])
def test_trace_error_at_the_users_line(fn):
    cf = h.compile(fn)
    with pytest.raises(h.TraceError) as ei:
        cf(h.ones(3))
    msg = str(ei.value)
    assert f"test_compile_guards.py:{_offending_line(fn)}" in msg
    assert "traced" in msg  # why
    assert "hybrid.where" in msg and "static" in msg and "eager" in msg  # what to do
    assert cf.cache_size() == 0


@pytest.mark.parametrize("fn", TRACE_ERRORS, ids=[f.__name__ for f in TRACE_ERRORS])
def test_fallback_eager_runs_eagerly_after_one_warning(fn):
    cf = h.compile(fn, fallback="eager")
    x = h.ones(3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out1 = cf(x)
        out2 = cf(x)
    assert len([m for m in w if issubclass(m.category, RuntimeWarning)]) == 1
    expected = fn(x)
    exp = arr(expected) if isinstance(expected, h.Tensor) else expected
    for out in (out1, out2):
        got = arr(out) if isinstance(out, h.Tensor) else out
        np.testing.assert_array_equal(got, exp)


def test_python_control_flow_on_static_values_and_unrolled_loops():
    @h.compile
    def f(x, n, act):
        for i in range(n):
            x = x * 2.0 + i
        if act == "relu":
            x = x.relu()
        elif x.shape[0] > 2:  # shapes are static
            x = -x
        return x

    x = h.randn(3)
    ref = arr(x).copy()
    for i in range(3):
        ref = ref * 2 + i
    np.testing.assert_allclose(arr(f(x, 3, "relu")), np.maximum(ref, 0), rtol=1e-6)
    np.testing.assert_allclose(arr(f(x, 3, "none")), -ref, rtol=1e-6)
    g = f.graph_for(x, 3, "none")
    assert sum(n.op.value == "mul" for n in g.nodes) == 3
