"""Any output of a compiled function works as in eager: constants, inputs returned as they are,
views of inputs (writes through them reach the input), the same tensor twice, None, numbers,
nested containers; distinct outputs never share memory; aliasing of the arguments, anywhere in
nested containers, is part of the cache key."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid as h


@pytest.fixture(autouse=True, params=["native", "interpreter"])
def backend(request):
    prev = h.config.backend
    h.config.backend = request.param
    yield request.param
    h.config.backend = prev


def a(t):
    return t.detach().numpy()


def test_constant_output():
    f = h.compile(lambda x: (x * 2, h.arange(5)))
    y, r = f(h.ones(3))
    np.testing.assert_array_equal(a(r), np.arange(5))
    r.add_(1)  # a fresh tensor on every call: updating it does not change the next result
    _, r2 = f(h.ones(3))
    np.testing.assert_array_equal(a(r2), np.arange(5))
    assert not np.shares_memory(a(r), a(r2))


def test_only_constant_output():
    f = h.compile(lambda: h.full((2, 2), 3.0))
    np.testing.assert_array_equal(a(f()), np.full((2, 2), 3.0))


@pytest.mark.parametrize("name, fn", [
    ("reshape", lambda x: x.reshape(6)),
    ("sum", lambda x: x.sum()),
    ("add", lambda x: x + x.detach()),
    ("permute", lambda x: x.permute(1, 0)),
    ("cat", lambda x: h.cat([x, x], 0)),
    ("split", lambda x: h.split(x, 1, 0)[1]),
    ("linear", lambda x: h.nn.functional.linear(x, h.ones(4, 3))),
])
def test_gradient_that_folds_to_a_constant(name, fn):
    def grads(x):
        y = fn(x)
        y.backward(h.ones_like(y))
        return x.grad

    x1 = h.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    x2 = h.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    expect = grads(x1)
    got = h.compile(grads)(x2)
    np.testing.assert_allclose(a(got), a(expect), rtol=1e-6)


def test_input_returned_as_it_is_is_the_same_object():
    f = h.compile(lambda x, y: (x, y * 2))
    x = h.ones(3)
    r, _ = f(x, h.ones(3))
    assert r is x


def test_input_updated_in_place_and_returned():
    @h.compile
    def f(x):
        x.add_(1)
        return x

    x = h.zeros(3)
    r = f(x)
    assert r is x
    np.testing.assert_array_equal(a(x), np.ones(3))


@pytest.mark.parametrize("view", [lambda x: x[0], lambda x: x.T, lambda x: x.reshape(-1),
                                  lambda x: x[:, 1:], lambda x: x.detach()])
def test_returned_view_of_an_input_is_a_view(view):
    f = h.compile(view)
    x_eager = h.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    x = h.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    ve = view(x_eager)  # eager: a view
    vc = f(x)
    np.testing.assert_array_equal(a(vc), a(ve))
    ve.mul_(0)
    vc.mul_(0)  # a write through the compiled result reaches x, as in eager
    np.testing.assert_array_equal(a(x), a(x_eager))
    assert float(x.sum()) < 15.0


@pytest.mark.parametrize("view", [lambda x: x[0], lambda x: x.T, lambda x: x.reshape(-1),
                                  lambda x: x[:, ::2], lambda x: x.T.reshape(-1)])
def test_view_of_an_input_updated_in_place_is_a_view(view):
    """`x.mul_(2); return view(x)`: eager returns a view of the updated x (or, for a reshape
    numpy cannot view, a copy of the new value); so does the compiled call, on every call."""
    def fn(x):
        x.mul_(2)
        return view(x)

    f = h.compile(fn)
    x_eager = h.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    x = h.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    for _ in range(3):
        ve, vc = fn(x_eager), f(x)
        np.testing.assert_array_equal(a(vc), a(ve))
        assert np.shares_memory(a(vc), a(x)) == np.shares_memory(a(ve), a(x_eager))
        ve.add_(100)  # where eager's result is a view, the write reaches x
        vc.add_(100)
        np.testing.assert_array_equal(a(x), a(x_eager))


def test_same_tensor_returned_twice():
    @h.compile
    def f(x):
        y = x * 2
        return y, y

    p, q = f(h.ones(3))
    assert p is q


def test_equal_values_are_distinct_outputs():
    f = h.compile(lambda x: (x * 2, x * 2))  # CSE merges them; eager gives two tensors
    p, q = f(h.ones(3))
    p.add_(1)
    np.testing.assert_array_equal(a(q), np.full(3, 2.0))


def test_none_numbers_and_nested_containers():
    @h.compile
    def f(x):
        return {"a": [x + 1, None, (x * 2, 3.5)], "b": "text", "c": 7}

    out = f(h.ones(2))
    np.testing.assert_array_equal(a(out["a"][0]), [2, 2])
    assert out["a"][1] is None and out["a"][2][1] == 3.5
    np.testing.assert_array_equal(a(out["a"][2][0]), [2, 2])
    assert out["b"] == "text" and out["c"] == 7


def test_aliasing_in_a_list_changes_between_calls():
    f = h.compile(lambda xs: xs[0] + xs[1])
    x = h.ones(3)
    np.testing.assert_array_equal(a(f([x, x])), [2, 2, 2])
    np.testing.assert_array_equal(a(f([x, x * 10])), [11, 11, 11])
    np.testing.assert_array_equal(a(f([x, x])), [2, 2, 2])


def test_aliasing_in_a_dict_and_keywords():
    f = h.compile(lambda d, k=None: d["p"] * 100 + d["q"] * 10 + k)
    p, q = h.ones(1), h.full((1,), 2.0)
    assert float(f({"p": p, "q": q}, k=p)) == 121.0
    assert float(f({"p": p, "q": q}, k=q)) == 122.0
    assert float(f({"p": q, "q": q}, k=q)) == 222.0


def test_aliasing_pattern_of_three():
    f = h.compile(lambda xs: xs[0] * 100 + xs[1] * 10 + xs[2])
    a1, b1 = h.full((1,), 1.0), h.full((1,), 2.0)
    assert float(f([a1, a1, b1])) == 112.0
    assert float(f([a1, b1, b1])) == 122.0


def test_aliasing_in_nested_containers_changes_between_calls():
    """The same tensor reached through a list inside a dict, a tuple inside a list and a keyword
    is one input; a different tensor in one of those places is another: eager's values."""
    f = h.compile(lambda d, pairs, k: d["xs"][0] * 1000 + d["xs"][1] * 100
                  + pairs[0][1] * 10 + k)
    p, q = h.ones(1), h.full((1,), 2.0)
    cases = [({"xs": [p, p]}, [(q, p)], p), ({"xs": [p, q]}, [(q, p)], p),
             ({"xs": [p, q]}, [(p, q)], p), ({"xs": [q, q]}, [(p, q)], q),
             ({"xs": [p, p]}, [(q, p)], p)]
    for d, pairs, k in cases:
        want = float(d["xs"][0]) * 1000 + float(d["xs"][1]) * 100 + float(pairs[0][1]) * 10 \
            + float(k)
        assert float(f(d, pairs, k)) == want, (d, pairs, k)
    in_place = h.compile(lambda d: d["a"][0].add_(1) + d["b"][1])
    x = h.zeros(1)
    assert float(in_place({"a": [x], "b": (h.ones(1), x)})) == 2.0  # reads x after the update
    assert float(x) == 1.0


def test_argument_that_is_also_a_global_updated_in_place():
    global W
    W = h.ones(2)

    @h.compile
    def f(v):
        W.add_(1)
        return v * 1

    r = f(W)  # eager: the update happens before `v * 1` reads the same tensor
    np.testing.assert_array_equal(a(r), [2, 2])
    other = h.zeros(2)
    np.testing.assert_array_equal(a(f(other)), [0, 0])
    np.testing.assert_array_equal(a(W), [3, 3])


def test_numpy_argument_mutated_between_calls_is_not_stale():
    f = h.compile(lambda x, n: x + h.tensor(n))
    n = np.ones(3, dtype=np.float32)
    np.testing.assert_array_equal(a(f(h.zeros(3), n)), [1, 1, 1])
    n[:] = 5
    np.testing.assert_array_equal(a(f(h.zeros(3), n)), [5, 5, 5])
