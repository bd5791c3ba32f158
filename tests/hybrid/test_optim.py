"""hybrid.optim against hand-computed numpy float64 updates (PyTorch's formulas), eager state,
in-place updates, and the state_dict round trip."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid import optim


def leaf(a):
    return hybrid.tensor(a, dtype=hybrid.float64, requires_grad=True)


def run(opt_cls, p0, grads, **kw):
    """Apply opt_cls to one parameter with the given sequence of gradients."""
    p = leaf(p0)
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = hybrid.tensor(g, dtype=hybrid.float64)
        opt.step()
    return p, opt


@pytest.fixture
def data(rng):
    return rng.standard_normal((3, 2)), [rng.standard_normal((3, 2)) for _ in range(3)]


def np_sgd(p, grads, lr, momentum=0.0, dampening=0.0, wd=0.0, nesterov=False, maximize=False):
    p, buf = p.copy(), None
    for g in grads:
        g = -g if maximize else g
        g = g + wd * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


@pytest.mark.parametrize("kw", [
    {"lr": 0.1},
    {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
    {"lr": 0.05, "momentum": 0.8, "dampening": 0.3},
    {"lr": 0.05, "momentum": 0.9, "maximize": True, "weight_decay": 0.1},
], ids=str)
def test_sgd_matches_reference(data, kw):
    p0, grads = data
    p, _ = run(optim.SGD, p0, grads[:2], **kw)
    ref = np_sgd(p0, grads[:2], kw["lr"], kw.get("momentum", 0.0), kw.get("dampening", 0.0),
                 kw.get("weight_decay", 0.0), kw.get("nesterov", False), kw.get("maximize", False))
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-12, atol=1e-14)


def np_adam(p, grads, lr, b1, b2, eps, wd=0.0, decoupled=False, amsgrad=False):
    p, m, v, vmax = p.copy(), np.zeros_like(p), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, 1):
        if wd and decoupled:
            p = p * (1 - lr * wd)
        elif wd:
            g = g + wd * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - b2**t)
        p = p - lr * (m / (1 - b1**t)) / (np.sqrt(vhat) + eps)
    return p


@pytest.mark.parametrize("cls,kw", [
    (optim.Adam, {"lr": 0.01}),
    (optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
    (optim.Adam, {"lr": 0.01, "amsgrad": True}),
    (optim.AdamW, {"lr": 0.01}),
    (optim.AdamW, {"lr": 0.02, "weight_decay": 0.5, "amsgrad": True}),
], ids=str)
@pytest.mark.parametrize("steps", [1, 3])
def test_adam_matches_reference(data, cls, kw, steps):
    p0, grads = data
    p, opt = run(cls, p0, grads[:steps], **kw)
    b1, b2 = kw.get("betas", (0.9, 0.999))
    wd = kw.get("weight_decay", 0.01 if cls is optim.AdamW else 0.0)
    ref = np_adam(p0, grads[:steps], kw["lr"], b1, b2, kw.get("eps", 1e-8), wd,
                  cls is optim.AdamW, kw.get("amsgrad", False))
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-6, atol=1e-12)
    assert opt.state[p]["step"].item() == steps


def test_state_is_created_eagerly_and_updated_in_place():
    p = leaf(np.ones(3))
    adam = optim.Adam([p])
    st = adam.state[p]
    assert set(st) == {"step", "exp_avg", "exp_avg_sq"}
    assert st["step"].dtype is hybrid.float32 and st["step"].shape == ()
    objects = {k: (v, v._value) for k, v in st.items()}
    p_value = p._value
    p.grad = hybrid.ones(3, dtype=hybrid.float64)
    adam.step()
    for k, v in adam.state[p].items():
        assert v is objects[k][0] and v._value is objects[k][1]
    assert p._value is p_value  # the same storage, updated in place
    sgd = optim.SGD([leaf(np.ones(2))], lr=0.1, momentum=0.9)
    assert set(next(iter(sgd.state.values()))) == {"momentum_buffer", "step"}
    plain = optim.SGD([leaf(np.ones(2))], lr=0.1)
    assert list(plain.state.values()) == [{}]


def test_params_without_grad_are_skipped():
    a, b = leaf(np.ones(2)), leaf(np.ones(2))
    opt = optim.SGD([a, b], lr=1.0, momentum=0.5)
    a.grad = hybrid.ones(2, dtype=hybrid.float64)
    opt.step()
    assert a.detach().numpy().tolist() == [0.0, 0.0] and b.detach().numpy().tolist() == [1.0, 1.0]
    assert opt.state[b]["step"].item() == 0


def test_param_groups_and_zero_grad():
    a, b = leaf(np.ones(2)), leaf(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[0]["momentum"] == 0.0
    c = leaf(np.ones(1))
    opt.add_param_group({"params": c, "momentum": 0.9})
    assert "momentum_buffer" in opt.state[c]
    with pytest.raises(hybrid.ShapeError, match="more than once"):
        opt.add_param_group({"params": [a]})
    for t in (a, b, c):
        t.grad = hybrid.ones(t.shape, dtype=hybrid.float64)
    opt.zero_grad(set_to_none=False)
    assert (a.grad.numpy() == 0).all()
    opt.zero_grad()
    assert a.grad is None and c.grad is None


def test_invalid_hyperparameters():
    p = leaf(np.ones(1))
    with pytest.raises(hybrid.ShapeError, match="Invalid learning rate value: -1"):
        optim.SGD([p], lr=-1)
    with pytest.raises(hybrid.ShapeError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(hybrid.ShapeError, match="beta parameter at index 1"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(hybrid.ShapeError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(hybrid.DTypeError, match="iterable"):
        optim.Adam(p)


def test_state_dict_format_and_roundtrip():
    model = hybrid.nn.Linear(2, 3)
    opt = optim.Adam(model.parameters(), lr=0.01, amsgrad=True)
    x = hybrid.randn(4, 2)
    for _ in range(2):
        model(x).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][0]["lr"] == 0.01
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]

    model2 = hybrid.nn.Linear(2, 3)
    model2.load_state_dict(model.state_dict())
    opt2 = optim.Adam(model2.parameters(), lr=0.5, amsgrad=True)
    before = opt2.state[model2.weight]["exp_avg"]
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.01
    assert opt2.state[model2.weight]["exp_avg"] is before  # copied into the eager state
    for m, o in ((model, opt), (model2, opt2)):
        m(x).pow(2).sum().backward()
        o.step()
    np.testing.assert_allclose(model2.weight.detach().numpy(), model.weight.detach().numpy(),
                               rtol=1e-6)
    with pytest.raises(hybrid.StateDictError, match="parameter group sizes"):
        optim.Adam([model.weight]).load_state_dict(sd)


def test_sgd_loads_pytorch_style_state():
    p = leaf(np.zeros(2))
    opt = optim.SGD([p], lr=1.0, momentum=0.5)
    opt.load_state_dict({"state": {0: {"momentum_buffer": hybrid.ones(2, dtype=hybrid.float64)}},
                         "param_groups": [dict(opt.state_dict()["param_groups"][0])]})
    p.grad = hybrid.ones(2, dtype=hybrid.float64)
    opt.step()  # buf = 0.5 * 1 + 1 (the buffer had started): p = -1.5
    np.testing.assert_allclose(p.detach().numpy(), [-1.5, -1.5])


def test_matches_torch_if_available(data):
    try:
        import torch
    except Exception as e:  # noqa: BLE001  (absent, or a broken install)
        pytest.skip(f"torch is not importable: {e}")
    p0, grads = data
    for cls, tcls, kw in [(optim.SGD, torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True,
                                                            "weight_decay": 0.01}),
                          (optim.Adam, torch.optim.Adam, {"lr": 0.01, "weight_decay": 0.1}),
                          (optim.AdamW, torch.optim.AdamW, {"lr": 0.01})]:
        p, _ = run(cls, p0, grads, **kw)
        tp = torch.tensor(p0, requires_grad=True)
        topt = tcls([tp], **kw)
        for g in grads:
            tp.grad = torch.tensor(g)
            topt.step()
        np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-6)
