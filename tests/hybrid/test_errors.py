"""Bad input: every error is a HybridError of the right Python family, names the op, the shapes
and dtypes, and this file's line of the offending call."""

from __future__ import annotations

import inspect

import pytest

import hybrid


def line() -> int:
    """The caller's line number (the next line holds the offending call)."""
    return inspect.currentframe().f_back.f_lineno + 1


def check(exc: pytest.ExceptionInfo, *parts: str, lineno: int, family=None) -> None:
    msg = str(exc.value)
    assert isinstance(exc.value, hybrid.HybridError), type(exc.value)
    if family is not None:
        assert isinstance(exc.value, family), type(exc.value).__mro__
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    assert f"test_errors.py:{lineno}" in msg, msg


def test_binary_shape_mismatch() -> None:
    a, b = hybrid.ones(3, 4), hybrid.ones(2, 4)
    with pytest.raises(ValueError) as e:
        n = line()
        a + b
    check(e, "add", "[3,4]", "[2,4]", lineno=n, family=hybrid.ShapeError)
    with pytest.raises(ValueError) as e:
        n = line()
        hybrid.maximum(a, hybrid.ones(5, dtype=hybrid.float64))
    check(e, "maximum", "[3,4]", "[5]", lineno=n)


def test_matmul_mismatch() -> None:
    a, b = hybrid.ones(32, 64), hybrid.ones(32, 10)
    with pytest.raises(ValueError) as e:
        n = line()
        a @ b
    check(e, "matmul", "f32[32,64]", "f32[32,10]", lineno=n, family=hybrid.ShapeError)
    with pytest.raises(ValueError) as e:
        n = line()
        hybrid.matmul(hybrid.ones(2, 3, 4), hybrid.ones(3, 4, 5))
    check(e, "matmul", "f32[2,3,4]", "f32[3,4,5]", lineno=n)
    with pytest.raises(TypeError) as e:
        n = line()
        hybrid.ones(2, 2) @ hybrid.ones(2, 2, dtype=hybrid.float64)
    check(e, "matmul", "f32[2,2]", "f64[2,2]", lineno=n, family=hybrid.DTypeError)


def test_reshape_wrong_size() -> None:
    with pytest.raises(ValueError) as e:
        n = line()
        hybrid.ones(3, 4).reshape(5, 2)
    check(e, "reshape", "f32[3,4]", "[5, 2]", lineno=n)
    with pytest.raises(ValueError) as e:
        n = line()
        hybrid.ones(3, 4).view(-1, 5)
    check(e, "reshape", "f32[3,4]", lineno=n)


def test_bad_dims() -> None:
    x = hybrid.ones(2, 3)
    for call, name in [(lambda: x.sum(dim=5), "sum"), (lambda: x.transpose(0, 2), "transpose"),
                       (lambda: x.squeeze(3), "squeeze"), (lambda: x.mean(-3), "mean"),
                       (lambda: hybrid.cat([x, x], 2), "cat"), (lambda: x.unsqueeze(4), "unsqueeze")]:
        want = "3-d" if name == "unsqueeze" else "2-d"
        with pytest.raises(IndexError) as e:
            call()
        check(e, name, want, lineno=inspect.getsourcelines(call)[1], family=hybrid.HybridIndexError)


def test_dtype_misuse() -> None:
    x = hybrid.ones(4)
    with pytest.raises((IndexError, TypeError)) as e:
        n = line()
        x[hybrid.tensor([0.0, 1.0])]
    check(e, "index", "float32", lineno=n)
    with pytest.raises(TypeError) as e:
        n = line()
        x & x
    check(e, "and", "float32", lineno=n, family=hybrid.DTypeError)
    with pytest.raises(TypeError) as e:
        n = line()
        hybrid.tensor([1, 2]).mean()
    check(e, "mean", "int64", lineno=n, family=hybrid.DTypeError)
    with pytest.raises(TypeError) as e:
        n = line()
        hybrid.index_select(x, 0, hybrid.tensor([0.0]))
    check(e, "index_select", "float32", lineno=n, family=hybrid.DTypeError)
    with pytest.raises(TypeError) as e:
        n = line()
        x.gather(0, hybrid.tensor([0.0]))
    check(e, "gather", "float32", lineno=n)


def test_integer_requires_grad() -> None:
    with pytest.raises(TypeError) as e:
        n = line()
        hybrid.tensor([1, 2], requires_grad=True)
    check(e, "int64", "floating", lineno=n, family=hybrid.DTypeError)


def test_cuda_unavailable_or_device_mixing() -> None:
    if hybrid.cuda_is_available():
        with pytest.raises(hybrid.DeviceError) as e:
            n = line()
            hybrid.ones(2) + hybrid.ones(2, device="cuda")
        check(e, "cpu", "cuda", lineno=n)
    else:
        with pytest.raises(hybrid.DeviceError) as e:
            n = line()
            hybrid.zeros(2, device="cuda")
        check(e, "cuda", "CuPy", lineno=n)
        assert "pip install" in str(e.value) or "GPU" in str(e.value)
    with pytest.raises(hybrid.DeviceError) as e:
        n = line()
        hybrid.zeros(2, device="tpu")
    check(e, "tpu", lineno=n)


def test_out_of_range_indices() -> None:
    x = hybrid.ones(3, 4)
    with pytest.raises(IndexError) as e:
        n = line()
        x[3]
    check(e, "3", "size 3", lineno=n, family=hybrid.HybridIndexError)
    with pytest.raises(IndexError) as e:
        n = line()
        x[:, hybrid.tensor([0, 4])]
    check(e, "4", "size 4", lineno=n)
    with pytest.raises(IndexError) as e:
        n = line()
        x[0, 0, 0]
    check(e, "too many indices", lineno=n)
    with pytest.raises(IndexError) as e:
        n = line()
        hybrid.index_select(x, 1, hybrid.tensor([5]))
    check(e, "5", "size 4", lineno=n)
    with pytest.raises(IndexError) as e:
        n = line()
        x.gather(0, hybrid.tensor([[3, 0, 0, 0]]))
    check(e, "3", "size 3", lineno=n)
    with pytest.raises(IndexError) as e:
        n = line()
        hybrid.take(x, hybrid.tensor([12]))
    check(e, "12", lineno=n)


def test_backward_non_scalar() -> None:
    y = hybrid.ones(3, requires_grad=True) * 2
    with pytest.raises(RuntimeError) as e:
        n = line()
        y.backward()
    check(e, "backward", "[3]", lineno=n, family=hybrid.AutogradError)


def test_item_and_bool_of_many_elements() -> None:
    with pytest.raises(ValueError) as e:
        n = line()
        hybrid.ones(2).item()
    check(e, "item", "[2]", lineno=n)
    with pytest.raises(ValueError) as e:
        n = line()
        bool(hybrid.ones(2))
    check(e, "ambiguous", lineno=n)


def test_rule_errors_from_primitives_name_the_line() -> None:
    with pytest.raises(ValueError) as e:
        n = line()
        hybrid.ones(2).expand(3)
    check(e, "expand", lineno=n)


def test_error_location_is_never_a_standard_library_frame(monkeypatch):
    """A hybrid function run directly by threading (or multiprocessing's worker bootstrap) has
    no user frame: the message names no location rather than threading.py's line."""
    import threading

    caught = []
    monkeypatch.setattr(threading, "excepthook", lambda a: caught.append(a.exc_value))
    t = threading.Thread(target=hybrid.add, args=(hybrid.ones(2), hybrid.ones(3)))
    t.start()
    t.join()
    assert len(caught) == 1 and isinstance(caught[0], hybrid.ShapeError)
    assert "cannot be broadcast" in str(caught[0])
    assert "threading.py" not in str(caught[0]) and " at " not in str(caught[0])
