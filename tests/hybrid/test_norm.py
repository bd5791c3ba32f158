"""Normalization (hybrid/nn/functional_norm.py, hybrid/nn/norm.py): values and running-statistic
updates against float64 numpy written here and PyTorch, gradients against finite differences
and PyTorch, the same forward+backward compiled on both backends against eager, BatchNorm inside
a compiled training step (buffers, parameters, train/eval switch), state_dict loading from
PyTorch modules, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import gradcheck
from tolerance import assert_matches_eager, fwd_bwd

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.errors import HybridError

# input shapes batch_norm accepts: (N, C), (N, C, L), (N, C, H, W), (N, C, D, H, W)
BN_SHAPES = [(5, 3), (3, 2, 4), (2, 3, 3, 2), (2, 2, 2, 3, 2)]


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def h(a):
    return None if a is None else hybrid.tensor(a)


# --- float64 numpy references ---------------------------------------------------------------------


def _bcast(v, ndim):
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def ref_batch_norm(x, rm, rv, w, b, training, momentum, eps=1e-5):
    """Output and the new running mean / variance (PyTorch's documented formulas)."""
    axes = (0,) + tuple(range(2, x.ndim))
    if training:
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        n = x.size // x.shape[1]
        new_rm = None if rm is None else (1 - momentum) * rm + momentum * mu
        new_rv = None if rv is None else (1 - momentum) * rv + momentum * var * n / (n - 1)
    else:
        mu, var, new_rm, new_rv = rm, rv, rm, rv
    y = (x - _bcast(mu, x.ndim)) / np.sqrt(_bcast(var, x.ndim) + eps)
    if w is not None:
        y = y * _bcast(w, x.ndim)
    if b is not None:
        y = y + _bcast(b, x.ndim)
    return y, new_rm, new_rv


def ref_instance_norm(x, w, b, eps=1e-5):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for c in range(x.shape[1]):
            v = x[i, c]
            out[i, c] = (v - v.mean()) / np.sqrt(v.var() + eps)
            if w is not None:
                out[i, c] = out[i, c] * w[c] + b[c]
    return out


def ref_group_norm(x, groups, w, b, eps=1e-5):
    out = np.empty_like(x)
    per = x.shape[1] // groups
    for i in range(x.shape[0]):
        for g in range(groups):
            v = x[i, g * per:(g + 1) * per]
            out[i, g * per:(g + 1) * per] = (v - v.mean()) / np.sqrt(v.var() + eps)
    return out if w is None else out * _bcast(w, x.ndim) + _bcast(b, x.ndim)


def ref_lrn(x, size, alpha=1e-4, beta=0.75, k=1.0):
    c = x.shape[1]
    out = np.empty_like(x)
    for ch in range(c):
        lo, hi = max(0, ch - size // 2), min(c, ch + (size - 1) // 2 + 1)
        s = (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, ch] = x[:, ch] / (k + alpha / size * s) ** beta
    return out


# --- values and gradients against numpy / finite differences --------------------------------------


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_numpy_and_updates_running_stats(shape, training):
    c = shape[1]
    x, w, b = rand(shape), rand((c,), 1), rand((c,), 2)
    rm, rv = rand((c,), 3), np.abs(rand((c,), 4)) + 0.5
    trm, trv = h(rm.copy()), h(rv.copy())
    got = F.batch_norm(h(x), trm, trv, h(w), h(b), training=training, momentum=0.3)
    want, want_rm, want_rv = ref_batch_norm(x, rm, rv, w, b, training, 0.3)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trm.numpy(), want_rm, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trv.numpy(), want_rv, rtol=1e-12, atol=1e-12)
    # gradients of input, weight and bias (no running stats: each evaluation would update them)
    if training:
        gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    else:
        gradcheck(lambda x, w, b: F.batch_norm(x, h(rm), h(rv), w, b), x, w, b)


def test_batch_norm_without_affine_and_tensor_momentum():
    x = rand((4, 3, 5))
    rm, rv = hybrid.zeros(3, dtype=hybrid.float64), hybrid.ones(3, dtype=hybrid.float64)
    got = F.batch_norm(h(x), rm, rv, training=True, momentum=hybrid.tensor(0.25))
    want, want_rm, want_rv = ref_batch_norm(x, np.zeros(3), np.ones(3), None, None, True, 0.25)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm.numpy(), want_rm, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), want_rv, rtol=1e-12)
    assert not rm.requires_grad and rm.grad_fn is None


@pytest.mark.parametrize("shape,affine", [((2, 3, 5), True), ((3, 2, 3, 4), False)])
def test_instance_norm_matches_numpy_and_finite_differences(shape, affine):
    x = rand(shape)
    w, b = (rand((shape[1],), 1), rand((shape[1],), 2)) if affine else (None, None)
    got = F.instance_norm(h(x), weight=h(w), bias=h(b))
    np.testing.assert_allclose(got.numpy(), ref_instance_norm(x, w, b), rtol=1e-12, atol=1e-12)
    if affine:
        gradcheck(lambda x, w, b: F.instance_norm(x, weight=w, bias=b), x, w, b)
    else:
        gradcheck(lambda x: F.instance_norm(x), x)
    # running statistics: the batch mean of the per-instance statistics, unbiased variance
    rm, rv = hybrid.zeros(shape[1], dtype=hybrid.float64), hybrid.ones(shape[1],
                                                                      dtype=hybrid.float64)
    F.instance_norm(h(x), rm, rv, momentum=0.5)
    axes = tuple(range(2, x.ndim))
    np.testing.assert_allclose(rm.numpy(), 0.5 * x.mean(axis=axes).mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.5 + 0.5 * x.var(axis=axes, ddof=1).mean(0),
                               rtol=1e-12)
    # use_input_stats=False normalizes with the running statistics (batch_norm's eval form)
    got = F.instance_norm(h(x), rm, rv, use_input_stats=False)
    want = ref_batch_norm(x, rm.numpy(), rv.numpy(), None, None, False, 0.1)[0]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,groups", [((2, 6, 3), 3), ((2, 4, 2, 3), 1), ((3, 4), 4),
                                          ((1, 6, 2, 2), 2)])
def test_group_norm_matches_numpy_and_finite_differences(shape, groups):
    c = shape[1]
    x, w, b = rand(shape), rand((c,), 1), rand((c,), 2)
    np.testing.assert_allclose(F.group_norm(h(x), groups, h(w), h(b)).numpy(),
                               ref_group_norm(x, groups, w, b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(F.group_norm(h(x), groups, eps=0.1).numpy(),
                               ref_group_norm(x, groups, None, None, eps=0.1), rtol=1e-12,
                               atol=1e-12)
    gradcheck(lambda x, w, b: F.group_norm(x, groups, w, b), x, w, b)


@pytest.mark.parametrize("shape,size,kw", [((2, 5, 3), 3, {}), ((1, 6, 2, 3), 4,
                                            {"alpha": 0.5, "beta": 0.6, "k": 2.0}),
                                           ((2, 3, 2, 2, 2), 2, {"alpha": 1.0}),
                                           ((1, 4, 3), 1, {"alpha": 2.0})])
def test_local_response_norm_matches_numpy_and_finite_differences(shape, size, kw):
    x = rand(shape)
    np.testing.assert_allclose(F.local_response_norm(h(x), size, **kw).numpy(),
                               ref_lrn(x, size, **kw), rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.local_response_norm(t, size, **kw), x)


# --- against PyTorch ------------------------------------------------------------------------------


def _grads(lib, fn, arrays, cot):
    ts = [None if a is None else lib.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    (y * lib.tensor(cot)).sum().backward()
    return y.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]


@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_torch(shape, training):
    torch = pytest.importorskip("torch")
    c = shape[1]
    x, w, b = (rand(s, i).astype(np.float32) for i, s in enumerate([shape, (c,), (c,)]))
    rm, rv = rand((c,), 3).astype(np.float32), (np.abs(rand((c,), 4)) + 0.5).astype(np.float32)
    cot = rand(shape, 5).astype(np.float32)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    hrm, hrv = hybrid.tensor(rm), hybrid.tensor(rv)
    want, want_g = _grads(torch, lambda x, w, b: torch.nn.functional.batch_norm(
        x, trm, trv, w, b, training, 0.2, 1e-3), [x, w, b], cot)
    got, got_g = _grads(hybrid, lambda x, w, b: F.batch_norm(
        x, hrm, hrv, w, b, training, 0.2, 1e-3), [x, w, b], cot)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_g, want_g):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hrm.numpy(), trm.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hrv.numpy(), trv.numpy(), rtol=1e-6, atol=1e-7)


def test_instance_group_and_lrn_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rand((2, 6, 3, 4)).astype(np.float32)
    w, b = rand((6,), 1).astype(np.float32), rand((6,), 2).astype(np.float32)
    cot = rand(x.shape, 3).astype(np.float32)
    rm, rv = np.zeros(6, np.float32), np.ones(6, np.float32)
    trm, trv, hrm, hrv = torch.tensor(rm), torch.tensor(rv), hybrid.tensor(rm), hybrid.tensor(rv)
    cases = [
        (lambda x, w, b: tf.instance_norm(x, trm, trv, w, b, momentum=0.3),
         lambda x, w, b: F.instance_norm(x, hrm, hrv, w, b, momentum=0.3)),
        (lambda x, w, b: tf.group_norm(x, 3, w, b, eps=1e-3),
         lambda x, w, b: F.group_norm(x, 3, w, b, eps=1e-3)),
        (lambda x, w, b: tf.local_response_norm(x, 3, alpha=0.5, k=1.5) * w[:, None, None] + b[
            :, None, None],
         lambda x, w, b: F.local_response_norm(x, 3, alpha=0.5, k=1.5) * w.reshape(6, 1, 1)
         + b.reshape(6, 1, 1)),
        (lambda x, w, b: tf.local_response_norm(x[:, :, 0], 4) * w[:, None],
         lambda x, w, b: F.local_response_norm(x[:, :, 0], 4) * w.reshape(6, 1)),
    ]
    for tfn, hfn in cases:
        ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
        hs = [hybrid.tensor(a, requires_grad=True) for a in (x, w, b)]
        ty, hy = tfn(*ts), hfn(*hs)
        c = cot if ty.ndim == 4 else cot[:, :, 0]
        (ty * torch.tensor(c)).sum().backward()
        (hy * hybrid.tensor(c)).sum().backward()
        np.testing.assert_allclose(hy.detach().numpy(), ty.detach().numpy(), rtol=1e-5,
                                   atol=1e-5)
        for hg, tg in zip(hs, ts):
            want = np.zeros_like(tg.detach().numpy()) if tg.grad is None else tg.grad.numpy()
            got = np.zeros_like(want) if hg.grad is None else hg.grad.numpy()
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(hrm.numpy(), trm.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(hrv.numpy(), trv.numpy(), rtol=1e-6, atol=1e-6)


# --- compiled forward + backward vs eager ---------------------------------------------------------


def test_norms_compiled_match_eager(compiled_backend):
    x = hybrid.tensor(rand((2, 4, 3, 3)).astype(np.float32))
    w, b = (hybrid.tensor(rand((4,), i).astype(np.float32)) for i in (1, 2))
    cot = hybrid.tensor(rand((2, 4, 3, 3), 3).astype(np.float32))
    stats = {name: [hybrid.zeros(4), hybrid.ones(4)] for name in ("compiled", "eager")}

    def fn(x, w, b, rm, rv):
        return (F.batch_norm(x, rm, rv, w, b, training=True) + F.group_norm(x, 2, w, b)
                + F.instance_norm(x, weight=w, bias=b) + F.local_response_norm(x, 3, alpha=0.3)
                + F.batch_norm(x, rm, rv, w, b, training=False, eps=0.1))

    def make(name):
        rm, rv = stats[name]
        return fwd_bwd(lambda x, w, b: fn(x, w, b, rm, rv), 3)

    compiled = hybrid.compile(make("compiled"))
    eager = make("eager")
    for _ in range(2):  # the running statistics change between the calls
        got, want = compiled(x, w, b, cot), eager(x, w, b, cot)
        for g, e in zip(got, want):
            assert_matches_eager(g, e)
        for g, e in zip(stats["compiled"], stats["eager"]):
            assert_matches_eager(g, e)
    assert float(stats["eager"][1].numpy()[0]) != 1.0  # they did move


class Net(nn.Module):
    def __init__(self, momentum=0.1):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4, momentum=momentum)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(hybrid.flatten(F.relu(self.bn(self.conv(x))), 1))


def _train(compiled, momentum):
    """3 SGD steps (eager or compiled) on a BatchNorm2d model, then the same forward function
    in eval mode; returns losses, state_dict arrays, the train and eval outputs."""
    hybrid.manual_seed(0)
    net = Net(momentum)
    opt = hybrid.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    xs = [hybrid.tensor(rand((3, 2, 4, 4), i).astype(np.float32)) for i in range(3)]
    y = hybrid.tensor(np.array([0, 1, 2]))

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.detach()

    def forward(x):
        return net(x).detach()

    step = hybrid.compile(step) if compiled else step
    forward = hybrid.compile(forward) if compiled else forward
    losses = [step(x, y) for x in xs]
    train_out = forward(xs[0])  # train mode: batch statistics, and one more buffer update
    net.eval()
    eval_out = forward(xs[1])
    eval_again = forward(xs[1])
    state = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    if compiled:  # buffers' values are runtime inputs: no recompile per step; eval recompiled
        assert step.compile_count <= 2 and forward.compile_count == 2
    return losses, state, train_out, eval_out, eval_again


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_in_compiled_training_step_matches_eager(compiled_backend, momentum):
    el, es, et, ee, _ = _train(False, momentum)
    cl, cs, ct, ce, ce2 = _train(True, momentum)
    assert float(el[-1]) < float(el[0])
    assert es["bn.num_batches_tracked"] == 4 and cs["bn.num_batches_tracked"] == 4
    assert cs["bn.num_batches_tracked"].dtype == np.int64
    for g, e in zip(cl + [ct, ce, ce2], el + [et, ee, ee]):
        assert_matches_eager(g, e)
    for k in es:
        if hybrid.config.backend == "interpreter" or k.startswith("bn.running"):
            assert_matches_eager(cs[k], es[k], err_msg=k)
        else:  # three SGD steps through a conv: a few ulps more than one op
            np.testing.assert_allclose(cs[k], es[k], rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.allclose(ee.numpy(), et.numpy())


def test_batchnorm1d_model_passed_as_argument_in_compiled_adam_step_matches_eager():
    def run(compiled):
        hybrid.manual_seed(0)
        # NOTE: no bias before the BatchNorm: its gradient is ~0, which Adam would amplify
        net = nn.Sequential(nn.Linear(4, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(),
                            nn.Linear(5, 2))
        opt = hybrid.optim.Adam(net.parameters(), lr=0.01)

        def step(model, x, y):
            opt.zero_grad()
            loss = F.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        step = hybrid.compile(step) if compiled else step
        for i in range(3):
            step(net, hybrid.tensor(rand((6, 4), i).astype(np.float32)),
                 hybrid.tensor(rand((6, 2), 10 + i).astype(np.float32)))
        return {k: v.numpy().copy() for k, v in net.state_dict().items()}

    eager, compiled = run(False), run(True)
    assert eager["1.num_batches_tracked"] == compiled["1.num_batches_tracked"] == 3
    for k in eager:
        np.testing.assert_allclose(compiled[k], eager[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_batchnorm_eval_output_uses_running_stats():
    net = Net()
    with hybrid.no_grad():
        net.bn.weight.copy_(hybrid.tensor(rand((4,), 1).astype(np.float32)))
        net.bn.bias.copy_(hybrid.tensor(rand((4,), 2).astype(np.float32)))
    x = hybrid.tensor(rand((3, 2, 4, 4)).astype(np.float32))
    for _ in range(2):
        net(x)
    net.eval()
    bn = net.bn
    with hybrid.no_grad():
        z = net.conv(x).numpy().astype(np.float64)
        want = ref_batch_norm(z, bn.running_mean.numpy(), bn.running_var.numpy(),
                              bn.weight.detach().numpy(), bn.bias.detach().numpy(), False, 0.1)[0]
        compiled = hybrid.compile(lambda t: bn(net.conv(t)))(x)
    np.testing.assert_allclose(bn(net.conv(x)).detach().numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(compiled.numpy(), want, rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked.numpy()) == 2  # eval forwards do not count


# --- modules --------------------------------------------------------------------------------------


def test_norm_modules_have_pytorch_names_defaults_and_init():
    bn = nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var",
                                     "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    np.testing.assert_array_equal(bn.weight.detach().numpy(), np.ones(3))
    np.testing.assert_array_equal(bn.bias.detach().numpy(), np.zeros(3))
    np.testing.assert_array_equal(bn.running_var.numpy(), np.ones(3))
    assert bn.num_batches_tracked.dtype == hybrid.int64 and bn.num_batches_tracked.shape == ()
    assert repr(bn) == ("BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, bias=True, "
                        "track_running_stats=True)")
    bn(hybrid.tensor(rand((2, 3, 2, 2)).astype(np.float32)))
    with hybrid.no_grad():
        bn.weight.mul_(2.0)
    bn.reset_running_stats()
    assert int(bn.num_batches_tracked.numpy()) == 0
    np.testing.assert_array_equal(bn.running_mean.numpy(), np.zeros(3))
    assert bn.weight.detach().numpy()[0] == 2.0
    bn.reset_parameters()
    assert bn.weight.detach().numpy()[0] == 1.0
    plain = nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    assert plain.weight is None and plain.running_mean is None and not plain.state_dict()
    inorm = nn.InstanceNorm2d(3)
    assert not inorm.affine and not inorm.track_running_stats and not inorm.state_dict()
    assert list(nn.InstanceNorm1d(3, affine=True, track_running_stats=True).state_dict()) == [
        "weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    gn = nn.GroupNorm(2, 4)
    assert list(gn.state_dict()) == ["weight", "bias"] and gn.eps == 1e-5
    assert repr(gn) == "GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)"
    assert list(nn.GroupNorm(2, 4, bias=False).state_dict()) == ["weight"]
    assert list(nn.BatchNorm1d(2, bias=False).state_dict()) == ["weight", "running_mean",
                                                                "running_var",
                                                                "num_batches_tracked"]
    lrn = nn.LocalResponseNorm(3)
    assert (lrn.alpha, lrn.beta, lrn.k) == (1e-4, 0.75, 1.0)
    assert repr(lrn) == "LocalResponseNorm(3, alpha=0.0001, beta=0.75, k=1.0)"


def _from_torch(state):
    return {k: hybrid.tensor(v.detach().numpy()) for k, v in state.items()}


@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_loads_torch_state_dict_and_matches_in_train_and_eval(momentum):
    torch = pytest.importorskip("torch")
    tm = torch.nn.BatchNorm2d(3, momentum=momentum)
    with torch.no_grad():
        tm.weight.copy_(torch.tensor(rand((3,), 1)))
        tm.bias.copy_(torch.tensor(rand((3,), 2)))
    for i in range(2):  # non-trivial running statistics and num_batches_tracked
        tm(torch.tensor(rand((4, 3, 2, 3), 10 + i).astype(np.float32)))
    hm = nn.BatchNorm2d(3, momentum=momentum)
    hm.load_state_dict(_from_torch(tm.state_dict()))
    assert int(hm.num_batches_tracked.numpy()) == 2
    x = rand((2, 3, 3, 3), 5).astype(np.float32)
    for mode in ("eval", "train", "train", "eval"):
        tm.train(mode == "train")
        hm.train(mode == "train")
        np.testing.assert_allclose(hm(hybrid.tensor(x)).detach().numpy(),
                                   tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
        for k, v in tm.state_dict().items():
            np.testing.assert_allclose(hm.state_dict()[k].numpy(), v.numpy(), rtol=1e-6,
                                       atol=1e-7, err_msg=f"{mode}: {k}")


@pytest.mark.parametrize("make", [
    lambda nn_: nn_.BatchNorm1d(3, eps=1e-3, momentum=0.3),
    lambda nn_: nn_.BatchNorm3d(3),
    lambda nn_: nn_.BatchNorm2d(3, affine=False, track_running_stats=False),
    lambda nn_: nn_.InstanceNorm1d(3, affine=True, track_running_stats=True),
    lambda nn_: nn_.InstanceNorm2d(3),
    lambda nn_: nn_.InstanceNorm2d(3, track_running_stats=True),
    lambda nn_: nn_.GroupNorm(3, 3, affine=False),
    lambda nn_: nn_.GroupNorm(1, 3),
    lambda nn_: nn_.GroupNorm(3, 3, bias=False),
    lambda nn_: nn_.BatchNorm2d(3, momentum=None, bias=False),
    lambda nn_: nn_.LocalResponseNorm(2, alpha=0.1),
])
def test_norm_modules_match_torch(make):
    torch = pytest.importorskip("torch")
    tm, hm = make(torch.nn), make(nn)
    with torch.no_grad():
        for p in tm.parameters():
            p.copy_(torch.tensor(rand(tuple(p.shape), 1)))
    hm.load_state_dict(_from_torch(tm.state_dict()))
    name = type(tm).__name__
    shape = {"BatchNorm1d": (4, 3, 5), "BatchNorm3d": (2, 3, 2, 2, 2),
             "InstanceNorm1d": (3, 5)}.get(name, (2, 3, 3, 4))  # InstanceNorm1d: unbatched
    x = rand(shape, 2).astype(np.float32)
    for mode in (True, True, False):
        tm.train(mode)
        hm.train(mode)
        np.testing.assert_allclose(hm(hybrid.tensor(x)).detach().numpy(),
                                   tm(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(hm.state_dict()[k].numpy(), v.numpy(), rtol=1e-6, atol=1e-6)
    assert repr(hm) == repr(tm)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,words", [
    (lambda x: F.group_norm(x, 4), "divisible by num_groups"),
    (lambda x: F.batch_norm(x[:1, :, :1, :1], None, None, training=True), "more than 1 value"),
    (lambda x: F.batch_norm(x, hybrid.zeros(4), hybrid.ones(4)), "running_mean must have shape"),
    (lambda x: F.batch_norm(x, None, None), "training=False"),
    (lambda x: F.batch_norm(x.long(), None, None, training=True), "floating-point"),
    (lambda x: F.instance_norm(x[:, :, :1, :1]), "more than 1 spatial element"),
    (lambda x: F.batch_norm(x, hybrid.zeros(3), hybrid.ones(3), training=True, momentum=None),
     "momentum must be a float"),
    (lambda x: F.local_response_norm(x[0, 0], 2), "3D or higher"),
    (lambda x: nn.BatchNorm2d(3)(x[0]), "expected 4D input (got 3D input"),
    (lambda x: nn.BatchNorm1d(3)(x), "expected 2D or 3D input (got 4D input"),
    (lambda x: nn.InstanceNorm1d(3, affine=True)(x[:, :2, 0]), "match num_features (3)"),
    (lambda x: nn.GroupNorm(4, 6), "divisible by num_groups"),
])
def test_bad_input_raises_hybrid_error(call, words):
    x = hybrid.zeros(2, 3, 4, 4)
    with pytest.raises(HybridError) as e:
        call(x)
    assert "test_norm.py" in str(e.value) and words in str(e.value), str(e.value)
