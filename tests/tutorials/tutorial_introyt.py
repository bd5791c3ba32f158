"""beginner_source/introyt (the YouTube series): tensors in depth, autograd fundamentals, building
models (conv and LSTM layers). introyt1 and trainingyt download CIFAR/FashionMNIST."""

from __future__ import annotations

import math

from tutorial_harness import Result, script


@script("introyt/tensors_deeper_tutorial", trains=False)
def tensors_deeper_tutorial(torch, compile) -> Result:
    """Factories and seeding, *_like, dtypes (int16, float64 -> int32), arithmetic and
    broadcasting, math/trig/bitwise/comparison/reduction/linear-algebra ops, in-place ops,
    out=, clone/detach, squeeze/unsqueeze(_), reshape, the numpy bridge."""
    res = Result()
    x = torch.empty(3, 4)
    res.value(type(x).__name__ == "Tensor")
    res.value(torch.zeros(2, 3))
    res.value(torch.ones(2, 3))
    torch.manual_seed(1729)
    r1 = torch.rand(2, 3)
    r2 = torch.rand(2, 3)
    torch.manual_seed(1729)
    r3 = torch.rand(2, 3)
    r4 = torch.rand(2, 3)
    res.value(bool((r1 == r3).all()) and bool((r2 == r4).all()) and not bool((r1 == r2).all()))
    x = torch.empty(2, 2, 3)
    for like in (torch.empty_like(x), torch.zeros_like(x), torch.ones_like(x),
                 torch.rand_like(x)):
        res.value(tuple(like.shape))
    res.value(torch.tensor([[3.1415926, 2.71828], [1.61803, 0.0072897]]))
    res.value(torch.tensor((2, 3, 5, 7, 11, 13, 17, 19)))
    res.value(torch.tensor(((2, 4, 6), [3, 6, 9])))
    a = torch.ones((2, 3), dtype=torch.int16)
    res.value(a)
    res.value(str(a.dtype).split(".")[-1])
    b = torch.tensor([[1.7, 19.9, 3.2], [0.4, 12.5, 7.0]], dtype=torch.float64) * 2.
    c = b.to(torch.int32)
    res.value(c)
    ones = torch.zeros(2, 2) + 1
    twos = torch.ones(2, 2) * 2
    threes = (torch.ones(2, 2) * 7 - 1) / 2
    fours = twos ** 2
    sqrt2s = twos ** 0.5
    for t in (ones, twos, threes, fours, sqrt2s):
        res.value(t)
    res.value(twos ** torch.tensor([[1, 2], [3, 4]]))
    res.value(ones + fours)
    res.value(threes * fours)
    rand = torch.rand(2, 4)
    res.value(rand * (torch.ones(1, 4) * 2) / rand)
    a = torch.ones(4, 3, 2)
    res.value(tuple((a * torch.rand(3, 2)).shape))
    res.value(tuple((a * torch.rand(3, 1)).shape))
    res.value(tuple((a * torch.rand(1, 2)).shape))
    a = torch.tensor([[-0.7, 0.2, 0.9, -0.1], [0.5, -0.95, 0.3, 0.0]])
    for t in (torch.abs(a), torch.ceil(a), torch.floor(a), torch.clamp(a, -0.5, 0.5)):
        res.value(t)
    angles = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    sines = torch.sin(angles)
    res.value(sines)
    res.value(torch.asin(sines))
    res.value(torch.bitwise_xor(torch.tensor([1, 5, 11]), torch.tensor([2, 7, 10])))
    d = torch.tensor([[1., 2.], [3., 4.]])
    res.value(torch.eq(d, torch.ones(1, 2)))
    res.value(torch.max(d))
    res.value(torch.max(d).item())
    res.value(torch.mean(d))
    res.value(torch.std(d))
    res.value(torch.prod(d))
    res.value(torch.unique(torch.tensor([1, 2, 1, 2, 1, 2])))
    v1 = torch.tensor([1., 0., 0.])
    v2 = torch.tensor([0., 1., 0.])
    m1 = torch.tensor([[0.3, 0.9], [0.6, 0.1]])
    m2 = torch.tensor([[3., 0.], [0., 3.]])
    res.value(torch.linalg.cross(v2, v1))
    m3 = torch.matmul(m1, m2)
    res.value(m3)
    res.value(torch.svd(m3)[1])  # singular values (U and V are unique up to sign)
    a = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    res.value(torch.sin(a))
    res.value(a)
    b = torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4])
    res.value(torch.sin_(b))
    res.value(b)
    a = torch.ones(2, 2)
    b = torch.tensor([[0.1, 0.2], [0.3, 0.4]])
    res.value(a.add_(b))
    res.value(b.mul_(b))
    a = torch.tensor([[0.5, 0.25], [0.75, 1.0]])
    b = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    c = torch.zeros(2, 2)
    old_id = id(c)
    d = torch.matmul(a, b, out=c)
    res.value(c)
    res.value(id(c) == old_id and id(d) == old_id)
    torch.rand(2, 2, out=c)
    res.value(id(c) == old_id)
    a = torch.ones(2, 2)
    b = a.clone()
    res.value(bool(torch.eq(a, b).all()))
    a[0][1] = 561
    res.value(b)
    a = torch.rand(2, 2, requires_grad=True)
    b = a.clone()
    c = a.detach().clone()
    res.value(b.requires_grad and not c.requires_grad)
    if torch.cuda.is_available():
        a = a.to("cuda")
    a = torch.rand(3, 226, 226)
    res.value(tuple(a.unsqueeze(0).shape))
    a = torch.rand(1, 20)
    res.value(tuple(a.squeeze(0).shape))
    res.value(tuple(torch.rand(2, 2).squeeze(0).shape))
    a = torch.ones(4, 3, 2)
    c = a * torch.rand(3, 1)
    res.value(tuple(c.shape))
    b = torch.rand(3)
    res.value(tuple(b.unsqueeze(1).shape))
    batch_me = torch.rand(3, 226, 226)
    batch_me.unsqueeze_(0)
    res.value(tuple(batch_me.shape))
    output3d = torch.rand(6, 20, 20)
    res.value(tuple(output3d.reshape(6 * 20 * 20).shape))
    res.value(tuple(torch.reshape(output3d, (6 * 20 * 20,)).shape))
    import numpy as np

    numpy_array = np.ones((2, 3))
    pytorch_tensor = torch.from_numpy(numpy_array)
    numpy_array[1, 1] = 23
    res.value(pytorch_tensor)
    pytorch_rand = torch.tensor([[0.5, 0.25, 0.1], [0.3, 0.2, 0.9]])
    numpy_rand = pytorch_rand.numpy()
    pytorch_rand[1, 1] = 17
    res.value(numpy_rand)
    return res


def _tiny_model(torch):
    class TinyModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = torch.nn.Linear(1000, 100)
            self.relu = torch.nn.ReLU()
            self.layer2 = torch.nn.Linear(100, 10)

        def forward(self, x):
            return self.layer2(self.relu(self.layer1(x)))

    return TinyModel


@script("introyt/autogradyt_tutorial")
def autogradyt_tutorial(torch, compile) -> Result:
    """sin over linspace(requires_grad), walking grad_fn.next_functions, a TinyModel trained
    with SGD (and gradients accumulating without zero_grad), requires_grad toggling, no_grad as
    decorator, the profiler, backward(v), and autograd.functional (jacobian, vjp)."""
    res = Result()
    a = torch.linspace(0., 2. * math.pi, steps=25, requires_grad=True)
    b = torch.sin(a)
    c = 2 * b
    d = c + 1
    out = d.sum()
    node = d.grad_fn
    depth = 0
    while node is not None and node.next_functions:
        node = node.next_functions[0][0]
        depth += 1
    res.value(depth > 0 and a.grad_fn is None)
    out.backward()
    res.value(a.grad)
    torch.manual_seed(0)
    some_input = torch.randn(16, 1000, requires_grad=False)
    ideal_output = torch.randn(16, 10, requires_grad=False)
    model = _tiny_model(torch)()
    res.value(model.layer2.weight.grad is None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001)

    def step(some_input, ideal_output):
        optimizer.zero_grad()
        prediction = model(some_input)
        loss = (ideal_output - prediction).pow(2).sum()
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(20):
        res.losses.append(step(some_input, ideal_output).item())
    for _ in range(5):
        (ideal_output - model(some_input)).pow(2).sum().backward()
    optimizer.zero_grad()
    res.value(model.layer2.weight.grad is None)
    a = torch.ones(2, 3, requires_grad=True)
    b1 = 2 * a
    a.requires_grad = False
    b2 = 2 * a
    res.value(b1.requires_grad and not b2.requires_grad)

    @torch.no_grad()
    def add_tensors2(x, y):
        return x + y

    a = torch.ones(2, 3, requires_grad=True) * 2
    res.value(bool(add_tensors2(a, a).requires_grad))
    x = torch.randn(2, 3, requires_grad=True)
    y = torch.rand(2, 3, requires_grad=True)
    z = torch.ones(2, 3, requires_grad=True)
    with torch.autograd.profiler.profile(use_cuda=False) as prf:
        for _ in range(20):
            z = (z / x) * y
    res.value("Name" in prf.key_averages().table(sort_by="self_cpu_time_total"))
    x = torch.tensor([0.3, -0.2, 0.5], requires_grad=True)
    y = x * 2
    while y.data.norm() < 1000:
        y = y * 2
    y.backward(torch.tensor([0.1, 1.0, 0.0001], dtype=torch.float))
    res.value(x.grad)

    def exp_adder(x, y):
        return 2 * x.exp() + 3 * y

    inputs = (torch.tensor([0.2, 0.5, 0.7]), torch.tensor([0.1, 0.4, 0.9]))
    jac = torch.autograd.functional.jacobian(exp_adder, inputs)
    res.value(jac[0])
    res.value(jac[1])

    def do_some_doubling(x):
        y = x * 2
        while y.data.norm() < 1000:
            y = y * 2
        return y

    _, vjp = torch.autograd.functional.vjp(do_some_doubling, torch.tensor([0.3, -0.2, 0.5]),
                                           v=torch.tensor([0.1, 1.0, 0.0001]))
    res.value(vjp)
    return res


def _lenet(torch):
    nn, F = torch.nn, torch.nn.functional

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 3)
            self.fc1 = nn.Linear(16 * 6 * 6, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = x.view(-1, 16 * 6 * 6)
            return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))

    return LeNet


@script("introyt/modelsyt_tutorial")
def modelsyt_tutorial(torch, compile) -> Result:
    """TinyModel's parameters, a LeNet, an LSTM tagger, Transformer pieces, activations,
    losses; trained here a few steps on LeNet."""
    res = Result()
    torch.manual_seed(0)
    net = _lenet(torch)()
    lstm = torch.nn.LSTM(6, 6)
    res.value(tuple(lstm(torch.rand(3, 1, 6))[0].shape))
    x = torch.rand(4, 1, 32, 32)
    target = torch.rand(4, 10)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05)

    def step(x, target):
        optimizer.zero_grad()
        loss = torch.nn.MSELoss()(net(x), target)
        loss.backward()
        optimizer.step()
        return loss

    step = compile(step)
    for _ in range(10):
        res.losses.append(step(x, target).item())
    return res
