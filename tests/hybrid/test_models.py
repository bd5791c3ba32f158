"""hybrid.models: torchvision's published parameter counts, state_dict keys and shapes of a
PyTorch twin built here by hand from torchvision's source, the same logits and gradients as
that twin once it loads the same weights, the VGG init, a compiled train step vs eager, errors."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_matches_eager

import hybrid
import hybrid.models as M
import hybrid.nn.functional as F
from hybrid import errors, nn

# torchvision's published parameter counts (torchvision.models docs, "Params" column)
PUBLISHED = {"alexnet": 61_100_840, "vgg11": 132_863_336, "vgg11_bn": 132_868_840,
             "vgg13": 133_047_848, "vgg13_bn": 133_053_736, "vgg16": 138_357_544,
             "vgg16_bn": 138_365_992, "vgg19": 143_667_240, "vgg19_bn": 143_678_248}
# every config letter (A, B, D, E) once, with and without batch norm
COUNTED = ["alexnet", "vgg11", "vgg13_bn", "vgg16", "vgg19_bn"]

# torchvision/models/vgg.py cfgs, written out again here
CFGS = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512,
         512, 512, "M"],
}


@pytest.fixture
def no_init(monkeypatch):
    """Skip weight init (hybrid's RNG fills ~10M values/s: 100M-parameter models take ~20 s):
    counts, names and shapes do not depend on it, and loaded weights replace it."""
    monkeypatch.setattr(nn.Linear, "reset_parameters", lambda self: None)
    monkeypatch.setattr(nn.Conv2d, "reset_parameters", lambda self: None)


def _build(name: str) -> nn.Module:
    if name == "alexnet":
        return M.alexnet()
    depth, bn = int(name[3:5]), name.endswith("_bn")
    return getattr(M, f"vgg{depth}")(batch_norm=bn, init_weights=False)


@pytest.mark.parametrize("name", COUNTED)
def test_parameter_counts_are_torchvisions(no_init, name):
    model = _build(name)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED[name]
    assert {n.split(".")[0] for n, _ in model.named_parameters()} == {"features", "classifier"}


def test_torchvision_names_are_constructors():
    for name in PUBLISHED:
        assert callable(getattr(M, name))
    for depth in CFGS:
        assert callable(getattr(M, f"vgg{depth}_cifar"))


# --- PyTorch twins, written from torchvision's source ---------------------------------------------


def _torch_layers(torch, cfg, bn):
    tnn, layers, c = torch.nn, [], 3
    for v in cfg:
        if v == "M":
            layers.append(tnn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers.append(tnn.Conv2d(c, v, kernel_size=3, padding=1))
            layers += [tnn.BatchNorm2d(v), tnn.ReLU(inplace=True)] if bn else [tnn.ReLU(True)]
            c = v
    return tnn.Sequential(*layers)


def _torch_net(torch, features, avgpool, head):
    """features -> avgpool -> flatten -> head, with torchvision's attribute names."""

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.features, self.avgpool, self.classifier = features, avgpool, head

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    return Net()


def _torch_vgg_head(torch, n_in, hidden, classes, p):
    tnn, layers = torch.nn, []
    for h in hidden:
        layers += [tnn.Linear(n_in, h), tnn.ReLU(True), tnn.Dropout(p)]
        n_in = h
    return tnn.Sequential(*layers, tnn.Linear(n_in, classes))


def _torch_alexnet_features(torch, cifar):
    tnn = torch.nn
    k1, s1, p1, k2, p2 = (3, 2, 1, 3, 1) if cifar else (11, 4, 2, 5, 2)
    pool = (lambda: tnn.MaxPool2d(2, 2)) if cifar else (lambda: tnn.MaxPool2d(3, 2))
    return tnn.Sequential(
        tnn.Conv2d(3, 64, k1, stride=s1, padding=p1), tnn.ReLU(True), pool(),
        tnn.Conv2d(64, 192, k2, padding=p2), tnn.ReLU(True), pool(),
        tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(True),
        tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(True),
        tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(True), pool())


def torch_twin(torch, name, p=0.5):
    tnn = torch.nn
    if name in ("alexnet", "alexnet_cifar"):
        cifar = name == "alexnet_cifar"
        n_in, width = (1024, 1024) if cifar else (256 * 36, 4096)
        head = tnn.Sequential(tnn.Dropout(p), tnn.Linear(n_in, width), tnn.ReLU(True),
                              tnn.Dropout(p), tnn.Linear(width, width), tnn.ReLU(True),
                              tnn.Linear(width, 10 if cifar else 1000))
        pool = tnn.Identity() if cifar else tnn.AdaptiveAvgPool2d((6, 6))
        return _torch_net(torch, _torch_alexnet_features(torch, cifar), pool, head)
    if name == "vgg_style_cifar":
        cfg = [32, 32, "M", 64, 64, "M", 128, 128, "M"]
        return _torch_net(torch, _torch_layers(torch, cfg, True), tnn.Identity(),
                          _torch_vgg_head(torch, 128 * 16, (256,), 10, p))
    depth, bn = int(name[3:5]), "_bn" in name
    if name.endswith("cifar"):
        return _torch_net(torch, _torch_layers(torch, CFGS[depth], bn), tnn.Identity(),
                          _torch_vgg_head(torch, 512, (512, 512), 10, p))
    return _torch_net(torch, _torch_layers(torch, CFGS[depth], bn), tnn.AdaptiveAvgPool2d((7, 7)),
                      _torch_vgg_head(torch, 512 * 49, (4096, 4096), 1000, p))


def _load_from(model, tmodel):
    model.load_state_dict({k: hybrid.tensor(v.detach().numpy().copy())
                           for k, v in tmodel.state_dict().items()})


def _logits(torch, model, tmodel, x):
    with hybrid.no_grad():
        got = model(hybrid.tensor(x)).numpy()
    with torch.no_grad():
        want = tmodel(torch.from_numpy(x)).numpy()
    return got, want


@pytest.mark.parametrize("name,size", [("alexnet", 224), ("vgg11_bn", 32)])
def test_imagenet_models_load_a_torch_state_dict_and_match_its_logits(no_init, name, size):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch_twin(torch, name).eval()
    with torch.no_grad():  # non-trivial batch norm statistics and affine parameters
        for m in tmodel.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.5, 0.5)
    model = _build(name).eval()
    shapes = {k: tuple(v.shape) for k, v in tmodel.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    _load_from(model, tmodel)
    x = np.random.default_rng(0).standard_normal((2, 3, size, size)).astype(np.float32)
    got, want = _logits(torch, model, tmodel, x)
    assert got.shape == (2, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name,make", [("alexnet_cifar", M.alexnet_cifar),
                                       ("vgg11_cifar", lambda: M.vgg11_cifar(batch_norm=False)),
                                       ("vgg13_bn_cifar", lambda: M.vgg13_cifar(batch_norm=True)),
                                       ("vgg_style_cifar", M.vgg_style_cifar)])
def test_cifar_models_match_their_torch_twin(name, make):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch_twin(torch, name).eval()
    hybrid.manual_seed(0)
    model = make().eval()
    assert list(model.state_dict()) == list(tmodel.state_dict())
    _load_from(model, tmodel)
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    got, want = _logits(torch, model, tmodel, x)
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max() + 1e-6)


def test_vgg_style_training_gradients_and_running_stats_match_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tmodel = torch_twin(torch, "vgg_style_cifar", p=0.0).train()
    model = M.vgg_style_cifar(dropout=0.0).train()
    _load_from(model, tmodel)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 4)
    loss = F.cross_entropy(model(hybrid.tensor(x)), hybrid.tensor(y))
    loss.backward()
    tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-4)
    tparams = dict(tmodel.named_parameters())
    # NOTE: a convolution's bias before batch norm has a zero gradient in exact arithmetic
    # (the mean subtraction cancels it): both sides are rounding noise, ~1e-7
    scale = max(np.abs(p.grad.numpy()).max() for p in tparams.values())
    for k, p in model.named_parameters():
        want = tparams[k].grad.numpy()
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-3, atol=1e-5 * scale,
                                   err_msg=k)
    tbuffers = dict(tmodel.named_buffers())
    for k, b in model.named_buffers():
        np.testing.assert_allclose(b.numpy(), tbuffers[k].numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=k)


def test_default_init_is_torchvisions():
    hybrid.manual_seed(0)
    vgg = M.vgg_style_cifar()
    conv = vgg.features[14]  # Conv2d(64, 128, 3): kaiming_normal_ with fan_out (not fan_in)
    assert (conv.in_channels, conv.out_channels) == (64, 128)
    np.testing.assert_allclose(conv.weight.detach().numpy().std(), np.sqrt(2 / (128 * 9)),
                               rtol=0.03)
    assert abs(conv.weight.detach().numpy().mean()) < 1e-3
    np.testing.assert_allclose(vgg.classifier[0].weight.detach().numpy().std(), 0.01, rtol=0.03)
    for m in vgg.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
            assert not m.bias.detach().numpy().any()
        if isinstance(m, nn.BatchNorm2d):
            assert (m.weight.detach().numpy() == 1).all()
    # AlexNet keeps the layers' defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    alex = M.alexnet_cifar()
    w = alex.features[6].weight.detach().numpy()  # Conv2d(192, 384, 3)
    bound = 1 / np.sqrt(192 * 9)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    np.testing.assert_allclose(w.std(), bound / np.sqrt(3), rtol=0.03)
    assert alex.classifier[1].bias.detach().numpy().any()


def test_vgg_style_train_step_compiled_matches_eager(compiled_backend):
    def run(compiled):
        hybrid.manual_seed(0)
        model = M.vgg_style_cifar(dropout=0.0)
        opt = hybrid.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        rng = np.random.default_rng(3)
        x = hybrid.tensor(rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
        y = hybrid.tensor(rng.integers(0, 10, 4))

        def step(x, y):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        step = hybrid.compile(step) if compiled else step
        losses = [step(x, y)]
        state = [t.detach().clone() for t in list(model.parameters()) + list(model.buffers())]
        losses += [step(x, y) for _ in range(2)]
        return losses, state

    (el, ep), (cl, cp) = run(False), run(True)
    assert float(el[-1]) < float(el[0])
    for g, e in zip(cl + cp, el + ep):
        if hybrid.config.backend == "interpreter":
            assert_matches_eager(g, e)
        elif g.ndim == 0:  # the losses of all three steps
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5)
        else:
            # parameters and running stats after the first step. NOTE: later steps are not
            # compared elementwise: a conv followed by batch norm is invariant to its weight's
            # scale and bias, so rounding in those directions (conv biases get pure rounding
            # noise as gradient) grows to ~1e-3 relative in two steps while the loss agrees to
            # 1e-6; eager's own result moves as much when numpy's summation order changes
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("call,words", [
    (lambda: M.alexnet_cifar()(hybrid.randn(1, 3, 64, 64)), ["AlexNetCifar", "f32[1,3,64,64]"]),
    (lambda: M.vgg_style_cifar()(hybrid.randn(2, 1, 32, 32)), ["VGG", "(N, 3, 32, 32)"]),
    (lambda: M.vgg11(num_classes=0), ["VGG", "num_classes", "0"]),
    (lambda: M.make_layers([64, "X"]), ["make_layers", "'X'"]),
])
def test_bad_input_raises_hybrid_error_at_the_users_line(call, words):
    with pytest.raises(errors.ShapeError) as info:
        call()
    message = str(info.value)
    assert "test_models.py" in message
    for word in words:
        assert word in message
