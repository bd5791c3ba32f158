"""beginner_source/examples_autograd: the same fits with autograd computing the gradients, and
custom autograd Functions (LegendrePolynomial3, MyReLU). tf_two_layer_net uses TensorFlow."""

from __future__ import annotations

import math

from tutorial_harness import Result, script


@script("examples_autograd/polynomial_autograd")
def polynomial_autograd(torch, compile) -> Result:
    """0-d weights with requires_grad, loss.backward(), updates under no_grad, grad = None."""
    res = Result()
    torch.manual_seed(0)
    dtype = torch.float
    device = "cpu"
    torch.set_default_device(device)
    try:
        x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
        y = torch.sin(x)
        a = torch.randn((), dtype=dtype, requires_grad=True)
        b = torch.randn((), dtype=dtype, requires_grad=True)
        c = torch.randn((), dtype=dtype, requires_grad=True)
        d = torch.randn((), dtype=dtype, requires_grad=True)
    finally:
        torch.set_default_device(None)
    learning_rate = 1e-6

    def step(x, y):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for w in (a, b, c, d):
                w -= learning_rate * w.grad
                w.grad = None
        return loss

    step = compile(step)
    for _ in range(60):
        res.losses.append(step(x, y).item())
    return res


def _legendre(torch):
    class LegendrePolynomial3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    return LegendrePolynomial3


@script("examples_autograd/polynomial_custom_function")
def polynomial_custom_function(torch, compile) -> Result:
    """y = a + b * P3(c + d x) with P3 a custom autograd.Function; weights from torch.full."""
    res = Result()
    dtype = torch.float
    device = torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)
    a = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    b = torch.full((), -1.0, device=device, dtype=dtype, requires_grad=True)
    c = torch.full((), 0.0, device=device, dtype=dtype, requires_grad=True)
    d = torch.full((), 0.3, device=device, dtype=dtype, requires_grad=True)
    learning_rate = 5e-6
    legendre = _legendre(torch)

    def step(x, y):
        nonlocal a, b, c, d  # the script updates module-level names: `a -= ...` in place
        p3 = legendre.apply
        y_pred = a + b * p3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
        return loss

    step = compile(step)
    for _ in range(60):
        res.losses.append(step(x, y).item())
    res.value(a.detach())  # deterministic start: the fitted values match PyTorch's
    res.value(torch.stack([b, c, d]).detach())
    return res


@script("examples_autograd/two_layer_net_autograd")
def two_layer_net_autograd(torch, compile) -> Result:
    """The MLP with autograd: weights that require grad, .grad.zero_() after each update."""
    res = Result()
    torch.manual_seed(0)
    dtype = torch.float
    device = torch.device("cpu")
    n, d_in, hidden, d_out = 64, 1000, 100, 10
    x = torch.randn(n, d_in, device=device, dtype=dtype)
    y = torch.randn(n, d_out, device=device, dtype=dtype)
    w1 = torch.randn(d_in, hidden, device=device, dtype=dtype, requires_grad=True)
    w2 = torch.randn(hidden, d_out, device=device, dtype=dtype, requires_grad=True)
    learning_rate = 1e-6

    def step(x, y):
        y_pred = x.mm(w1).clamp(min=0).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            w1.sub_(learning_rate * w1.grad)
            w2.sub_(learning_rate * w2.grad)
            w1.grad.zero_()
            w2.grad.zero_()
        return loss

    step = compile(step)
    for _ in range(40):
        res.losses.append(step(x, y).item())
    return res


def _my_relu(torch):
    class MyReLU(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return input.clamp(min=0)

        @staticmethod
        def backward(ctx, grad_output):
            (input,) = ctx.saved_tensors
            grad_input = grad_output.clone()
            grad_input[input < 0] = 0
            return grad_input

    return MyReLU


@script("examples_autograd/two_layer_net_custom_function")
def two_layer_net_custom_function(torch, compile) -> Result:
    """The MLP with a custom ReLU Function whose backward assigns through a boolean mask."""
    res = Result()
    torch.manual_seed(0)
    dtype = torch.float
    device = torch.device("cpu")
    n, d_in, hidden, d_out = 64, 1000, 100, 10
    x = torch.randn(n, d_in, device=device, dtype=dtype)
    y = torch.randn(n, d_out, device=device, dtype=dtype)
    w1 = torch.randn(d_in, hidden, device=device, dtype=dtype, requires_grad=True)
    w2 = torch.randn(hidden, d_out, device=device, dtype=dtype, requires_grad=True)
    learning_rate = 1e-6
    relu = _my_relu(torch).apply

    def step(x, y):
        nonlocal w1, w2
        y_pred = relu(x.mm(w1)).mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            w1 -= learning_rate * w1.grad
            w2 -= learning_rate * w2.grad
            w1.grad.zero_()
            w2.grad.zero_()
        return loss

    step = compile(step)
    for _ in range(40):
        res.losses.append(step(x, y).item())
    return res
