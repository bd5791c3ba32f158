"""beginner_source/examples_nn: the same fits with nn.Sequential, nn.Module subclasses, nn losses
and torch.optim (SGD, RMSprop, Adam), and a network whose depth is drawn at random per call."""

from __future__ import annotations

import math
import random

from tutorial_harness import Result, script


def _poly_data(torch):
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    return x, y, xx


@script("examples_nn/polynomial_nn")
def polynomial_nn(torch, compile) -> Result:
    """Linear(3, 1) + Flatten(0, 1), MSELoss(reduction='sum'), manual updates of parameters()."""
    res = Result()
    torch.manual_seed(0)
    _, y, xx = _poly_data(torch)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    learning_rate = 1e-6

    def step(xx, y):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
        return loss

    step = compile(step)
    for _ in range(60):
        res.losses.append(step(xx, y).item())
    linear_layer = model[0]
    res.value(linear_layer.weight.shape == (1, 3) and linear_layer.bias.shape == (1,))
    return res


@script("examples_nn/polynomial_optim")
def polynomial_optim(torch, compile) -> Result:
    """The same model trained with optim.RMSprop(lr=1e-3)."""
    res = Result()
    torch.manual_seed(0)
    _, y, xx = _poly_data(torch)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)

    def step(xx, y):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(80):
        res.losses.append(step(xx, y).item())
    return res


def _polynomial3(torch):
    class Polynomial3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(()))
            self.b = torch.nn.Parameter(torch.randn(()))
            self.c = torch.nn.Parameter(torch.randn(()))
            self.d = torch.nn.Parameter(torch.randn(()))

        def forward(self, x):
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

        def string(self):
            return (f"y = {self.a.item()} + {self.b.item()} x + {self.c.item()} x^2 + "
                    f"{self.d.item()} x^3")

    return Polynomial3


@script("examples_nn/polynomial_module")
def polynomial_module(torch, compile) -> Result:
    """A Module with four 0-d Parameters, MSELoss(reduction='sum'), optim.SGD(lr=1e-6)."""
    res = Result()
    torch.manual_seed(0)
    x, y, _ = _poly_data(torch)
    model = _polynomial3(torch)()
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step(x, y):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(60):
        res.losses.append(step(x, y).item())
    res.value(model.string().startswith("y = "))
    return res


def _dynamic_net(torch):
    class DynamicNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Parameter(torch.randn(()))
            self.b = torch.nn.Parameter(torch.randn(()))
            self.c = torch.nn.Parameter(torch.randn(()))
            self.d = torch.nn.Parameter(torch.randn(()))
            self.e = torch.nn.Parameter(torch.randn(()))

        def forward(self, x, top):
            y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
            for exp in range(4, top):  # the script draws top = random.randint(4, 6) here
                y = y + self.e * x ** exp
            return y

    return DynamicNet


@script("examples_nn/dynamic_net", max_compiles=6)  # 2 depths x (no grad, no momentum, steady)
def dynamic_net(torch, compile) -> Result:
    """A forward whose number of terms is random per call; SGD with momentum. Compiled, the
    random depth is a static argument (one variant per depth)."""
    res = Result()
    torch.manual_seed(0)
    rng = random.Random(0)
    x, y, _ = _poly_data(torch)
    model = _dynamic_net(torch)()
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)

    def step(x, y, top):
        y_pred = model(x, top)
        loss = criterion(y_pred, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(60):
        res.losses.append(step(x, y, rng.randint(4, 5)).item())
    return res


def _mlp_data(torch):
    n, d_in, hidden, d_out = 64, 1000, 100, 10
    x = torch.randn(n, d_in)
    y = torch.randn(n, d_out)
    return x, y, d_in, hidden, d_out


@script("examples_nn/two_layer_net_nn")
def two_layer_net_nn(torch, compile) -> Result:
    """Sequential(Linear, ReLU, Linear), MSELoss(reduction='sum'), manual parameter updates."""
    res = Result()
    torch.manual_seed(0)
    x, y, d_in, hidden, d_out = _mlp_data(torch)
    model = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, d_out))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    learning_rate = 1e-4

    def step(x, y):
        loss = loss_fn(model(x), y)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
        return loss

    step = compile(step)
    for _ in range(40):
        res.losses.append(step(x, y).item())
    return res


@script("examples_nn/two_layer_net_optim")
def two_layer_net_optim(torch, compile) -> Result:
    """The same network trained with optim.Adam(lr=1e-4)."""
    res = Result()
    torch.manual_seed(0)
    x, y, d_in, hidden, d_out = _mlp_data(torch)
    model = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(),
                                torch.nn.Linear(hidden, d_out))
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(40):
        res.losses.append(step(x, y).item())
    return res


def _two_layer_net(torch):
    class TwoLayerNet(torch.nn.Module):
        def __init__(self, d_in, hidden, d_out):
            super().__init__()
            self.linear1 = torch.nn.Linear(d_in, hidden)
            self.linear2 = torch.nn.Linear(hidden, d_out)

        def forward(self, x):
            h_relu = self.linear1(x).clamp(min=0)
            return self.linear2(h_relu)

    return TwoLayerNet


@script("examples_nn/two_layer_net_module")
def two_layer_net_module(torch, compile) -> Result:
    """A Module subclass with two Linear layers and clamp(min=0); SGD(lr=1e-4)."""
    res = Result()
    torch.manual_seed(0)
    x, y, d_in, hidden, d_out = _mlp_data(torch)
    model = _two_layer_net(torch)(d_in, hidden, d_out)
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4)

    def step(x, y):
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(40):
        res.losses.append(step(x, y).item())
    return res
