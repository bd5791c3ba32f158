"""Autograd: accumulation, retain_graph, higher-order gradients, grad modes, detach, in-place
rules, broadcasting, retain_grad."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from gradcheck import gradcheck


def leaf(values, dtype=hybrid.float64):
    return hybrid.tensor(values, dtype=dtype, requires_grad=True)


def test_backward_accumulates() -> None:
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * 3).sum().backward()
    assert x.grad.tolist() == [5.0, 7.0]
    x.grad = None
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0]


def test_retain_graph() -> None:
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (np.exp([1, 2]) * (1 + np.array([1, 2]))))
    with pytest.raises(hybrid.AutogradError, match="retain_graph=True"):
        y.backward()


def test_grad_and_double_backward() -> None:
    x = leaf([0.5, -1.0, 2.0])
    y = (x ** 3).sum()
    (g,) = hybrid.autograd.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    assert x.grad is None  # grad() does not touch .grad
    (h,) = hybrid.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.detach().numpy())
    # double backward through sin/exp/mul: d2/dx2 sin(x) * exp(x) = 2 cos(x) exp(x)
    x2 = leaf([0.3, 1.2])
    (g2,) = hybrid.autograd.grad((x2.sin() * x2.exp()).sum(), x2, create_graph=True)
    g2.sum().backward()
    v = x2.detach().numpy()
    np.testing.assert_allclose(x2.grad.numpy(), 2 * np.cos(v) * np.exp(v), rtol=1e-12)


def test_second_derivatives_of_several_ops() -> None:
    cases = [(lambda t: t.tanh(), lambda v: -2 * np.tanh(v) / np.cosh(v) ** 2),
             (lambda t: t.sigmoid(), lambda v: (s := 1 / (1 + np.exp(-v))) * (1 - s) * (1 - 2 * s)),
             (lambda t: t.log(), lambda v: -1 / v ** 2),
             (lambda t: t.sqrt(), lambda v: -0.25 * v ** -1.5),
             (lambda t: 1 / t, lambda v: 2 / v ** 3)]
    for f, d2 in cases:
        x = leaf([0.4, 1.3])
        (g,) = hybrid.autograd.grad(f(x).sum(), x, create_graph=True)
        (h,) = hybrid.autograd.grad(g.sum(), x)
        np.testing.assert_allclose(h.numpy(), d2(np.array([0.4, 1.3])), rtol=1e-10)


def test_grad_of_non_leaf_and_allow_unused() -> None:
    x = leaf([1.0, 2.0])
    y = x * 2
    z = (y * y).sum()
    gy, gx = hybrid.autograd.grad(z, [y, x])
    assert gy.tolist() == [4.0, 8.0] and gx.tolist() == [8.0, 16.0]
    u = leaf([1.0])
    with pytest.raises(hybrid.AutogradError, match="allow_unused"):
        hybrid.autograd.grad((x * 2).sum(), [x, u])
    assert hybrid.autograd.grad((x * 2).sum(), [x, u], allow_unused=True)[1] is None


def test_no_grad_enable_grad_set_grad_enabled() -> None:
    x = leaf([1.0])
    with hybrid.no_grad():
        assert not hybrid.is_grad_enabled()
        y = x * 2
        with hybrid.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and hybrid.is_grad_enabled()
    with hybrid.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert hybrid.is_grad_enabled()
    hybrid.set_grad_enabled(False)
    assert not hybrid.is_grad_enabled()
    hybrid.set_grad_enabled(True)
    assert hybrid.is_grad_enabled()


def test_grad_mode_decorators() -> None:
    x = leaf([1.0])

    @hybrid.no_grad()
    def f(depth=0):
        if depth < 2:
            f(depth + 1)
        return x * 2

    @hybrid.set_grad_enabled(False)
    def g():
        return x * 2

    assert hybrid.is_grad_enabled()  # decorating alone changes nothing
    assert not f().requires_grad and not g().requires_grad
    assert hybrid.is_grad_enabled()  # recursion restored the mode

    @hybrid.enable_grad()
    def h():
        return x * 2

    with hybrid.no_grad():
        assert h().requires_grad
        assert not hybrid.is_grad_enabled()


def test_detach_and_requires_grad_() -> None:
    x = leaf([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.grad_fn is None
    y = hybrid.tensor([1.0, 2.0])
    assert y.requires_grad_() is y and y.requires_grad
    (y * y).sum().backward()
    assert y.grad.tolist() == [2.0, 4.0]
    x.detach()[0] = 5.0  # detach shares storage
    assert x[0].item() == 5.0
    with pytest.raises(hybrid.AutogradError):
        (x * 2).requires_grad_(False)


def test_broadcast_gradients_reduce_to_input_shape() -> None:
    a = leaf(np.ones((3, 1)))
    b = leaf(np.ones((4,)))
    c = leaf(2.0)
    (a * b + c).sum().backward()
    assert a.grad.shape == (3, 1) and a.grad.tolist() == [[4.0]] * 3
    assert b.grad.shape == (4,) and b.grad.tolist() == [3.0] * 4
    assert c.grad.shape == () and c.grad.item() == 12.0
    gradcheck(lambda p, q: p / q - p * q, np.random.rand(2, 1, 3), np.random.rand(4, 1) + 1)


def test_integer_tensors_cannot_require_grad() -> None:
    with pytest.raises(hybrid.DTypeError, match="floating"):
        hybrid.tensor([1, 2], requires_grad=True)
    with pytest.raises(hybrid.DTypeError):
        hybrid.tensor([1, 2]).requires_grad_()
    x = leaf([1.5, 2.5])
    assert not x.long().requires_grad  # casting to int leaves the graph
    assert not (x > 2).requires_grad


def test_inplace_on_saved_tensor_raises() -> None:
    x = leaf([1.0, 2.0])
    y = x * 1
    z = y * y  # mul saves y
    y.add_(1)
    with pytest.raises(hybrid.AutogradError, match="modified by an in-place operation"):
        z.sum().backward()
    a = x.exp()
    b = a.sin()  # sin reads a
    a += 1
    with pytest.raises(hybrid.AutogradError, match="in-place"):
        b.sum().backward()


def test_inplace_on_leaf_requiring_grad_raises() -> None:
    x = leaf([1.0, 2.0])
    with pytest.raises(hybrid.AutogradError, match="no_grad"):
        x.add_(1)
    with pytest.raises(hybrid.AutogradError):
        x += 1
    with pytest.raises(hybrid.AutogradError):
        x[0] = 3.0
    with hybrid.no_grad():
        x.add_(1)
        x[0] = 5.0
    assert x.tolist() == [5.0, 3.0] and x.requires_grad and x.is_leaf


def test_inplace_on_non_leaf_is_differentiable() -> None:
    x = leaf([1.0, 2.0, 3.0])
    y = x * 2
    y.mul_(x)
    y[0] = 0.0
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 8.0, 12.0]
    gradcheck(lambda t: _inplace_chain(t), np.random.rand(3, 4))


def _inplace_chain(t):
    y = t * 1
    y.add_(t).mul_(t)
    y[1:, ::2] = y[:2, 1::2] * 3
    y.clamp_(0.1, 5.0)
    return y


def test_retain_grad_on_non_leaf() -> None:
    x = leaf([1.0, 2.0])
    y = x * 3
    y.retain_grad()
    z = y * y
    z.sum().backward()
    assert y.grad.tolist() == [6.0, 12.0]
    assert x.grad.tolist() == [18.0, 36.0]
    assert (x * 2).grad is None


def test_backward_on_non_scalar_needs_gradient() -> None:
    x = leaf([1.0, 2.0])
    y = x * 2
    with pytest.raises(hybrid.AutogradError, match="single-element"):
        y.backward()
    y.backward(hybrid.tensor([1.0, 0.5], dtype=hybrid.float64))
    assert x.grad.tolist() == [2.0, 1.0]


def test_backward_without_grad_raises() -> None:
    with pytest.raises(hybrid.AutogradError, match="does not require grad"):
        hybrid.tensor([1.0]).sum().backward()


def test_leaf_and_grad_fn() -> None:
    x = leaf([1.0])
    y = x + 1
    assert x.is_leaf and not y.is_leaf and y.grad_fn.name() == "AddBackward"
