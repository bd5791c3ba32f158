"""beginner_source/blitz (60-minute blitz): tensors, autograd, the LeNet of neural_networks
(needs conv), data_parallel's RandomDataset model. cifar10 and tensorboard download data."""

from __future__ import annotations

import numpy as np
from tutorial_harness import Result, script


@script("blitz/tensor_tutorial", trains=False)
def tensor_tutorial(torch, compile) -> Result:
    """Creation from data/numpy/other tensors, attributes, indexing, cat, products, in-place
    ops and the numpy bridge (shared memory both ways)."""
    res = Result()
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    x_ones = torch.ones_like(x_data)
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    shape = (2, 3,)
    res.value(x_data)
    res.value(x_np)
    res.value(x_ones)
    res.value(str(x_rand.dtype).split(".")[-1])
    res.value(torch.ones(shape))
    res.value(torch.zeros(shape))
    tensor = torch.rand(3, 4)
    res.value(f"{tensor.shape[0]}x{tensor.shape[1]} {tensor.device}")
    if torch.cuda.is_available():
        tensor = tensor.to("cuda")
    if torch.accelerator.is_available():
        tensor = tensor.to(torch.accelerator.current_accelerator())
    tensor = torch.ones(4, 4)
    res.value(tensor[0])
    res.value(tensor[:, 0])
    res.value(tensor[..., -1])
    tensor[:, 1] = 0
    res.value(tensor)
    res.value(torch.cat([tensor, tensor, tensor], dim=1))
    res.value(tensor @ tensor.T)
    res.value(tensor.matmul(tensor.T))
    res.value(tensor * tensor)
    res.value(tensor.mul(tensor))
    agg = tensor.sum()
    res.value(agg.item())
    res.value(type(agg.item()).__name__)
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


@script("blitz/autograd_tutorial")
def autograd_tutorial(torch, compile) -> Result:
    """Q = 3a^3 - b^2 with an external gradient, what joins the DAG, then fine-tuning a frozen
    model's new head with SGD (a small MLP stands in for torchvision's resnet18)."""
    res = Result()
    a = torch.tensor([2., 3.], requires_grad=True)
    b = torch.tensor([6., 4.], requires_grad=True)
    q = 3 * a ** 3 - b ** 2
    external_grad = torch.tensor([1., 1.])
    q.backward(gradient=external_grad)
    res.value(bool((9 * a ** 2 == a.grad).all()))
    res.value(bool((-2 * b == b.grad).all()))
    res.value(a.grad)
    x = torch.rand(5, 5)
    y = torch.rand(5, 5)
    z = torch.rand((5, 5), requires_grad=True)
    res.value(bool((x + y).requires_grad))
    res.value(bool((x + z).requires_grad))
    # the older revision's doubling loop
    v = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    w = v * 2
    while w.data.norm() < 1000:
        w = w * 2
    w.backward(torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float))
    res.value(v.grad)
    with torch.no_grad():
        res.value(bool((v ** 2).requires_grad))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1000))
    for param in model.parameters():
        param.requires_grad = False
    model[2] = torch.nn.Linear(64, 10)  # replace the classifier: only it trains
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    data = torch.rand(8, 32)
    labels = torch.rand(8, 10)

    def step(data, labels):
        prediction = model(data)
        loss = ((prediction - labels) ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(20):
        res.losses.append(step(data, labels).item())
    res.value(sum(p.requires_grad for p in model.parameters()))
    return res


def _lenet(torch):
    nn, F = torch.nn, torch.nn.functional

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            c1 = F.relu(self.conv1(x))
            s2 = F.max_pool2d(c1, (2, 2))
            c3 = F.relu(self.conv2(s2))
            s4 = F.max_pool2d(c3, 2)
            s4 = torch.flatten(s4, 1)
            f5 = F.relu(self.fc1(s4))
            f6 = F.relu(self.fc2(f5))
            return self.fc3(f6)

    return Net


@script("blitz/neural_networks_tutorial")
def neural_networks_tutorial(torch, compile) -> Result:
    """LeNet: params(), zero_grad + backward(randn), MSELoss, grad_fn.next_functions, SGD."""
    res = Result()
    torch.manual_seed(0)
    net = _lenet(torch)()
    res.value(len(list(net.parameters())))
    inp = torch.randn(1, 1, 32, 32)
    out = net(inp)
    net.zero_grad()
    out.backward(torch.randn(1, 10))
    target = torch.randn(10).view(1, -1)
    criterion = torch.nn.MSELoss()
    loss = criterion(net(inp), target)
    res.value(loss.grad_fn.next_functions[0][0] is not None)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)

    def step(inp, target):
        optimizer.zero_grad()
        loss = criterion(net(inp), target)
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(10):
        res.losses.append(step(inp, target).item())
    return res


@script("blitz/data_parallel_tutorial", trains=False)
def data_parallel_tutorial(torch, compile) -> Result:
    """A Dataset of random rows, a DataLoader, a Linear model (DataParallel only on several
    GPUs, as in the tutorial), moved to the chosen device; one pass printing sizes."""
    res = Result()
    from_torch = torch.utils.data
    input_size, output_size, batch_size, data_size = 5, 2, 30, 100
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")

    class RandomDataset(from_torch.Dataset):
        def __init__(self, size, length):
            self.len = length
            self.data = torch.randn(length, size)

        def __getitem__(self, index):
            return self.data[index]

        def __len__(self):
            return self.len

    torch.manual_seed(0)
    loader = from_torch.DataLoader(dataset=RandomDataset(input_size, data_size),
                                   batch_size=batch_size, shuffle=True)

    class Model(torch.nn.Module):
        def __init__(self, input_size, output_size):
            super().__init__()
            self.fc = torch.nn.Linear(input_size, output_size)

        def forward(self, input):
            return self.fc(input)

    model = Model(input_size, output_size)
    if torch.cuda.device_count() > 1:
        model = torch.nn.DataParallel(model)
    model.to(device)
    sizes = []
    for data in loader:
        output = model(data.to(device))
        sizes.append((tuple(data.size()), tuple(output.size())))
    res.value(str(sizes))
    return res
