"""hybrid.autograd.Function: eager, inside @hybrid.compile, against PyTorch where installed, and
hybrid.autograd.gradcheck / gradgradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid.autograd import Function, GradcheckError, gradcheck, gradgradcheck, once_differentiable


def _functions(torch):
    """The same custom functions written against `torch` (hybrid or PyTorch)."""

    class Legendre3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return 0.5 * (5 * x ** 3 - 3 * x)

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 1.5 * (5 * x ** 2 - 1)

    class Scale(torch.autograd.Function):  # a non-tensor argument, attributes on ctx
        @staticmethod
        def forward(ctx, x, factor, w):
            ctx.factor = factor
            ctx.save_for_backward(x, w)
            return x * w * factor

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            gx = g * w * ctx.factor if ctx.needs_input_grad[0] else None
            gw = (g * x * ctx.factor).sum(0) if ctx.needs_input_grad[2] else None
            return gx, None, gw

    class SplitExp(torch.autograd.Function):  # two outputs, one backward call
        @staticmethod
        def forward(ctx, x):
            a, b = x.exp(), x * 2
            ctx.save_for_backward(a)
            return a, b

        @staticmethod
        def backward(ctx, ga, gb):
            (a,) = ctx.saved_tensors
            return ga * a + gb * 2

    class Straight(torch.autograd.Function):  # straight-through: backward is not d(forward)
        @staticmethod
        def forward(ctx, x):
            return x.round()

        @staticmethod
        def backward(ctx, g):
            return g

    return Legendre3, Scale, SplitExp, Straight


def _scenario(torch):
    """Loss and input gradients of a small program using every function above."""
    legendre, scale, split, straight = _functions(torch)
    x = torch.tensor(np.linspace(-1, 1, 12).reshape(3, 4), dtype=torch.float64,
                     requires_grad=True)
    w = torch.tensor(np.linspace(0.5, 2, 4), dtype=torch.float64, requires_grad=True)
    a, b = split.apply(legendre.apply(x))
    y = scale.apply(a + b, 3.0, w)
    loss = (straight.apply(y * 4) * y).sum()
    loss.backward()
    return loss.item(), x.grad.numpy().copy(), w.grad.numpy().copy()


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    got = _scenario(hybrid)
    want = _scenario(torch)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_backward_is_the_users_not_the_forward_derivative():
    _, _, _, straight = _functions(hybrid)
    x = hybrid.tensor([0.2, 1.7, -2.4], requires_grad=True)
    straight.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])  # round' would be 0


def test_multiple_outputs_call_backward_once():
    calls = []

    class Two(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            calls.append((ga is not None, gb is not None))
            return ga * 2 + gb * 3

    x = hybrid.ones(3, requires_grad=True)
    a, b = Two.apply(x)
    (a.sum() + 10 * b.sum()).backward()
    assert calls == [(True, True)]
    np.testing.assert_allclose(x.grad.numpy(), [32.0] * 3)


def test_materialize_grads_and_unused_output():
    seen = []

    class Two(Function):
        @staticmethod
        def forward(ctx, x, materialize):
            ctx.set_materialize_grads(materialize)
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, ga, gb):
            seen.append(gb)
            return ga * 2 + (0 if gb is None else gb * 3), None

    x = hybrid.ones(2, requires_grad=True)
    Two.apply(x, True)[0].sum().backward()
    Two.apply(x, False)[0].sum().backward()
    assert seen[0] is not None and np.all(seen[0].numpy() == 0)
    assert seen[1] is None
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_needs_input_grad_and_non_differentiable_output():
    flags = []

    class ArgmaxAndValue(Function):
        @staticmethod
        def forward(ctx, x, y):
            flags.append(ctx.needs_input_grad)
            idx = x.argmax(0)
            mask = (x > 0).float()
            ctx.mark_non_differentiable(idx, mask)
            ctx.save_for_backward(mask)
            return x * y, idx, mask

        @staticmethod
        def backward(ctx, g, g_idx, g_mask):
            (mask,) = ctx.saved_tensors
            return g * mask, None

    x = hybrid.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = hybrid.tensor([1.0, 1.0, 1.0])
    out, idx, mask = ArgmaxAndValue.apply(x, y)
    assert flags == [(True, False)]
    assert out.requires_grad and not idx.requires_grad and not mask.requires_grad
    assert out.grad_fn.name() == "ArgmaxAndValueBackward"
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 0.0, 1.0])


def test_no_grad_mode_records_nothing():
    legendre = _functions(hybrid)[0]
    x = hybrid.ones(2, requires_grad=True)
    with hybrid.no_grad():
        y = legendre.apply(x)
    assert not y.requires_grad and y.grad_fn is None


def test_returning_an_input_keeps_its_history():
    class Ident(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 5

    x = hybrid.ones(2, requires_grad=True)
    h = x * 1
    y = Ident.apply(h)
    assert y is not h and h.grad_fn.name() != "IdentBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, 5.0])


def test_bad_backward_results_are_clear_errors():
    class TooFew(Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    class WrongShape(Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g[:1]

    x = hybrid.ones(3, requires_grad=True)
    with pytest.raises(hybrid.AutogradError, match="expected 2"):
        TooFew.apply(x, x).sum().backward()
    with pytest.raises(hybrid.ShapeError, match=r"shape \[1\].*\[3\]"):
        WrongShape.apply(x).sum().backward()
    with pytest.raises(hybrid.AutogradError, match="apply"):
        WrongShape()(x)


def test_saved_tensor_modified_in_place_is_an_error():
    legendre = _functions(hybrid)[0]
    x = hybrid.ones(2, requires_grad=True)
    h = x * 2
    y = legendre.apply(h)
    with hybrid.no_grad():
        h.add_(1)
    with pytest.raises(hybrid.AutogradError, match="modified by an in-place"):
        y.sum().backward()


def test_second_backward_needs_retain_graph():
    legendre = _functions(hybrid)[0]
    x = hybrid.ones(2, requires_grad=True)
    y = legendre.apply(x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 1.5 * 4 * np.ones(2))
    with pytest.raises(hybrid.AutogradError, match="second time"):
        y.backward()


def test_double_backward_through_differentiable_backward():
    torch = pytest.importorskip("torch")

    def run(t):
        legendre = _functions(t)[0]
        x = t.tensor([0.3, -0.7], dtype=t.float64, requires_grad=True)
        (g,) = t.autograd.grad(legendre.apply(x).sum(), [x], create_graph=True)
        (gg,) = t.autograd.grad(g.sum(), [x])
        return gg.numpy()

    np.testing.assert_allclose(run(hybrid), run(torch), rtol=1e-12)
    np.testing.assert_allclose(run(hybrid), 15 * np.array([0.3, -0.7]), rtol=1e-12)


def test_once_differentiable():
    class Sq(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = hybrid.tensor([1.0, 2.0], requires_grad=True)
    (g,) = hybrid.autograd.grad(Sq.apply(x).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), [2.0, 4.0])
    with pytest.raises(hybrid.AutogradError, match="once_differentiable"):
        g.sum().backward()
    y = hybrid.tensor([3.0], requires_grad=True)
    Sq.apply(y).sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), [6.0])


def test_setup_context_style():
    class Mul(Function):
        @staticmethod
        def forward(x, k):
            return x * k

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.k = inputs[1]

        @staticmethod
        def backward(ctx, g):
            return g * ctx.k, None

    x = hybrid.ones(2, requires_grad=True)
    Mul.apply(x, 4.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 4.0])


def test_compiled_training_step_traces_the_users_backward():
    _, _, _, straight = _functions(hybrid)
    legendre = _functions(hybrid)[0]
    hybrid.manual_seed(0)
    w = hybrid.randn(4, requires_grad=True)
    x = hybrid.randn(8, 4)

    def step(x):
        loss = (straight.apply(legendre.apply(x * w) * 3) * w).sum()
        loss.backward()
        return loss

    want_loss = step(x).item()
    want_grad = w.grad.numpy().copy()
    compiled = hybrid.compile(step)
    for _ in range(3):  # first call traces, the others run the compiled graph
        w.grad = None
        got = compiled(x)
        np.testing.assert_allclose(got.item(), want_loss, rtol=1e-5)
        np.testing.assert_allclose(w.grad.numpy(), want_grad, rtol=1e-5, atol=1e-6)
    assert compiled.cache_size() == 1
    graph = str(compiled.graph_for(x))
    assert "round" in graph  # the traced forward; straight-through backward is an identity


def test_backward_through_a_compiled_call_calls_the_users_backward():
    legendre, scale, split, straight = _functions(hybrid)
    hybrid.manual_seed(2)
    w = hybrid.randn(3, requires_grad=True)
    x = hybrid.randn(5, 3)

    def fwd(x):
        a, b = split.apply(legendre.apply(x * w))
        return (straight.apply(scale.apply(a + b, 2.0, w) * 3) * w).sum()

    want = fwd(x)
    want.backward()
    want_grad = w.grad.numpy().copy()
    compiled = hybrid.compile(fwd)
    for _ in range(2):  # the backward graph is built once, then reused
        w.grad = None
        got = compiled(x)
        got.backward()
        np.testing.assert_allclose(got.item(), want.item(), rtol=1e-5)
        np.testing.assert_allclose(w.grad.numpy(), want_grad, rtol=1e-4, atol=1e-5)
    w.grad = None
    straight_only = hybrid.compile(lambda x: straight.apply(x * w).sum())
    straight_only(x).backward()
    np.testing.assert_allclose(w.grad.numpy(), x.numpy().sum(0), rtol=1e-6)  # round' = 0


def test_backward_through_a_compiled_call_refuses_an_identity_output():
    class Ident(Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 2

    w = hybrid.ones(3, requires_grad=True)
    fwd = hybrid.compile(lambda x: Ident.apply(x * w).sum())
    loss = fwd(hybrid.ones(3))
    with pytest.raises(hybrid.AutogradError, match="Ident.*returns one of its inputs"):
        loss.backward()


def test_gradcheck_passes_and_fails():
    legendre, scale, split, straight = _functions(hybrid)
    x = hybrid.tensor(np.linspace(-1, 1, 6), dtype=hybrid.float64, requires_grad=True)
    w = hybrid.tensor(np.linspace(0.5, 1, 6), dtype=hybrid.float64, requires_grad=True)
    assert gradcheck(legendre.apply, (x,))
    assert gradcheck(lambda a, b: scale.apply(a, 2.0, b), (x.reshape(1, 6), w))
    assert gradcheck(split.apply, (x,), eps=1e-6, atol=1e-5, rtol=1e-3)
    off = hybrid.tensor([0.2, 0.3], dtype=hybrid.float64, requires_grad=True)  # away from .5
    with pytest.raises(GradcheckError, match="Jacobian mismatch"):
        gradcheck(straight.apply, (off,))
    assert gradcheck(straight.apply, (off,), raise_exception=False) is False
    assert gradgradcheck(legendre.apply, (x,))


def test_gradcheck_agrees_with_pytorch_on_a_wrong_backward():
    torch = pytest.importorskip("torch")

    def wrong(t):
        class Bad(t.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x.sin()

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return g * x.cos() * 1.01

        return Bad

    xs = np.linspace(0.1, 1.0, 5)
    h = hybrid.tensor(xs, dtype=hybrid.float64, requires_grad=True)
    t = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    assert gradcheck(wrong(hybrid).apply, (h,), raise_exception=False) is \
        torch.autograd.gradcheck(wrong(torch).apply, (t,), raise_exception=False) is False


def test_next_functions_and_accumulate_grad():
    torch = pytest.importorskip("torch")

    def shape_of(t):
        a = t.ones(2, requires_grad=True)
        b = t.ones(2)
        c = t.ones(2, requires_grad=True)
        y = (a + b) * c  # primitives that map one to one onto PyTorch's nodes
        fns = y.grad_fn.next_functions
        inner = fns[0][0].next_functions
        return [type(n).__name__ if n is not None else None for n, _ in fns], \
            [type(n).__name__ if n is not None else None for n, _ in inner], [i for _, i in inner]

    got, want = shape_of(hybrid), shape_of(torch)
    assert got[0][1] == want[0][1] == "AccumulateGrad" and got[1:] == want[1:]
    a = hybrid.ones(2, requires_grad=True)
    y = a * 2
    (node, idx), _ = y.grad_fn.next_functions
    assert node.name() == "AccumulateGrad" and node.variable is a and idx == 0
