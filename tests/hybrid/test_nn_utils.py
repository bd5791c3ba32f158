"""hybrid.nn.utils: clip_grad_norm_ / clip_grad_value_ against float64 numpy and
torch.nn.utils, inside a compiled training step, and the flat parameter vector round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    parameters_to_vector,
    vector_to_parameters,
)


def leaves_with_grads(rng, shapes=((3, 4), (5,), (2, 2, 2)), scale=1.0):
    ps = []
    for s in shapes:
        p = hybrid.tensor(rng.standard_normal(s), dtype=hybrid.float64, requires_grad=True)
        p.grad = hybrid.tensor(rng.standard_normal(s) * scale, dtype=hybrid.float64)
        ps.append(p)
    return ps


def np_total_norm(grads, p):
    flat = np.concatenate([g.ravel() for g in grads])
    if p == math.inf:
        return np.abs(flat).max()
    if p == -math.inf:
        return min(np.abs(g).min() for g in grads)
    if p == 0:
        return float(sum(np.count_nonzero(g) > 0 for g in grads))  # PyTorch: norm of the norms
    return (np.abs(flat) ** p).sum() ** (1 / p)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_reference(rng, norm_type, max_norm):
    ps = leaves_with_grads(rng)
    before = [p.grad.numpy().copy() for p in ps]
    grad_objects = [p.grad for p in ps]
    total = clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    want = np_total_norm(before, float(norm_type))
    assert isinstance(total, hybrid.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), want, rtol=1e-12)
    coef = min(max_norm / (want + 1e-6), 1.0)
    for p, g0, obj in zip(ps, before, grad_objects):
        assert p.grad is obj  # scaled in place
        np.testing.assert_allclose(p.grad.numpy(), g0 * coef, rtol=1e-12)
    if max_norm < want:
        np.testing.assert_allclose(np_total_norm([p.grad.numpy() for p in ps], float(norm_type)),
                                   max_norm, rtol=1e-5)


def test_clip_grad_norm_edge_cases(rng):
    assert clip_grad_norm_([hybrid.zeros(3, requires_grad=True)], 1.0).item() == 0.0  # no grads
    ps = leaves_with_grads(rng)
    ps[0].grad[0, 0] = math.inf
    with np.errstate(invalid="ignore"):  # inf * 0 = nan, as in PyTorch
        total = clip_grad_norm_(ps, 1.0)
    assert math.isinf(total.item())
    ps = leaves_with_grads(rng)
    ps[1].grad[0] = math.nan
    with pytest.raises(hybrid.HybridError, match="non-finite.*error_if_nonfinite=False"):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    with pytest.raises(hybrid.HybridError, match="norm_type"):
        clip_grad_norm_(ps, 1.0, norm_type="fro")
    with pytest.raises(hybrid.HybridError, match="expected Tensors"):
        clip_grad_norm_([1.0], 1.0)
    p = leaves_with_grads(rng)[0]  # a single tensor, as PyTorch accepts
    g0 = p.grad.numpy().copy()
    clip_grad_norm_(p, 0.1)
    np.testing.assert_allclose(np.linalg.norm(p.grad.numpy()), 0.1, rtol=1e-5)
    np.testing.assert_allclose(p.grad.numpy() / g0, np.full(g0.shape, p.grad.numpy()[0, 0] /
                                                            g0[0, 0]), rtol=1e-12)


def test_clip_grad_value(rng):
    ps = leaves_with_grads(rng, scale=2.0)
    before = [p.grad.numpy().copy() for p in ps]
    ps.append(hybrid.zeros(2, requires_grad=True))  # no grad: skipped
    assert clip_grad_value_(ps, 0.7) is None
    for p, g0 in zip(ps, before):
        np.testing.assert_array_equal(p.grad.numpy(), np.clip(g0, -0.7, 0.7))
    assert ps[-1].grad is None


@pytest.mark.torch_oracle
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 0.0, 4.5, math.inf, -math.inf])
def test_clip_matches_torch(rng, norm_type):
    torch = pytest.importorskip("torch")
    ps = leaves_with_grads(rng, scale=3.0)
    ps[2].grad[0] = 0.0
    tps = [torch.tensor(p.detach().numpy(), requires_grad=True) for p in ps]
    for tp, p in zip(tps, ps):
        tp.grad = torch.tensor(p.grad.numpy())
    total = clip_grad_norm_(ps, 1.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, 1.5, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), ttotal.item(), rtol=1e-12)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)
    clip_grad_value_(ps, 0.2)
    torch.nn.utils.clip_grad_value_(tps, 0.2)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-12)
        assert np.abs(p.grad.numpy()).max() <= 0.2


def test_parameters_to_vector_roundtrip(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    vec = parameters_to_vector(model.parameters())
    want = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    np.testing.assert_array_equal(vec.detach().numpy(), want)
    assert vec.shape == (3 * 4 + 4 + 4 * 2 + 2,)
    vec.sum().backward()  # differentiable: every parameter gets a gradient of ones
    for p in model.parameters():
        np.testing.assert_array_equal(p.grad.numpy(), np.ones(p.shape))
    ids = [id(p) for p in model.parameters()]
    new = rng.standard_normal(vec.shape[0]).astype(np.float32)
    vector_to_parameters(hybrid.tensor(new), model.parameters())
    np.testing.assert_array_equal(parameters_to_vector(model.parameters()).detach().numpy(), new)
    assert [id(p) for p in model.parameters()] == ids and model[0].weight.requires_grad
    with pytest.raises(hybrid.HybridError, match="1-d vector of 26 elements"):
        vector_to_parameters(hybrid.zeros(25), model.parameters())
    with pytest.raises(hybrid.HybridError, match="expected vec to be a Tensor"):
        vector_to_parameters(new, model.parameters())


@pytest.mark.torch_oracle
def test_parameters_to_vector_matches_torch(rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s) for s in ((2, 3), (4,), (1, 2, 2))]
    got = parameters_to_vector([hybrid.tensor(a) for a in arrays]).numpy()
    want = torch.nn.utils.parameters_to_vector([torch.tensor(a) for a in arrays]).numpy()
    np.testing.assert_array_equal(got, want)


@pytest.mark.usefixtures("compiled_backend")
@pytest.mark.parametrize("clip", ["norm2", "norm_inf", "value"])
def test_clipping_inside_a_compiled_training_step(clip):
    """clip_grad_norm_ inside @hybrid.compile: the same parameters and returned norm as eager."""

    def make():
        hybrid.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        return model, hybrid.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

    def step(model, opt, x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        if clip == "value":
            clip_grad_value_(model.parameters(), 0.05)
            norm = loss * 0
        else:
            norm = clip_grad_norm_(model.parameters(), 0.1,
                                   norm_type=2.0 if clip == "norm2" else math.inf)
        opt.step()
        return loss, norm

    m1, o1 = make()
    m2, o2 = make()
    compiled = hybrid.compile(step)
    hybrid.manual_seed(1)
    for _ in range(10):
        x, y = hybrid.randn(12, 6) * 3, hybrid.randint(0, 3, (12,))
        le, ne = step(m1, o1, x, y)
        lc, nc = compiled(m2, o2, x, y)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=1e-5)
        np.testing.assert_allclose(nc.item(), ne.item(), rtol=1e-5)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(p2.detach().numpy(), p1.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
        np.testing.assert_allclose(p2.grad.numpy(), p1.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert compiled.cache_size() <= 2, "compile_count: clipping made the step recompile"


def test_error_if_nonfinite_inside_compile_is_a_clear_error():
    model = nn.Linear(3, 2)

    @hybrid.compile
    def step(x):
        model(x).sum().backward()
        return clip_grad_norm_(model.parameters(), 1.0, error_if_nonfinite=True)

    with pytest.raises(hybrid.TraceError, match="error_if_nonfinite=False"):
        step(hybrid.randn(4, 3))
