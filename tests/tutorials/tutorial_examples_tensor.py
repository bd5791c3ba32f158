"""beginner_source/examples_tensor: a network and a polynomial fitted with hand-written
backward passes on plain tensors (the numpy twins of these scripts use no torch at all)."""

from __future__ import annotations

import math

from tutorial_harness import Result, script


@script("examples_tensor/two_layer_net_tensor")
def two_layer_net_tensor(torch, compile) -> Result:
    """Manual forward/backward of a ReLU MLP, `grad_h[h < 0] = 0`, in-place SGD updates."""
    res = Result()
    torch.manual_seed(0)
    dtype = torch.float
    device = torch.device("cpu")
    n, d_in, hidden, d_out = 64, 1000, 100, 10
    x = torch.randn(n, d_in, device=device, dtype=dtype)
    y = torch.randn(n, d_out, device=device, dtype=dtype)
    w1 = torch.randn(d_in, hidden, device=device, dtype=dtype)
    w2 = torch.randn(hidden, d_out, device=device, dtype=dtype)
    learning_rate = 1e-6

    def step(x, y):
        nonlocal w1, w2
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        loss = (y_pred - y).pow(2).sum()
        grad_y_pred = 2.0 * (y_pred - y)
        grad_w2 = h_relu.t().mm(grad_y_pred)
        grad_h_relu = grad_y_pred.mm(w2.t())
        grad_h = grad_h_relu.clone()
        grad_h[h < 0] = 0
        grad_w1 = x.t().mm(grad_h)
        w1 -= learning_rate * grad_w1
        w2 -= learning_rate * grad_w2
        return loss

    step = compile(step)
    for _ in range(40):
        res.losses.append(step(x, y).item())
    return res


@script("examples_tensor/polynomial_tensor")
def polynomial_tensor(torch, compile) -> Result:
    """y = a + bx + cx^2 + dx^3 fitted to sin(x) with hand-written gradients (matmul(input=,
    other=) keywords, 0-d random weights, in-place updates)."""
    res = Result()
    torch.manual_seed(0)
    dtype = torch.float
    device = torch.device("cpu")
    x = torch.linspace(-math.pi, math.pi, 2000, device=device, dtype=dtype)
    y = torch.sin(x)
    a = torch.randn((), device=device, dtype=dtype)
    b = torch.randn((), device=device, dtype=dtype)
    c = torch.randn((), device=device, dtype=dtype)
    d = torch.randn((), device=device, dtype=dtype)
    learning_rate = 1e-6

    def step(x, y):
        nonlocal a, b, c, d
        y_pred = a + (b * x) + (c * x.pow(2)) + (d * x.pow(3))
        loss = (y_pred - y).pow(2).sum()
        grad_y_pred = -2.0 * (y - y_pred)
        grad_a = grad_y_pred.sum()
        grad_b = torch.matmul(input=grad_y_pred, other=x).sum()
        grad_c = torch.matmul(input=grad_y_pred, other=x.pow(2)).sum()
        grad_d = torch.matmul(input=grad_y_pred, other=x.pow(3)).sum()
        a -= learning_rate * grad_a
        b -= learning_rate * grad_b
        c -= learning_rate * grad_c
        d -= learning_rate * grad_d
        return loss

    step = compile(step)
    for _ in range(60):
        res.losses.append(step(x, y).item())
    res.value(math.isfinite(a.item() + b.item() + c.item() + d.item()))  # the closing print
    return res
