"""pytorch/examples: regression (polynomial fit with smooth_l1_loss) and
time_sequence_prediction (sine waves saved as an ndarray, two LSTMCells, LBFGS)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
from tutorial_harness import Result, script


@script("pytorch_examples/regression")
def regression(torch, compile) -> Result:
    """Features [x, x^2, x^3, x^4], Linear(4, 1), F.smooth_l1_loss, fc.zero_grad(), SGD by
    param.add_(-0.1 * param.grad) (under no_grad: the script's bare in-place update of a leaf
    raises in PyTorch 2), the closing poly_desc formatting."""
    res = Result()
    F = torch.nn.functional
    torch.manual_seed(0)
    poly_degree = 4
    w_target = torch.randn(poly_degree, 1) * 5
    b_target = torch.randn(1) * 5

    def make_features(x):
        x = x.unsqueeze(1)
        return torch.cat([x ** i for i in range(1, poly_degree + 1)], 1)

    def f(x):
        return x.mm(w_target) + b_target.item()

    def poly_desc(w, b):
        result = "y = "
        for i, wi in enumerate(w):
            result += f"{wi:+.2f} x^{i + 1} "
        result += f"{b[0]:+.2f}"
        return result

    fc = torch.nn.Linear(w_target.size(0), 1)

    def step(batch_x, batch_y):
        fc.zero_grad()
        output = F.smooth_l1_loss(fc(batch_x), batch_y)
        output.backward()
        with torch.no_grad():
            for param in fc.parameters():
                param.add_(-0.1 * param.grad)
        return output

    step = compile(step)
    for _ in range(60):
        batch_x = make_features(torch.randn(32))
        res.losses.append(step(batch_x, f(batch_x)).item())
    res.value(poly_desc(fc.weight.view(-1), fc.bias).startswith("y = "))
    return res


def _sequence(torch):
    nn = torch.nn

    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm1 = nn.LSTMCell(1, 51)
            self.lstm2 = nn.LSTMCell(51, 51)
            self.linear = nn.Linear(51, 1)
            self.dummy_param = nn.Parameter(torch.empty(0))

        def forward(self, input, future=0):
            outputs = []
            device = self.dummy_param.device
            h_t = torch.zeros(input.size(0), 51, dtype=torch.double).to(device)
            c_t = torch.zeros(input.size(0), 51, dtype=torch.double).to(device)
            h_t2 = torch.zeros(input.size(0), 51, dtype=torch.double).to(device)
            c_t2 = torch.zeros(input.size(0), 51, dtype=torch.double).to(device)
            for input_t in input.split(1, dim=1):
                h_t, c_t = self.lstm1(input_t, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            for _ in range(future):
                h_t, c_t = self.lstm1(output, (h_t, c_t))
                h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
                output = self.linear(h_t2)
                outputs += [output]
            return torch.cat(outputs, dim=1)

    return Sequence


def _sine_waves(torch, path):
    """generate_sine_wave.py: an ndarray saved with torch.save."""
    np.random.seed(2)
    t, length, n = 20, 24, 8
    x = np.empty((n, length), np.int64)
    x[:] = np.array(range(length)) + np.random.randint(-4 * t, 4 * t, n).reshape(n, 1)
    data = np.sin(x / 1.0 / t).astype("float64")
    with open(path, "wb") as f:
        torch.save(data, f)


@script("pytorch_examples/time_sequence_prediction")
def time_sequence_prediction(torch, compile) -> Result:
    """Save/load the sine-wave ndarray, from_numpy, a double-precision LSTMCell model, MSELoss,
    optim.LBFGS with a closure, prediction under no_grad with future steps."""
    res = Result()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "traindata.pt")
        _sine_waves(torch, path)
        data = torch.from_numpy(torch.load(path, weights_only=False))
    res.value(data)
    input, target = data[3:, :-1], data[3:, 1:]
    test_input, test_target = data[:3, :-1], data[:3, 1:]
    np.random.seed(0)
    torch.manual_seed(0)
    seq = _sequence(torch)().double()
    criterion = torch.nn.MSELoss()
    optimizer = torch.optim.LBFGS(seq.parameters(), lr=0.8, max_iter=3)

    def closure():
        optimizer.zero_grad()
        loss = criterion(seq(input), target)
        loss.backward()
        return loss

    closure = compile(closure)
    for _ in range(2):
        res.losses.append(float(optimizer.step(closure).detach()))
    with torch.no_grad():
        future = 10
        pred = seq(test_input, future=future)
        res.value(tuple(pred.shape))
        res.value(bool(criterion(pred[:, :-future], test_target) < 1.0))
    return res
