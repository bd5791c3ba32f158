"""hybrid.nn: Module registration and traversal, state_dict / load_state_dict, modes, dtype
moves, repr strings, the structure epoch, and the layers' forward passes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hybrid
from hybrid import nn
from hybrid.nn.module import structure_epoch


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.register_buffer("running", hybrid.zeros(4))
        self.register_buffer("scratch", hybrid.zeros(2), persistent=False)
        self.scale = nn.Parameter(hybrid.ones(()))

    def forward(self, x):
        return self.fc(x) * self.scale + self.running


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = Block()
        self.b = nn.Sequential(nn.ReLU(), nn.Linear(4, 2, bias=False))
        self.shared = self.b[1]  # the same module twice: its parameter is listed once

    def forward(self, x):
        return self.b(self.a(x))


def test_names_and_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["a.scale", "a.fc.weight", "a.fc.bias", "b.1.weight"]
    assert len(list(net.parameters())) == 4
    assert [n for n, _ in net.named_buffers()] == ["a.running", "a.scratch"]
    assert list(net.state_dict()) == ["a.scale", "a.running", "a.fc.weight", "a.fc.bias",
                                      "b.1.weight", "shared.weight"]
    assert [n for n, _ in net.named_children()] == ["a", "b", "shared"]
    assert [n for n, _ in net.named_modules()] == ["", "a", "a.fc", "b", "b.0", "b.1"]
    assert [n for n, _ in net.a.named_parameters(recurse=False)] == ["scale"]
    assert net.get_submodule("a.fc") is net.a.fc


def test_state_dict_shares_storage_and_is_detached():
    net = Net()
    sd = net.state_dict()
    assert not sd["a.fc.weight"].requires_grad
    with hybrid.no_grad():
        net.a.fc.weight.fill_(3.0)
    assert (sd["a.fc.weight"].numpy() == 3).all()


def test_parameter_basics():
    t = hybrid.ones(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, hybrid.Tensor) and p.requires_grad and p.is_leaf
    assert p._value is t._value
    assert repr(nn.Parameter(hybrid.tensor([1.0, 2.0]))) == (
        "Parameter containing:\ntensor([1., 2.], requires_grad=True)")
    assert not nn.Parameter(hybrid.ones(1), requires_grad=False).requires_grad
    assert type(p * 2) is hybrid.Tensor


def test_assignment_rules():
    m = nn.Module()
    m.w = nn.Parameter(hybrid.ones(2))
    with pytest.raises(hybrid.DTypeError, match="cannot assign Tensor as parameter 'w'"):
        m.w = hybrid.ones(2)
    m.w = None
    assert m.w is None and list(m.parameters()) == []
    m.register_buffer("buf", hybrid.zeros(3))
    new = hybrid.ones(3)
    m.buf = new  # a plain tensor assigned to a buffer's name updates the buffer
    assert m._buffers["buf"] is new and "buf" not in m.__dict__
    m.child = nn.Linear(2, 2)
    with pytest.raises(hybrid.DTypeError, match="child module 'child'"):
        m.child = 3
    del m.child
    assert list(m.children()) == []
    with pytest.raises(AttributeError):
        _ = m.child


def test_structure_epoch_bumps():
    m = nn.Linear(2, 2)
    e = structure_epoch()
    m.weight = nn.Parameter(hybrid.ones(2, 2))
    assert structure_epoch() > e
    e = structure_epoch()
    m.register_buffer("b2", hybrid.zeros(1))
    assert structure_epoch() > e
    e = structure_epoch()
    m.b2 = hybrid.ones(1)
    assert structure_epoch() > e
    e = structure_epoch()
    m.extra = nn.ReLU()
    assert structure_epoch() > e
    e = structure_epoch()
    del m.extra
    assert structure_epoch() > e
    e = structure_epoch()
    m.eval()
    assert structure_epoch() > e
    e = structure_epoch()
    m.eval()  # no mode change: no bump
    m.some_number = 3  # plain attributes are not structure
    _ = m(hybrid.ones(1, 2))
    assert structure_epoch() == e
    m.train()
    assert structure_epoch() > e


def test_train_eval():
    net = Net()
    assert all(mod.training for mod in net.modules())
    assert net.eval() is net
    assert not any(mod.training for mod in net.modules())
    net.train()
    assert all(mod.training for mod in net.modules())


def test_zero_grad():
    m = nn.Linear(3, 2)
    m(hybrid.ones(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert (m.weight.grad.numpy() == 0).all()
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_to_dtype_keeps_parameter_identity():
    net = Block()
    net.register_buffer("count", hybrid.zeros((), dtype=hybrid.int64))
    w = net.fc.weight
    before = w.detach().numpy().copy()
    assert net.double() is net
    assert net.fc.weight is w and isinstance(w, nn.Parameter) and w.requires_grad
    assert w.dtype is hybrid.float64 and net.running.dtype is hybrid.float64
    assert net.count.dtype is hybrid.int64  # integer buffers are not cast
    np.testing.assert_allclose(w.numpy(force=True), before, rtol=1e-7)
    net.to(hybrid.float32)
    assert w.dtype is hybrid.float32
    net.to("cpu").cpu().float()
    assert w.device == hybrid.device("cpu")
    with pytest.raises(hybrid.DTypeError, match="floating point"):
        net.to(hybrid.int64)


def test_load_state_dict_roundtrip():
    a, b = Net(), Net()
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = hybrid.randn(5, 3)
    np.testing.assert_array_equal(a(x).detach().numpy(), b(x).detach().numpy())


def test_load_state_dict_errors():
    net = Net()
    sd = dict(net.state_dict())
    del sd["a.fc.bias"]
    sd["a.fc.extra"] = hybrid.zeros(1)
    with pytest.raises(hybrid.StateDictError) as e:
        net.load_state_dict(sd)
    msg = str(e.value)
    assert "Error(s) in loading state_dict for Net" in msg
    assert "missing keys: 'a.fc.bias'" in msg and "unexpected keys: 'a.fc.extra'" in msg
    assert isinstance(e.value, KeyError)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["a.fc.bias"] and unexpected == ["a.fc.extra"]

    sd = dict(net.state_dict())
    sd["a.fc.weight"] = hybrid.zeros(3, 4)
    with pytest.raises(hybrid.ShapeError, match=r"size mismatch for 'a.fc.weight': copying a param "
                                                r"with shape \[3, 4\] from the checkpoint, the shape "
                                                r"in the current model is \[4, 3\]"):
        net.load_state_dict(sd)


def test_load_state_dict_copies_in_place_and_casts():
    m = nn.Linear(2, 2)
    w = m.weight
    m.load_state_dict({"weight": hybrid.ones(2, 2, dtype=hybrid.float64), "bias": hybrid.zeros(2)})
    assert m.weight is w and w.dtype is hybrid.float32 and (w.numpy(force=True) == 1).all()


def test_apply_and_modules():
    seen = []
    Net().apply(lambda mod: seen.append(type(mod).__name__))
    # as PyTorch: apply visits a module once per place it is registered
    assert seen == ["Linear", "Block", "ReLU", "Linear", "Sequential", "Linear", "Net"]


def test_reprs():
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=784, out_features=512, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Dropout(p=0.2, inplace=False)\n"
        "  (3): Linear(in_features=512, out_features=10, bias=True)\n"
        ")")
    assert repr(Net()) == (
        "Net(\n"
        "  (a): Block(\n"
        "    (fc): Linear(in_features=3, out_features=4, bias=True)\n"
        "  )\n"
        "  (b): Sequential(\n"
        "    (0): ReLU()\n"
        "    (1): Linear(in_features=4, out_features=2, bias=False)\n"
        "  )\n"
        "  (shared): Linear(in_features=4, out_features=2, bias=False)\n"
        ")")
    assert repr(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.Tanh()])) == (
        "ModuleList(\n  (0-1): 2 x Linear(in_features=2, out_features=2, bias=True)\n"
        "  (2): Tanh()\n)")
    cases = {
        nn.GELU(): "GELU(approximate='none')", nn.GELU("tanh"): "GELU(approximate='tanh')",
        nn.SiLU(): "SiLU()", nn.Sigmoid(): "Sigmoid()", nn.Identity(): "Identity()",
        nn.Softmax(dim=1): "Softmax(dim=1)", nn.LogSoftmax(dim=-1): "LogSoftmax(dim=-1)",
        nn.Flatten(): "Flatten(start_dim=1, end_dim=-1)", nn.Embedding(10, 3): "Embedding(10, 3)",
        nn.Embedding(10, 3, padding_idx=0): "Embedding(10, 3, padding_idx=0)",
        nn.LayerNorm(8): "LayerNorm((8,), eps=1e-05, elementwise_affine=True)",
        nn.CrossEntropyLoss(): "CrossEntropyLoss()", nn.MSELoss(): "MSELoss()",
        nn.ModuleDict(): "ModuleDict()",
    }
    for mod, text in cases.items():
        assert repr(mod) == text


def test_linear_init_bounds_and_forward():
    hybrid.manual_seed(0)
    m = nn.Linear(100, 50)
    bound = 1 / math.sqrt(100)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(b).max() <= bound
    x = hybrid.randn(4, 100)
    np.testing.assert_allclose(m(x).detach().numpy(), x.numpy() @ w.T + b, rtol=1e-5, atol=1e-6)
    assert nn.Linear(3, 2, bias=False).bias is None


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    assert isinstance(seq[:2], nn.Sequential) and len(seq[:2]) == 2
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert seq(hybrid.ones(4, 2)).shape == (4, 1)
    ml = nn.ModuleList([nn.ReLU()])
    ml.append(nn.Tanh())
    ml += [nn.Sigmoid()]
    assert len(ml) == 3 and isinstance(ml[1], nn.Tanh)
    md = nn.ModuleDict({"a": nn.Linear(1, 1), "b": nn.ReLU()})
    assert list(md) == ["a", "b"] and "a" in md and len(md) == 2
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    with pytest.raises(hybrid.HybridIndexError):
        seq[5]


def test_layers_forward():
    x = hybrid.randn(2, 3, 4)
    np.testing.assert_allclose(nn.Flatten()(x).numpy(), x.numpy().reshape(2, 12))
    assert nn.Identity(5, foo=1)(x) is x
    ln = nn.LayerNorm(4)
    y = ln(x).detach().numpy()
    np.testing.assert_allclose(y.mean(-1), 0, atol=1e-6)
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    emb = nn.Embedding(5, 2, padding_idx=1)
    assert (emb.weight.detach().numpy()[1] == 0).all()
    assert emb(hybrid.tensor([[1, 2]])).shape == (1, 2, 2)
    d = nn.Dropout(0.5)
    d.eval()
    assert d(x) is x
    for mod in (nn.ReLU(), nn.GELU(), nn.SiLU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(-1),
                nn.LogSoftmax(-1)):
        assert mod(x).shape == x.shape


def _log_softmax64(x):
    x = np.asarray(x, np.float64)
    z = x - x.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_loss_modules_match_float64_formulas():
    """Each loss module against its formula written in float64 numpy (PyTorch's definitions),
    not against the functional it wraps."""
    hybrid.manual_seed(0)
    x, t = hybrid.randn(4, 3), hybrid.tensor([0, 1, 2, 1])
    xv, tv = x.numpy().astype(np.float64), t.numpy()
    rows = np.arange(4)
    logp = _log_softmax64(xv)
    assert nn.CrossEntropyLoss()(x, t).item() == pytest.approx(-logp[rows, tv].mean(), rel=1e-6)
    w = hybrid.tensor([1.0, 2.0, 3.0])
    wv = w.numpy().astype(np.float64)
    ce = nn.CrossEntropyLoss(weight=w, label_smoothing=0.1)
    assert list(ce.state_dict()) == ["weight"]
    # (1 - eps) * weighted nll + eps / C * weighted smooth term, both over sum_i w[t_i]
    nll = -(wv[tv] * logp[rows, tv]).sum()
    smooth = -(logp * wv).sum()
    want = (0.9 * nll + 0.1 / 3 * smooth) / wv[tv].sum()
    assert ce(x, t).item() == pytest.approx(want, rel=1e-6)
    assert nn.NLLLoss(reduction="sum")(x, t).item() == pytest.approx(-xv[rows, tv].sum(),
                                                                    rel=1e-6)
    y = hybrid.randn(4, 3)
    yv = y.numpy().astype(np.float64)
    assert nn.MSELoss()(x, y).item() == pytest.approx(((xv - yv) ** 2).mean(), rel=1e-6)
    assert nn.L1Loss(reduction="sum")(x, y).item() == pytest.approx(np.abs(xv - yv).sum(),
                                                                    rel=1e-6)
    p = y.sigmoid()
    pv = p.numpy().astype(np.float64)
    log_sig, log_one_minus = -np.logaddexp(0, -xv), -np.logaddexp(0, xv)
    want = -(wv * pv * log_sig + (1 - pv) * log_one_minus).mean()
    assert nn.BCEWithLogitsLoss(pos_weight=w)(x, p).item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(hybrid.ShapeError, match="reduction"):
        nn.MSELoss(reduction="avg")


def _check_uniform(values, bound):
    """Values drawn from U(-bound, bound): inside it, spread over it, with its variance."""
    v = values.astype(np.float64).ravel()
    assert np.abs(v).max() <= bound
    assert np.abs(v).max() > 0.98 * bound  # 20000 draws reach the edges
    assert abs(v.mean()) < 4 * bound / math.sqrt(3 * v.size)
    np.testing.assert_allclose(v.var(), bound**2 / 3, rtol=0.05)
    assert len(np.unique(v)) > 0.9 * v.size


def test_init_functions():
    hybrid.manual_seed(0)
    # NOTE: start from a value no initializer produces, so one that does nothing fails
    t = hybrid.full((200, 100), 7.0)
    nn.init.xavier_uniform_(t)  # fan_in 100, fan_out 200
    _check_uniform(t.numpy(), math.sqrt(6 / 300))
    t.fill_(7.0)
    nn.init.xavier_uniform_(t, gain=2.0)
    _check_uniform(t.numpy(), 2.0 * math.sqrt(6 / 300))
    t.fill_(7.0)
    nn.init.kaiming_uniform_(t, nonlinearity="relu")
    _check_uniform(t.numpy(), math.sqrt(2) * math.sqrt(3 / 100))
    t.fill_(7.0)
    nn.init.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu")
    _check_uniform(t.numpy(), math.sqrt(2) * math.sqrt(3 / 200))
    nn.init.normal_(t, 1.0, 0.5)
    assert abs(t.numpy().mean() - 1.0) < 0.01 and abs(t.numpy().std() - 0.5) < 0.01
    nn.init.uniform_(t, -2, -1)
    assert t.numpy().min() >= -2 and t.numpy().max() < -1
    assert (nn.init.zeros_(t).numpy() == 0).all() and (nn.init.ones_(t).numpy() == 1).all()
    p = nn.Parameter(hybrid.full((3, 3), 7.0))
    nn.init.kaiming_uniform_(p)  # works on parameters that require grad
    assert p.requires_grad and np.abs(p.detach().numpy()).max() <= math.sqrt(2) * math.sqrt(3 / 3)


def test_training_reduces_loss():
    hybrid.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3))
    x, t = hybrid.randn(32, 4), hybrid.randint(0, 3, (32,))
    opt = hybrid.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(model(x), t)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
