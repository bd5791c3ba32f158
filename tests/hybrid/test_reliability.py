"""Reliability: compiled code gives eager's answer or a clear error, and eager matches PyTorch.

One test per case of issue 8 (index bounds in compiled code, integer division by zero, NaN and
inf semantics, view on non-viewable strides, bad input) and issue 15's dodged divergence
(integer pow with negative exponents). Compiled cases run on every backend (the
`compiled_backend` fixture: native LLVM kernels and the interpreter); PyTorch is the oracle
where it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F

try:  # the oracle: optional, every test still compares eager with compiled without it
    import torch
    import torch.nn.functional as TF
except ImportError:  # pragma: no cover
    torch = None

HERE = "test_reliability.py"
nan, inf = math.nan, math.inf


def _outcome(fn, *args):
    """('ok', numpy result) or ('raise', exception)."""
    try:
        out = fn(*args)
    except Exception as e:  # noqa: BLE001 — the type is checked by the caller
        return "raise", e
    return "ok", np.asarray(out.numpy() if hasattr(out, "numpy") else out)


def _torch_outcome(fn, *args):
    if torch is None:
        return None
    targs = [torch.from_numpy(np.array(a.numpy())) if hasattr(a, "numpy") else a for a in args]
    try:
        out = fn(*targs)
    except Exception as e:  # noqa: BLE001
        return "raise", e
    return "ok", out.detach().numpy()


def _args(make):
    return make()  # fresh tensors per run: some cases update them in place


def expect_error(fn, make, err=hybrid.HybridIndexError, torch_fn=None, match=None):
    """Eager and compiled both raise `err` (compiled at this file's line), as PyTorch does."""
    kind, e = _outcome(fn, *_args(make))
    assert kind == "raise" and isinstance(e, err), f"eager: {kind} {e!r}"
    kind, e = _outcome(hybrid.compile(fn), *_args(make))
    assert kind == "raise" and isinstance(e, err), f"compiled: {kind} {e!r}"
    assert HERE in str(e), f"compiled error without the user's line: {e}"
    if match is not None:
        assert match in str(e), str(e)
    t = _torch_outcome(torch_fn or fn, *_args(make))
    if t is not None:
        assert t[0] == "raise", f"PyTorch does not raise: {t[1]}"


def expect_same(fn, make, torch_fn=None):
    """Eager, compiled and PyTorch give the same values (NaN where NaN)."""
    kind, want = _outcome(fn, *_args(make))
    assert kind == "ok", f"eager raised {want!r}"
    kind, got = _outcome(hybrid.compile(fn), *_args(make))
    assert kind == "ok", f"compiled raised {got!r}"
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, equal_nan=True)
    t = _torch_outcome(torch_fn or fn, *_args(make))
    if t is not None:
        assert t[0] == "ok", f"PyTorch raised {t[1]!r}"
        np.testing.assert_allclose(want, t[1], rtol=1e-6, atol=1e-7, equal_nan=True)


def _x4():
    return hybrid.arange(4.0)


# --- 1. index bounds in compiled code ---------------------------------------------------------


def test_compiled_index_select_out_of_range_raises(compiled_backend):
    expect_error(lambda x, i: hybrid.index_select(x, 0, i), lambda: (_x4(), hybrid.tensor([4, 100])),
                 torch_fn=lambda x, i: torch.index_select(x, 0, i), match="100")


def test_compiled_index_select_negative_raises_as_pytorch(compiled_backend):
    expect_error(lambda x, i: hybrid.index_select(x, 0, i), lambda: (_x4(), hybrid.tensor([-1])),
                 torch_fn=lambda x, i: torch.index_select(x, 0, i))


def test_compiled_index_select_in_range_matches(compiled_backend):
    expect_same(lambda x, i: hybrid.index_select(x, 0, i),
                lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([3, 0, 3], dtype=hybrid.int32)),
                torch_fn=lambda x, i: torch.index_select(x, 0, i))


def test_compiled_gather_out_of_range_raises(compiled_backend):
    # along dim 1 of a 2-d input: the flat index of [0, 3] would be the next row's first element
    expect_error(lambda x, i: hybrid.gather(x, 1, i),
                 lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([[3], [0], [1], [2]])),
                 torch_fn=lambda x, i: torch.gather(x, 1, i))


def test_compiled_gather_negative_raises_as_pytorch(compiled_backend):
    expect_error(lambda x, i: hybrid.gather(x, 1, i),
                 lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([[-1], [0], [1], [2]])),
                 torch_fn=lambda x, i: torch.gather(x, 1, i))


def test_compiled_gather_in_range_matches(compiled_backend):
    expect_same(lambda x, i: hybrid.gather(x, 1, i),
                lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([[2], [0], [1], [2]])),
                torch_fn=lambda x, i: torch.gather(x, 1, i))


def test_compiled_embedding_out_of_range_raises(compiled_backend):
    expect_error(lambda w, i: F.embedding(i, w),
                 lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([[1, 4]])),
                 torch_fn=lambda w, i: TF.embedding(i, w))


def test_compiled_embedding_negative_raises_as_pytorch(compiled_backend):
    expect_error(lambda w, i: F.embedding(i, w),
                 lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([-1])),
                 torch_fn=lambda w, i: TF.embedding(i, w))


def test_compiled_getitem_out_of_range_raises(compiled_backend):
    expect_error(lambda x, i: x[i], lambda: (_x4(), hybrid.tensor([4])))
    expect_error(lambda x, i: x[i], lambda: (_x4(), hybrid.tensor([-5])))


def test_compiled_getitem_two_indices_out_of_range_raises(compiled_backend):
    # x[i, j] with j == 3 on 3 columns: the merged flat index would land in the next row
    expect_error(lambda x, i, j: x[i, j],
                 lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([0]), hybrid.tensor([3])))


def test_compiled_getitem_negative_wraps(compiled_backend):
    expect_same(lambda x, i: x[i], lambda: (_x4(), hybrid.tensor([-1, -4, 2])))
    expect_same(lambda x, i, j: x[i, j],
                lambda: (hybrid.arange(12.0).reshape(4, 3), hybrid.tensor([-1, 0]),
                         hybrid.tensor([-3, 2])))


def test_compiled_take_out_of_range_raises(compiled_backend):
    expect_error(lambda x, i: hybrid.take(x, i), lambda: (_x4(), hybrid.tensor([4])),
                 torch_fn=lambda x, i: torch.take(x, i))


def test_compiled_take_negative_wraps(compiled_backend):
    expect_same(lambda x, i: hybrid.take(x, i), lambda: (_x4(), hybrid.tensor([-1, 0])),
                torch_fn=lambda x, i: torch.take(x, i))


def test_compiled_scatter_add_out_of_range_raises(compiled_backend):
    expect_error(lambda x, i, s: hybrid.scatter_add(x, 1, i, s),
                 lambda: (hybrid.zeros(2, 3), hybrid.tensor([[3], [0]]), hybrid.ones(2, 1)),
                 torch_fn=lambda x, i, s: x.scatter_add(1, i, s))
    expect_error(lambda x, i, s: hybrid.scatter_add(x, 1, i, s),
                 lambda: (hybrid.zeros(2, 3), hybrid.tensor([[-1], [0]]), hybrid.ones(2, 1)),
                 torch_fn=lambda x, i, s: x.scatter_add(1, i, s))


def test_compiled_scatter_add_in_range_matches(compiled_backend):
    expect_same(lambda x, i, s: hybrid.scatter_add(x, 1, i, s),
                lambda: (hybrid.zeros(2, 3), hybrid.tensor([[2, 2], [0, 1]]), hybrid.ones(2, 2)),
                torch_fn=lambda x, i, s: x.scatter_add(1, i, s))


def _assign(x, i):
    x[i] = 5.0
    return x


def test_compiled_index_assignment_out_of_range_raises(compiled_backend):
    expect_error(_assign, lambda: (_x4(), hybrid.tensor([1, 4])))


def test_compiled_index_assignment_negative_wraps(compiled_backend):
    expect_same(_assign, lambda: (_x4(), hybrid.tensor([-1])))


def test_compiled_index_add_out_of_range_raises(compiled_backend):
    expect_error(lambda x, i, s: hybrid.index_add(x, 0, i, s),
                 lambda: (_x4(), hybrid.tensor([4]), hybrid.ones(1)),
                 torch_fn=lambda x, i, s: x.index_add(0, i, s))
    expect_error(lambda x, i, s: hybrid.index_add(x, 0, i, s),
                 lambda: (_x4(), hybrid.tensor([-1]), hybrid.ones(1)),
                 torch_fn=lambda x, i, s: x.index_add(0, i, s))


@pytest.mark.parametrize("bad", [4, -1])
def test_compiled_cross_entropy_target_out_of_range_raises(compiled_backend, bad):
    expect_error(lambda z, t: F.cross_entropy(z, t),
                 lambda: (hybrid.zeros(2, 4), hybrid.tensor([0, bad])),
                 torch_fn=lambda z, t: TF.cross_entropy(z, t))


@pytest.mark.parametrize("bad", [4, -1])
def test_compiled_nll_loss_target_out_of_range_raises(compiled_backend, bad):
    expect_error(lambda z, t: F.nll_loss(z, t),
                 lambda: (hybrid.zeros(2, 4), hybrid.tensor([bad, 1])),
                 torch_fn=lambda z, t: TF.nll_loss(z, t))


def test_compiled_cross_entropy_ignore_index_still_ignored(compiled_backend):
    z = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    expect_same(lambda z, t: F.cross_entropy(z, t, ignore_index=-1),
                lambda: (hybrid.tensor(z), hybrid.tensor([0, -1, 3])),
                torch_fn=lambda z, t: TF.cross_entropy(z, t, ignore_index=-1))
    w = hybrid.tensor([1.0, 2.0, 0.5, 1.5])
    expect_same(lambda z, t: F.cross_entropy(z, t, weight=w),
                lambda: (hybrid.tensor(z), hybrid.tensor([0, -100, 3])),
                torch_fn=lambda z, t: TF.cross_entropy(z, t, weight=torch.tensor(w.numpy())))


@pytest.mark.parametrize("bad", [5, -1])
def test_compiled_one_hot_out_of_range_raises(compiled_backend, bad):
    expect_error(lambda t: F.one_hot(t, 4), lambda: (hybrid.tensor([1, bad]),),
                 torch_fn=lambda t: TF.one_hot(t, 4))


def test_compiled_one_hot_in_range_matches(compiled_backend):
    expect_same(lambda t: F.one_hot(t, 4), lambda: (hybrid.tensor([[1, 3], [0, 0]]),),
                torch_fn=lambda t: TF.one_hot(t, 4))


def test_compiled_bounds_error_names_op_value_size_and_line(compiled_backend):
    f = hybrid.compile(lambda x, i: hybrid.index_select(x, 0, i) * 2)
    with pytest.raises(hybrid.HybridIndexError) as info:
        f(hybrid.arange(4.0), hybrid.tensor([1, 100]))
    msg = str(info.value)
    assert "gather" in msg and "100" in msg and "size 4" in msg, msg
    assert f"{HERE}:" in msg, msg
    # the same function keeps working on good indices after an error
    np.testing.assert_array_equal(f(hybrid.arange(4.0), hybrid.tensor([3, 1])).numpy(), [6, 2])


def test_compiled_embedding_train_step_out_of_range_raises(compiled_backend):
    w = hybrid.randn(4, 3, requires_grad=True)
    opt = hybrid.optim.SGD([w], lr=0.5)

    def step(i):
        loss = F.embedding(i, w).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    f = hybrid.compile(step)
    f(hybrid.tensor([0, 3]))
    before = w.detach().numpy().copy()
    with pytest.raises(hybrid.HybridIndexError, match=HERE) as info:
        f(hybrid.tensor([0, 4]))
    if compiled_backend == "interpreter":  # the graph ran to the error: no update applied
        np.testing.assert_array_equal(w.detach().numpy(), before)
    else:  # the native kernels update the weight as they run: the error says it happened
        assert "already applied its in-place updates" in str(info.value), str(info.value)


_SIX_ROWS = hybrid.ones(6, 4)
_RANDOM_OPS = {
    "index_select": (lambda x, i: hybrid.index_select(x, 0, i.reshape(-1)),
                     lambda x, i: torch.index_select(x, 0, i.reshape(-1))),
    "gather": (lambda x, i: hybrid.gather(x, 1, i), lambda x, i: torch.gather(x, 1, i)),
    "getitem": (lambda x, i: x[i], lambda x, i: x[i]),
    "getitem_2": (lambda x, i: x[i, i], lambda x, i: x[i, i]),
    "take": (lambda x, i: hybrid.take(x, i), lambda x, i: torch.take(x, i)),
    "embedding": (lambda x, i: F.embedding(i, x), lambda x, i: TF.embedding(i, x)),
    "scatter_add": (lambda x, i: hybrid.scatter_add(x, 1, i, hybrid.ones(i.shape)),
                    lambda x, i: x.scatter_add(1, i, torch.ones(i.shape))),
    # NOTE: the source is a tensor the function reads, not one it makes (a constant source
    # of more elements than x is refused by the runtime's range check: reported separately)
    "index_add": (lambda x, i: hybrid.index_add(x, 0, i.reshape(-1), _SIX_ROWS),
                  lambda x, i: x.index_add(0, i.reshape(-1), torch.ones(6, 4))),
}


@pytest.mark.parametrize("op", list(_RANDOM_OPS))
def test_compiled_random_indices_agree_with_eager_and_pytorch(compiled_backend, op):
    """40 draws of indices in [-n - 2, n + 2) on a 4x4 input (n: the size indexed): compiled
    raises exactly when eager does (and PyTorch), and gives eager's values otherwise."""
    fn, tfn = _RANDOM_OPS[op]
    rng = np.random.default_rng(sum(map(ord, op)))
    compiled = hybrid.compile(fn)
    x = hybrid.arange(16.0).reshape(4, 4)
    outcomes = set()
    n = 16 if op == "take" else 4  # take indexes the flattened input
    for _ in range(40):
        i = hybrid.tensor(rng.integers(-n - 2, n + 2, (2, 3)) if rng.random() < 0.5 else
                          rng.integers(0, n, (2, 3)))
        want_kind, want = _outcome(fn, x, i)
        got_kind, got = _outcome(compiled, x, i)
        assert got_kind == want_kind, (i.numpy(), want, got)
        if want_kind == "ok":
            np.testing.assert_array_equal(got, want)
        else:
            assert isinstance(want, hybrid.HybridIndexError), want
            assert isinstance(got, hybrid.HybridIndexError) and HERE in str(got), got
        t = _torch_outcome(tfn, x, i)
        if t is not None:
            assert t[0] == want_kind, (op, i.numpy(), t[1])
            if want_kind == "ok":
                np.testing.assert_array_equal(want, t[1])
        outcomes.add(want_kind)
    assert outcomes == {"ok", "raise"}  # both kinds were drawn


# --- the native flag itself -------------------------------------------------------------------


def _native_executable(fn, *args):
    from compiler.backend_cpu import CpuExecutable

    graph = hybrid.compile(fn).graph_for(*args)
    return CpuExecutable(graph, use_cache=False), graph


def test_native_plan_has_error_flag_only_when_it_checks():
    checked, _ = _native_executable(lambda x, i: hybrid.index_select(x, 0, i), _x4(),
                                    hybrid.tensor([1]))
    assert checked.plan.error_flag >= 0 and checked.plan.inputs[-1] == checked.plan.error_flag
    plain, _ = _native_executable(lambda x: x * 2 + 1, _x4())
    assert plain.plan.error_flag == -1


def test_native_flag_raises_without_interpreter_reproduction():
    """The kernel's flag alone (no rerun hit) still gives a HybridIndexError naming the op."""
    exe, graph = _native_executable(lambda x, i: hybrid.index_select(x, 0, i), _x4(),
                                    hybrid.tensor([1]))
    x, i = np.arange(4.0, dtype=np.float32), np.array([7], np.int64)
    with pytest.raises(hybrid.HybridIndexError, match="7"):
        exe([x, i])  # the interpreter rerun names the bad value
    site = next(k for k, n in enumerate(graph.nodes) if n.op.value == "gather") + 1
    with pytest.raises(hybrid.HybridIndexError, match="gather: an index is out of bounds"):
        exe._raise_flagged([x, np.array([1], np.int64)], site)
    with pytest.raises(hybrid.HybridZeroDivisionError):
        exe._raise_flagged([x, np.array([1], np.int64)], -1)


# --- 2. integer division by zero, integer pow -------------------------------------------------


def test_integer_floordiv_by_zero_raises(compiled_backend):
    expect_error(lambda a, b: a // b, lambda: (hybrid.tensor([3, 4]), hybrid.tensor([1, 0])),
                 err=hybrid.HybridZeroDivisionError)
    expect_error(lambda a: a // 0, lambda: (hybrid.tensor([3, 4]),),
                 err=hybrid.HybridZeroDivisionError)


def test_integer_remainder_by_zero_raises(compiled_backend):
    expect_error(lambda a, b: a % b, lambda: (hybrid.tensor([3, 4]), hybrid.tensor([0, 2])),
                 err=hybrid.HybridZeroDivisionError)


def test_integer_division_by_zero_error_is_a_zero_division_error():
    with pytest.raises(ZeroDivisionError, match=HERE):
        hybrid.tensor([1]) // hybrid.tensor([0])


def test_integer_floordiv_nonzero_matches(compiled_backend):
    expect_same(lambda a, b: (a // b) * 100 + a % b,
                lambda: (hybrid.tensor([7, -7, 7, -7, 0]), hybrid.tensor([2, 2, -2, -2, 3])))


def test_float_division_by_zero_still_inf(compiled_backend):
    expect_same(lambda a, b: a / b, lambda: (hybrid.tensor([1.0, -1.0, 0.0]), hybrid.zeros(3)))


def test_integer_pow_negative_tensor_exponent_matches_pytorch(compiled_backend):
    # was: eager raised, compiled gave [1, 9, 1]; PyTorch truncates 1 / x ** n. Bases of 3 and
    # more with negative exponents: plain square-and-multiply would give wrapped powers there
    expect_same(lambda a, b: a ** b,
                lambda: (hybrid.tensor([2, 3, 1, -1, -1, -2, 0, 3, 5, -3, 7]),
                         hybrid.tensor([-1, 2, -1, -3, -2, -2, -1, -1, -2, -1, -3])))


def test_integer_pow_negative_scalar_exponent_raises(compiled_backend):
    expect_error(lambda a: a ** -1, lambda: (hybrid.tensor([2, 3]),), err=hybrid.HybridError)


# --- 3. eager semantics that differ from PyTorch ---------------------------------------------


def _f(*values):
    return hybrid.tensor(list(values))


def test_relu_nan_propagates(compiled_backend):
    expect_same(lambda a: hybrid.relu(a), lambda: (_f(nan, -1.0, 0.0, 2.0, -inf, inf),),
                torch_fn=torch.relu if torch else None)
    expect_same(lambda a: F.relu(a), lambda: (_f(nan, 1.0),),
                torch_fn=TF.relu if torch else None)


def test_relu_gradient_at_zero_is_zero():
    x = hybrid.tensor([0.0, 1.0, -1.0], requires_grad=True)
    hybrid.relu(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 0.0])


def test_max_min_amax_nan_propagate(compiled_backend):
    mk = lambda: (_f(1.0, nan, 2.0),)
    expect_same(lambda a: hybrid.max(a), mk, torch_fn=torch.max if torch else None)
    expect_same(lambda a: hybrid.min(a), mk, torch_fn=torch.min if torch else None)
    expect_same(lambda a: hybrid.amax(a, 0), mk, torch_fn=(lambda a: torch.amax(a, 0)))
    expect_same(lambda a: hybrid.amin(a, 0), mk, torch_fn=(lambda a: torch.amin(a, 0)))
    expect_same(lambda a: hybrid.argmax(a), mk, torch_fn=torch.argmax if torch else None)
    expect_same(lambda a: hybrid.argmin(a), mk, torch_fn=torch.argmin if torch else None)


def test_maximum_minimum_nan_propagate(compiled_backend):
    mk = lambda: (_f(1.0, nan, nan), _f(nan, 2.0, nan))
    expect_same(lambda a, b: hybrid.maximum(a, b), mk,
                torch_fn=torch.maximum if torch else None)
    expect_same(lambda a, b: hybrid.minimum(a, b), mk,
                torch_fn=torch.minimum if torch else None)


def test_clamp_nan_propagates(compiled_backend):
    expect_same(lambda a: hybrid.clamp(a, 0, 1), lambda: (_f(nan, 5.0, -1.0, 0.5),),
                torch_fn=lambda a: torch.clamp(a, 0, 1))


def test_softmax_inf_gives_nan_as_pytorch(compiled_backend):
    for row in ([inf, 1.0], [-inf, -inf], [inf, inf], [-inf, 1.0]):
        expect_same(lambda a: F.softmax(a, 0), lambda row=row: (_f(*row),),
                    torch_fn=lambda a: torch.softmax(a, 0))
        expect_same(lambda a: F.log_softmax(a, 0), lambda row=row: (_f(*row),),
                    torch_fn=lambda a: torch.log_softmax(a, 0))


def test_one_hot_out_of_range_raises():
    with pytest.raises(hybrid.HybridIndexError, match=HERE):
        F.one_hot(hybrid.tensor([1, 4]), 4)
    with pytest.raises(hybrid.HybridIndexError, match="class -1"):
        F.one_hot(hybrid.tensor([-1]), 4)


def test_view_of_transpose_raises(compiled_backend):
    expect_error(lambda a: a.T.view(-1), lambda: (hybrid.zeros(2, 3),), err=hybrid.ShapeError,
                 torch_fn=lambda a: a.T.view(-1))
    expect_error(lambda a: a[:, :2].view(-1), lambda: (hybrid.zeros(3, 3),),
                 err=hybrid.ShapeError, torch_fn=lambda a: a[:, :2].view(-1))


def test_view_where_strides_allow_matches(compiled_backend):
    expect_same(lambda a: a.T.view(3, 1, 2) * 1, lambda: (hybrid.arange(6.0).reshape(2, 3),),
                torch_fn=lambda a: a.T.view(3, 1, 2))
    expect_same(lambda a: a[:2].view(-1) * 1, lambda: (hybrid.arange(12.0).reshape(4, 3),),
                torch_fn=lambda a: a[:2].view(-1))
    expect_same(lambda a: (a * 2).T.reshape(6).view(2, 3), lambda: (hybrid.zeros(2, 3),),
                torch_fn=lambda a: (a * 2).T.reshape(6).view(2, 3))


def _raises_hybrid(fn, cls=hybrid.HybridError):
    with pytest.raises(cls) as info:
        fn()
    assert HERE in str(info.value), str(info.value)
    return info.value


def test_huge_shape_raises_hybrid_error():
    _raises_hybrid(lambda: hybrid.zeros(2**62), hybrid.ShapeError)
    _raises_hybrid(lambda: hybrid.ones(2**31, 2**31), hybrid.ShapeError)
    _raises_hybrid(lambda: hybrid.arange(2**62), hybrid.ShapeError)


def test_numpy_array_passed_to_op_raises_hybrid_error():
    a = np.ones(3, np.float32)
    for fn in (lambda: hybrid.exp(a), lambda: hybrid.sum(a), lambda: hybrid.matmul(hybrid.ones(3), a),
               lambda: hybrid.cat([hybrid.ones(3), a]), lambda: hybrid.add(hybrid.ones(3), a),
               lambda: hybrid.index_select(hybrid.ones(3), 0, np.array([0]))):
        e = _raises_hybrid(fn, hybrid.DTypeError)
        assert "hybrid.tensor" in str(e)


def test_bad_device_string_raises():
    for spec in ("gpu", "cuda:x", "cuda:-1", "tpu"):
        _raises_hybrid(lambda spec=spec: hybrid.zeros(3, device=spec), hybrid.DeviceError)


def test_unsupported_dtype_raises():
    for dt in (np.complex64, "float128", str):
        _raises_hybrid(lambda dt=dt: hybrid.zeros(3, dtype=dt), hybrid.DTypeError)
    _raises_hybrid(lambda: hybrid.ones(3).to(np.complex128), hybrid.DTypeError)
    _raises_hybrid(lambda: hybrid.tensor([1 + 2j]), hybrid.DTypeError)
    _raises_hybrid(lambda: hybrid.full((2,), "x"), hybrid.DTypeError)


def test_ragged_tensor_input_raises():
    e = _raises_hybrid(lambda: hybrid.tensor([[1, 2], [3]]), hybrid.ShapeError)
    assert "[2]" in str(e) and "[1]" in str(e)
    _raises_hybrid(lambda: hybrid.tensor([1, [2, 3]]), hybrid.ShapeError)
    if torch is not None:
        with pytest.raises(ValueError):
            torch.tensor([[1, 2], [3]])


def test_where_with_a_non_bool_condition_raises_as_pytorch():
    """PyTorch: "where expected condition to be a boolean tensor"; hybrid used to treat any
    non-zero number as True."""
    with pytest.raises(hybrid.DTypeError, match=r"where: expected the condition to be a bool "
                       r"tensor, got i64\[2\].*test_reliability.py"):
        hybrid.where(hybrid.tensor([1, 0]), hybrid.ones(2), hybrid.zeros(2))
    np.testing.assert_array_equal(
        hybrid.where(hybrid.tensor([True, False]), hybrid.ones(2), hybrid.zeros(2)).numpy(),
        [1.0, 0.0])
    torch = pytest.importorskip("torch")
    with pytest.raises(RuntimeError, match="boolean"):
        torch.where(torch.tensor([1, 0]), torch.ones(2), torch.zeros(2))
