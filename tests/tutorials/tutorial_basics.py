"""beginner_source/basics (Learn the Basics): tensors, autograd, building a model. The other
chapters (quickstart, data, transforms, optimization, save/load) download FashionMNIST."""

from __future__ import annotations

import numpy as np
from tutorial_harness import Result, script


@script("basics/tensorqs_tutorial", trains=False)
def tensorqs_tutorial(torch, compile) -> Result:
    """Creation, attributes, indexing and assignment, cat, matmul/mul with out=, item, add_,
    numpy bridge."""
    res = Result()
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    x_np = torch.from_numpy(np.array(data))
    res.value(torch.ones_like(x_data))
    res.value(x_np)
    res.value(str(torch.rand_like(x_data, dtype=torch.float).dtype).split(".")[-1])
    shape = (2, 3,)
    res.value(torch.ones(shape))
    res.value(torch.zeros(shape))
    tensor = torch.rand(3, 4)
    res.value(f"{tuple(tensor.shape)} {str(tensor.dtype).split('.')[-1]} {tensor.device}")
    if torch.cuda.is_available() & (torch.device("cuda").index is not None):
        tensor = tensor.to("cuda")
    tensor = torch.ones(4, 4)
    res.value(tensor[0])
    res.value(tensor[:, 0])
    res.value(tensor[..., -1])
    tensor[:, 1] = 0
    res.value(torch.cat([tensor, tensor, tensor], dim=1))
    y3 = torch.rand_like(tensor)
    torch.matmul(tensor, tensor.T, out=y3)
    res.value(y3)
    res.value(tensor @ tensor.T)
    z3 = torch.rand_like(tensor)
    torch.mul(tensor, tensor, out=z3)
    res.value(z3)
    res.value(tensor.sum().item())
    tensor.add_(5)
    res.value(tensor)
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    res.value(n)
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    res.value(t)
    return res


@script("basics/autogradqs_tutorial")
def autogradqs_tutorial(torch, compile) -> Result:
    """matmul + bias + binary_cross_entropy_with_logits, grads of w and b, no_grad/detach, the
    Jacobian-vector product with eye(4, 5), accumulation and grad.zero_(); then the same
    logistic layer trained a few steps."""
    res = Result()
    F = torch.nn.functional
    torch.manual_seed(0)
    x = torch.ones(5)
    y = torch.zeros(3)
    w = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    z = torch.matmul(x, w) + b
    loss = F.binary_cross_entropy_with_logits(z, y)
    res.value(z.grad_fn is not None and loss.grad_fn is not None)
    loss.backward()
    res.value(tuple(w.grad.shape))
    with torch.no_grad():
        res.value(bool((torch.matmul(x, w) + b).requires_grad))
    res.value(bool((torch.matmul(x, w) + b).detach().requires_grad))
    inp = torch.eye(4, 5, requires_grad=True)
    out = (inp + 1).pow(2).t()
    out.backward(torch.ones_like(out), retain_graph=True)
    res.value(inp.grad)
    out.backward(torch.ones_like(out), retain_graph=True)
    res.value(inp.grad)
    inp.grad.zero_()
    out.backward(torch.ones_like(out), retain_graph=True)
    res.value(inp.grad)
    optimizer = torch.optim.SGD([w, b], lr=0.5)

    def step(x, y):
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(torch.matmul(x, w) + b, y)
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(10):
        res.losses.append(step(x, y).item())
    return res


def _network(torch):
    nn = torch.nn

    class NeuralNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.linear_relu_stack = nn.Sequential(
                nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                nn.Linear(512, 10))

        def forward(self, x):
            return self.linear_relu_stack(self.flatten(x))

    return NeuralNetwork


@script("basics/buildmodel_tutorial", trains=False)
def buildmodel_tutorial(torch, compile) -> Result:
    """torch.accelerator device choice, a Flatten + Sequential model, Softmax, argmax, the
    layers one by one, named_parameters (the torchvision import is unused there)."""
    res = Result()
    nn = torch.nn
    device = (torch.accelerator.current_accelerator().type if torch.accelerator.is_available()
              else "cpu")
    torch.manual_seed(0)
    model = _network(torch)().to(device)
    res.value(str(model).count("Linear"))
    x = torch.rand(1, 28, 28, device=device)
    logits = model(x)
    pred_probab = nn.Softmax(dim=1)(logits)
    res.value(pred_probab.sum())
    res.value(tuple(pred_probab.argmax(1).shape))
    input_image = torch.rand(3, 28, 28)
    flat_image = nn.Flatten()(input_image)
    res.value(tuple(flat_image.shape))
    hidden1 = nn.Linear(in_features=28 * 28, out_features=20)(flat_image)
    hidden1 = nn.ReLU()(hidden1)
    res.value(bool((hidden1 >= 0).all()))
    seq_modules = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 20), nn.ReLU(), nn.Linear(20, 10))
    logits = seq_modules(input_image)
    res.value(nn.Softmax(dim=1)(logits).sum(1))
    res.value(str([(name, tuple(p.size())) for name, p in model.named_parameters()]))
    return res
