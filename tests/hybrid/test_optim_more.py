"""RMSprop, Adagrad and Adadelta against float64 numpy implementations of PyTorch's formulas and
against torch.optim itself (params and state over 12 steps), their state and state_dict (hybrid
and PyTorch state dicts both load), runtime hyperparameter changes, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid import optim

STEPS = 12


def leaf(a):
    return hybrid.tensor(a, dtype=hybrid.float64, requires_grad=True)


@pytest.fixture
def data(rng):
    return rng.standard_normal((3, 4)), [rng.standard_normal((3, 4)) for _ in range(STEPS)]


def run(cls, p0, grads, **kw):
    p = leaf(p0)
    opt = cls([p], **kw)
    for g in grads:
        p.grad = hybrid.tensor(g, dtype=hybrid.float64)
        opt.step()
    return p, opt


# --- float64 numpy references, written from the papers' formulas as PyTorch states them --------


def np_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
               centered=False, maximize=False):
    p = p.copy()
    sq, mean, buf = np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        sq = alpha * sq + (1 - alpha) * g**2
        if centered:
            mean = alpha * mean + (1 - alpha) * g
            avg = np.sqrt(sq - mean**2) + eps
        else:
            avg = np.sqrt(sq) + eps
        if momentum:
            buf = momentum * buf + g / avg
            p = p - lr * buf
        else:
            p = p - lr * g / avg
    return p, {"square_avg": sq, "grad_avg": mean, "momentum_buffer": buf}


def np_adagrad(p, grads, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
               eps=1e-10, maximize=False):
    p, acc = p.copy(), np.full_like(p, initial_accumulator_value)
    for t, g in enumerate(grads, 1):
        g = -g if maximize else g
        g = g + weight_decay * p
        acc = acc + g**2
        p = p - lr / (1 + (t - 1) * lr_decay) * g / (np.sqrt(acc) + eps)
    return p, {"sum": acc}


def np_adadelta(p, grads, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False):
    p, sq, acc = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        sq = rho * sq + (1 - rho) * g**2
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
        acc = rho * acc + (1 - rho) * delta**2
        p = p - lr * delta
    return p, {"square_avg": sq, "acc_delta": acc}


CASES = [
    ("RMSprop", np_rmsprop, {}),
    ("RMSprop", np_rmsprop, {"lr": 0.01, "alpha": 0.9, "weight_decay": 0.1, "momentum": 0.8}),
    ("RMSprop", np_rmsprop, {"lr": 0.005, "centered": True, "eps": 1e-6}),
    ("RMSprop", np_rmsprop, {"lr": 0.01, "centered": True, "momentum": 0.5, "maximize": True}),
    ("Adagrad", np_adagrad, {}),
    ("Adagrad", np_adagrad, {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1,
                             "initial_accumulator_value": 0.3}),
    ("Adagrad", np_adagrad, {"lr": 0.05, "eps": 1e-6, "maximize": True}),
    ("Adadelta", np_adadelta, {}),
    ("Adadelta", np_adadelta, {"lr": 0.5, "rho": 0.8, "eps": 1e-4, "weight_decay": 0.2}),
    ("Adadelta", np_adadelta, {"maximize": True}),
]
IDS = [f"{name}-{kw}" for name, _, kw in CASES]


@pytest.mark.parametrize("name,ref,kw", CASES, ids=IDS)
def test_matches_float64_reference(data, name, ref, kw):
    p0, grads = data
    p, opt = run(getattr(optim, name), p0, grads, **kw)
    want_p, want_state = ref(p0, grads, **kw)
    np.testing.assert_allclose(p.detach().numpy(), want_p, rtol=1e-10, atol=1e-12)
    state = opt.state[p]
    assert state["step"].item() == STEPS
    for key, value in state.items():
        if key != "step":
            np.testing.assert_allclose(value.numpy(), want_state[key], rtol=1e-10, atol=1e-12,
                                       err_msg=key)


@pytest.mark.torch_oracle
@pytest.mark.parametrize("name,ref,kw", CASES, ids=IDS)
def test_matches_torch(data, name, ref, kw):
    torch = pytest.importorskip("torch")
    p0, grads = data
    p, opt = run(getattr(optim, name), p0, grads, **kw)
    tp = torch.tensor(p0, requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kw)
    for g in grads:
        tp.grad = torch.tensor(g)
        topt.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    tstate = topt.state[tp]
    assert sorted(opt.state[p]) == sorted(tstate)  # PyTorch's state names, no more, no fewer
    for key, value in tstate.items():
        np.testing.assert_allclose(opt.state[p][key].numpy(), value.numpy(), rtol=1e-12,
                                   atol=1e-14, err_msg=key)


def test_state_is_created_eagerly():
    p = leaf(np.ones(3))
    assert sorted(optim.RMSprop([p], momentum=0.9, centered=True).state[p]) == \
        ["grad_avg", "momentum_buffer", "square_avg", "step"]
    assert sorted(optim.RMSprop([leaf(np.ones(3))]).state.popitem()[1]) == ["square_avg", "step"]
    st = optim.Adagrad([p], initial_accumulator_value=0.5).state[p]
    assert sorted(st) == ["step", "sum"] and st["sum"].numpy().tolist() == [0.5] * 3
    assert sorted(optim.Adadelta([p]).state[p]) == ["acc_delta", "square_avg", "step"]


@pytest.mark.parametrize("name,kw", [("RMSprop", {"momentum": 0.9, "centered": True}),
                                     ("Adagrad", {"lr_decay": 0.1}), ("Adadelta", {})])
def test_state_dict_roundtrip(data, name, kw):
    p0, grads = data
    cls = getattr(optim, name)
    p, opt = run(cls, p0, grads[:4], **kw)
    q = leaf(p.detach().numpy())
    other = cls([q], lr=0.123)
    other.load_state_dict(opt.state_dict())
    assert other.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for g in grads[4:]:
        for t, o in ((p, opt), (q, other)):
            t.grad = hybrid.tensor(g, dtype=hybrid.float64)
            o.step()
    np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-14)
    assert other.state[q]["step"].item() == STEPS


@pytest.mark.torch_oracle
@pytest.mark.parametrize("name,kw", [("RMSprop", {"momentum": 0.9, "centered": True}),
                                     ("Adagrad", {"lr_decay": 0.1}), ("Adadelta", {}),
                                     ("Adam", {"amsgrad": True}), ("SGD", {"momentum": 0.9})])
def test_loads_a_torch_state_dict(data, name, kw):
    """A state dict saved by torch.optim (converted to numpy) continues in hybrid exactly."""
    torch = pytest.importorskip("torch")
    p0, grads = data
    kw = {"lr": 0.01, **kw}
    tp = torch.tensor(p0, requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kw)
    for g in grads[:4]:
        tp.grad = torch.tensor(g)
        topt.step()
    sd = topt.state_dict()
    state = {i: {k: hybrid.tensor(v.numpy()) if torch.is_tensor(v) else v for k, v in s.items()}
             for i, s in sd["state"].items()}
    p = leaf(tp.detach().numpy())
    opt = getattr(optim, name)([p], lr=0.5)
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})
    for g in grads[4:]:
        tp.grad, p.grad = torch.tensor(g), hybrid.tensor(g, dtype=hybrid.float64)
        topt.step()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.torch_oracle
@pytest.mark.parametrize("name,changes", [
    ("RMSprop", {"lr": 0.003, "alpha": 0.5, "eps": 1e-3, "weight_decay": 0.2, "momentum": 0.3}),
    ("Adagrad", {"lr": 0.2, "lr_decay": 0.3, "eps": 1e-3, "weight_decay": 0.1}),
    ("Adadelta", {"lr": 0.3, "rho": 0.5, "eps": 1e-3, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "betas": (0.5, 0.9), "eps": 1e-3, "weight_decay": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.5, "dampening": 0.2, "weight_decay": 0.1}),
])
def test_hyperparameters_changed_between_steps(data, name, changes):
    """Hyperparameters written into the group between steps take effect as in PyTorch."""
    torch = pytest.importorskip("torch")
    p0, grads = data
    kw = {"lr": 0.01, "momentum": 0.9} if name in ("SGD", "RMSprop") else {"lr": 0.01}
    p = leaf(p0)
    opt = getattr(optim, name)([p], **kw)
    tp = torch.tensor(p0, requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kw)
    for i, g in enumerate(grads):
        if i == STEPS // 2:
            for o in (opt, topt):
                o.param_groups[0].update(changes)
        tp.grad, p.grad = torch.tensor(g), hybrid.tensor(g, dtype=hybrid.float64)
        topt.step()
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_momentum_turned_on_later_creates_its_buffer_eagerly(data):
    p0, grads = data
    p = leaf(p0)
    opt = optim.RMSprop([p], lr=0.01)
    assert "momentum_buffer" not in opt.state[p]
    opt.param_groups[0]["momentum"] = 0.5
    p.grad = hybrid.tensor(grads[0], dtype=hybrid.float64)
    opt.step()
    want, _ = np_rmsprop(p0, grads[:1], lr=0.01, momentum=0.5)
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-12)


@pytest.mark.parametrize("cls,kw,match", [
    (optim.RMSprop, {"lr": -1.0}, "Invalid learning rate value: -1.0"),
    (optim.RMSprop, {"alpha": -0.1}, "Invalid alpha value"),
    (optim.RMSprop, {"momentum": -0.1}, "Invalid momentum value"),
    (optim.Adagrad, {"lr_decay": -1}, "Invalid lr_decay value"),
    (optim.Adagrad, {"initial_accumulator_value": -1}, "initial_accumulator_value"),
    (optim.Adadelta, {"rho": 1.5}, "Invalid rho value"),
    (optim.Adadelta, {"eps": -1}, "Invalid epsilon value"),
])
def test_invalid_hyperparameters(cls, kw, match):
    with pytest.raises(hybrid.HybridError, match=match):
        cls([leaf(np.ones(2))], **kw)


def test_pytorch_implementation_switches_are_accepted(data):
    p0, grads = data
    a, _ = run(optim.Adam, p0, grads, lr=0.01, foreach=False, capturable=True, fused=None)
    b, _ = run(optim.Adam, p0, grads, lr=0.01)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    for cls in (optim.SGD, optim.RMSprop, optim.Adagrad, optim.Adadelta, optim.AdamW):
        cls([leaf(p0)], foreach=True)
        with pytest.raises(hybrid.HybridError, match=r"differentiable=True\) is not supported"):
            cls([leaf(p0)], differentiable=True)


def test_named_parameters_are_accepted():
    model = hybrid.nn.Linear(3, 2)
    opt = optim.Adam(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["params"] == list(model.parameters())
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


def test_adam_decoupled_weight_decay_is_adamw(data):
    p0, grads = data
    a, _ = run(optim.Adam, p0, grads, lr=0.01, weight_decay=0.3, decoupled_weight_decay=True)
    b, _ = run(optim.AdamW, p0, grads, lr=0.01, weight_decay=0.3)
    c, _ = run(optim.Adam, p0, grads, lr=0.01, weight_decay=0.3)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    assert not np.allclose(a.detach().numpy(), c.detach().numpy())
