"""Convolution and pooling (hybrid/nn/functional_conv.py, hybrid/nn/conv.py): values against
float64 numpy direct loops and PyTorch, gradients against finite differences and PyTorch, the
same forward+backward compiled on both backends against eager, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import gradcheck
from tolerance import assert_matches_eager, fwd_bwd

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.errors import HybridError

# (x shape, weight shape, kwargs): stride / padding / dilation / groups, depthwise included
CONV2D = [
    ((2, 3, 7, 6), (4, 3, 3, 3), {}),
    ((2, 3, 7, 6), (4, 3, 3, 2), {"stride": 2, "padding": 1}),
    ((1, 4, 8, 7), (6, 2, 3, 3), {"stride": (2, 1), "padding": (1, 2), "dilation": 2,
                                  "groups": 2}),
    ((2, 4, 6, 6), (8, 1, 3, 3), {"padding": 1, "groups": 4}),  # depthwise, multiplier 2
    ((1, 2, 6, 5), (3, 2, 2, 3), {"padding": "same", "dilation": (1, 2)}),
    ((1, 2, 6, 5), (3, 2, 3, 3), {"padding": "valid", "stride": 3}),
    ((2, 3, 5, 5), (2, 3, 1, 1), {"bias": False}),
    ((3, 6, 6), (4, 3, 2, 2), {}),  # unbatched
]
CONV1D = [
    ((2, 3, 9), (4, 3, 3), {}),
    ((2, 4, 9), (6, 2, 3), {"stride": 2, "padding": 2, "dilation": 2, "groups": 2}),
    ((1, 3, 8), (3, 1, 4), {"padding": "same", "groups": 3}),
    ((3, 7), (2, 3, 2), {"stride": 3}),
]
# (x shape, kwargs) for max_pool2d and avg_pool2d
POOL2D = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((1, 2, 8, 7), {"kernel_size": (3, 2), "stride": (2, 3), "ceil_mode": True}),
    ((2, 5, 5), {"kernel_size": 2, "stride": 1}),
]


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def split_bias(kw):
    kw = dict(kw)
    return kw.pop("bias", True), kw


# --- float64 numpy direct-loop references ---------------------------------------------------------


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def ref_conv2d(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    s, d = _pair(stride), _pair(dilation)
    kh, kw = w.shape[2:]
    if padding == "valid":
        p = (0, 0, 0, 0)
    elif padding == "same":
        th, tw = d[0] * (kh - 1), d[1] * (kw - 1)
        p = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    else:
        ph, pw = _pair(padding)
        p = (ph, ph, pw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[1]), (p[2], p[3])))
    n = x.shape[0]
    o, cg = w.shape[:2]
    ho = (xp.shape[2] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (xp.shape[3] - d[1] * (kw - 1) - 1) // s[1] + 1
    out = np.zeros((n, o, ho, wo))
    for oc in range(o):
        g = oc // (o // groups)
        for i in range(ho):
            for j in range(wo):
                for ci in range(cg):
                    for a in range(kh):
                        for e in range(kw):
                            out[:, oc, i, j] += (xp[:, g * cg + ci, i * s[0] + a * d[0],
                                                    j * s[1] + e * d[1]] * w[oc, ci, a, e])
        if b is not None:
            out[:, oc] += b[oc]
    return out[0] if unbatched else out


def _windows_ref(n, k, s, p, ceil_mode):
    span = n + 2 * p - (k - 1) - 1
    o = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (o - 1) * s >= n + p:
        o -= 1
    return [(i * s - p, i * s - p + k) for i in range(o)]


def ref_pool2d(x, kind, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True):
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    k = _pair(kernel_size)
    s = _pair(stride) if stride is not None else k
    p = _pair(padding)
    rows = _windows_ref(x.shape[2], k[0], s[0], p[0], ceil_mode)
    cols = _windows_ref(x.shape[3], k[1], s[1], p[1], ceil_mode)
    out = np.zeros(x.shape[:2] + (len(rows), len(cols)))
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            win = x[:, :, max(r0, 0):min(r1, x.shape[2]), max(c0, 0):min(c1, x.shape[3])]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
            else:
                if count_include_pad:
                    div = ((min(r1, x.shape[2] + p[0]) - r0) * (min(c1, x.shape[3] + p[1]) - c0))
                else:
                    div = win.shape[2] * win.shape[3]
                out[:, :, i, j] = win.sum(axis=(2, 3)) / div
    return out[0] if unbatched else out


# --- values and gradients -------------------------------------------------------------------------


def _conv_inputs(xs, ws, bias, seed=0):
    x, w = rand(xs, seed), rand(ws, seed + 1)
    b = rand((ws[0],), seed + 2) if bias else None
    return x, w, b


@pytest.mark.parametrize("xs,ws,kw", CONV2D + [(x, w, dict(k, conv1d=True)) for x, w, k in CONV1D])
def test_conv_matches_numpy_and_finite_differences(xs, ws, kw):
    kw = dict(kw)
    fn = F.conv1d if kw.pop("conv1d", False) else F.conv2d
    bias, kw = split_bias(kw)
    x, w, b = _conv_inputs(xs, ws, bias)
    got = fn(hybrid.tensor(x), hybrid.tensor(w), None if b is None else hybrid.tensor(b), **kw)
    if fn is F.conv1d:
        pad = kw["padding"] if isinstance(kw.get("padding"), str) else (0, kw.get("padding", 0))
        want = ref_conv2d(x[..., None, :], w[:, :, None], b, stride=(1, kw.get("stride", 1)),
                          dilation=(1, kw.get("dilation", 1)), groups=kw.get("groups", 1),
                          padding=pad)[..., 0, :]
    else:
        want = ref_conv2d(x, w, b, **kw)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    inputs = (x, w) if b is None else (x, w, b)
    gradcheck(lambda *t: fn(*t, **kw) if len(t) == 3 else fn(t[0], t[1], None, **kw), *inputs)


@pytest.mark.parametrize("xs,kw", POOL2D)
@pytest.mark.parametrize("kind", ["max", "avg", "avg_no_pad"])
def test_pool2d_matches_numpy_and_finite_differences(xs, kw, kind):
    x = rand(xs)
    if kind == "max":
        fn = lambda t: F.max_pool2d(t, **kw)
        want = ref_pool2d(x, "max", **kw)
    else:
        cip = kind == "avg"
        fn = lambda t: F.avg_pool2d(t, count_include_pad=cip, **kw)
        want = ref_pool2d(x, "avg", count_include_pad=cip, **kw)
    np.testing.assert_allclose(fn(hybrid.tensor(x)).numpy(), want, rtol=1e-12, atol=1e-12)
    gradcheck(fn, x)


@pytest.mark.parametrize("size,out", [((2, 3, 6, 6), (1, 1)), ((1, 2, 7, 5), (3, 2)),
                                      ((1, 2, 7, 5), (None, 4)), ((2, 5, 5), 2)])
def test_adaptive_avg_pool2d_matches_numpy(size, out):
    x = rand(size)
    xb = x if x.ndim == 4 else x[None]
    o = out if isinstance(out, tuple) else (out, out)
    o = (o[0] or xb.shape[2], o[1] or xb.shape[3])
    want = np.zeros(xb.shape[:2] + o)
    for i in range(o[0]):
        r0, r1 = (i * xb.shape[2]) // o[0], -(-((i + 1) * xb.shape[2]) // o[0])
        for j in range(o[1]):
            c0, c1 = (j * xb.shape[3]) // o[1], -(-((j + 1) * xb.shape[3]) // o[1])
            want[:, :, i, j] = xb[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    want = want if x.ndim == 4 else want[0]
    np.testing.assert_allclose(F.adaptive_avg_pool2d(hybrid.tensor(x), out).numpy(), want,
                               rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.adaptive_avg_pool2d(t, out), x)


def test_pool1d_matches_pool2d_on_a_height_one_input():
    x = rand((2, 3, 9))
    t = hybrid.tensor(x)
    for kw in ({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
               {"kernel_size": 2}):
        x4 = hybrid.tensor(x[:, :, None])
        k4 = {"kernel_size": (1, kw["kernel_size"]), "stride": (1, kw.get("stride", kw[
            "kernel_size"])), "padding": (0, kw.get("padding", 0)),
            "ceil_mode": kw.get("ceil_mode", False)}
        np.testing.assert_array_equal(F.max_pool1d(t, **kw).numpy(),
                                      F.max_pool2d(x4, **k4).numpy()[:, :, 0])
        np.testing.assert_array_equal(F.avg_pool1d(t, **kw).numpy(),
                                      F.avg_pool2d(x4, **k4).numpy()[:, :, 0])
    np.testing.assert_allclose(F.adaptive_avg_pool1d(t, 4).numpy(),
                               F.adaptive_avg_pool2d(hybrid.tensor(x[:, :, None]),
                                                     (1, 4)).numpy()[:, :, 0])


# --- against PyTorch ------------------------------------------------------------------------------


def _torch_grads(torch, fn, arrays):
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    cot = rand(tuple(y.shape), 7)
    (y * torch.tensor(cot)).sum().backward()
    return y.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts], cot


def _hybrid_grads(fn, arrays, cot):
    ts = [None if a is None else hybrid.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    (y * hybrid.tensor(cot)).sum().backward()
    return y.detach().numpy(), [None if t is None else t.grad.numpy() for t in ts]


@pytest.mark.parametrize("xs,ws,kw", CONV2D + [(x, w, dict(k, conv1d=True)) for x, w, k in CONV1D])
def test_conv_matches_torch(xs, ws, kw):
    torch = pytest.importorskip("torch")
    kw = dict(kw)
    one = kw.pop("conv1d", False)
    bias, kw = split_bias(kw)
    arrays = [a.astype(np.float32) if a is not None else None for a in _conv_inputs(xs, ws, bias)]
    tf = torch.nn.functional.conv1d if one else torch.nn.functional.conv2d
    hf = F.conv1d if one else F.conv2d
    want, want_g, cot = _torch_grads(torch, lambda x, w, b: tf(x, w, b, **kw), arrays)
    got, got_g = _hybrid_grads(lambda x, w, b: hf(x, w, b, **kw), arrays, cot.astype(np.float32))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for g, wg in zip(got_g, want_g):
        if wg is not None:
            np.testing.assert_allclose(g, wg, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,kw", POOL2D)
@pytest.mark.parametrize("kind", ["max", "avg", "avg_no_pad", "max1d", "avg1d"])
def test_pool_matches_torch(xs, kw, kind):
    torch = pytest.importorskip("torch")
    tf, hf = torch.nn.functional, F
    kw = dict(kw)
    x = rand(xs).astype(np.float32)
    if kind.endswith("1d"):
        x = x.reshape(x.shape[:-2] + (-1,))
        kw = {k: (v[0] if isinstance(v, tuple) else v) for k, v in kw.items()}
    name = ("max_pool" if kind.startswith("max") else "avg_pool") + ("1d" if "1d" in kind else "2d")
    if kind == "avg_no_pad":
        kw["count_include_pad"] = False
    want, (want_g,), cot = _torch_grads(torch, lambda t: getattr(tf, name)(t, **kw), [x])
    got, (got_g,) = _hybrid_grads(lambda t: getattr(hf, name)(t, **kw), [x], cot)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kw", [{"kernel_size": 3, "stride": 2, "dilation": 2},
                                {"kernel_size": 2, "dilation": (2, 1), "ceil_mode": True,
                                 "padding": 1}])
def test_max_pool2d_dilation_matches_torch(kw):
    torch = pytest.importorskip("torch")
    x = rand((2, 3, 9, 8)).astype(np.float32)
    want, (want_g,), cot = _torch_grads(torch, lambda t: torch.nn.functional.max_pool2d(t, **kw),
                                        [x])
    got, (got_g,) = _hybrid_grads(lambda t: F.max_pool2d(t, **kw), [x], cot)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6)


def test_adaptive_avg_pool2d_and_divisor_override_match_torch():
    torch = pytest.importorskip("torch")
    x = rand((2, 3, 11, 7)).astype(np.float32)
    for out in [(1, 1), (4, 3), (5, 7), 2]:
        np.testing.assert_allclose(F.adaptive_avg_pool2d(hybrid.tensor(x), out).numpy(),
                                   torch.nn.functional.adaptive_avg_pool2d(torch.tensor(x),
                                                                           out).numpy(),
                                   rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(F.avg_pool2d(hybrid.tensor(x), 3, 2, 1, divisor_override=5).numpy(),
                               torch.nn.functional.avg_pool2d(torch.tensor(x), 3, 2, 1,
                                                              divisor_override=5).numpy(),
                               rtol=1e-6, atol=1e-6)


# --- compiled forward + backward vs eager ---------------------------------------------------------


@pytest.mark.parametrize("xs,ws,kw", CONV2D[:6] + [(x, w, dict(k, conv1d=True))
                                                   for x, w, k in CONV1D[1:3]])
def test_conv_compiled_matches_eager(compiled_backend, xs, ws, kw):
    kw = dict(kw)
    fn = F.conv1d if kw.pop("conv1d", False) else F.conv2d
    x, w, b = (hybrid.tensor(a.astype(np.float32)) for a in _conv_inputs(xs, ws, True))
    cot = hybrid.tensor(rand(tuple(fn(x, w, b, **kw).shape), 3).astype(np.float32))
    step = fwd_bwd(lambda x, w, b: fn(x, w, b, **kw), 3)
    want = step(x, w, b, cot)
    got = hybrid.compile(step)(x, w, b, cot)
    for g, e in zip(got, want):
        assert_matches_eager(g, e)


@pytest.mark.parametrize("xs,kw", POOL2D[1:4])
def test_pools_compiled_match_eager(compiled_backend, xs, kw):
    x = hybrid.tensor(rand(xs).astype(np.float32))

    def fn(t):
        return (F.max_pool2d(t, **kw) + F.avg_pool2d(t, **kw)
                + F.avg_pool2d(t, count_include_pad=False, **kw))

    cot = hybrid.tensor(rand(tuple(fn(x).shape), 3).astype(np.float32))
    step = fwd_bwd(fn, 1)
    for g, e in zip(hybrid.compile(step)(x, cot), step(x, cot)):
        assert_matches_eager(g, e)
    ad = fwd_bwd(lambda t: F.adaptive_avg_pool2d(t, (3, 2)) + F.adaptive_avg_pool2d(t, 1), 1)
    cot = hybrid.tensor(rand((1, 2, 3, 2), 4).astype(np.float32))
    x = hybrid.tensor(rand((1, 2, 7, 5)).astype(np.float32))
    for g, e in zip(hybrid.compile(ad)(x, cot), ad(x, cot)):
        assert_matches_eager(g, e)


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2 = nn.Linear(16 * 5 * 5, 32), nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(hybrid.flatten(x, 1))))


def test_lenet_training_step_compiled_matches_eager(compiled_backend):
    def run(compiled):
        hybrid.manual_seed(0)
        net = LeNet()
        opt = hybrid.optim.SGD(net.parameters(), lr=0.05)
        x = hybrid.tensor(rand((4, 1, 32, 32)).astype(np.float32))
        target = hybrid.tensor(np.array([1, 3, 5, 7]))

        def step(x, target):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), target)
            loss.backward()
            opt.step()
            return loss.detach()

        step = hybrid.compile(step) if compiled else step
        losses = [step(x, target) for _ in range(3)]
        return losses, [p.detach() for p in net.parameters()]

    (el, ep), (cl, cp) = run(False), run(True)
    assert float(el[-1]) < float(el[0])
    for g, e in zip(cl + cp, el + ep):
        if hybrid.config.backend == "interpreter":
            assert_matches_eager(g, e)
        else:
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-5)


# --- modules --------------------------------------------------------------------------------------


def test_conv_modules_have_pytorch_shapes_and_init():
    hybrid.manual_seed(0)
    m = nn.Conv2d(3, 64, (5, 3), stride=2, groups=1)
    assert m.weight.shape == (64, 3, 5, 3) and m.bias.shape == (64,)
    bound = 1 / math.sqrt(3 * 5 * 3)
    for p in (m.weight, m.bias):
        a = np.abs(p.detach().numpy())
        assert a.max() <= bound and a.max() > 0.9 * bound
    d = nn.Conv1d(4, 8, 3, groups=4, bias=False)
    assert d.weight.shape == (8, 1, 3) and d.bias is None
    assert [n for n, _ in m.named_parameters()] == ["weight", "bias"]
    x = hybrid.tensor(rand((2, 3, 9, 9)).astype(np.float32))
    np.testing.assert_array_equal(m(x).detach().numpy(),
                                  F.conv2d(x, m.weight, m.bias, 2).detach().numpy())
    assert m(x).shape == (2, 64, 3, 4)
    assert "Conv2d(3, 64, kernel_size=(5, 3), stride=(2, 2))" == repr(m)


def test_pool_and_dropout_modules():
    x = hybrid.tensor(rand((2, 3, 6, 6)).astype(np.float32))
    np.testing.assert_array_equal(nn.MaxPool2d(2)(x).numpy(), F.max_pool2d(x, 2).numpy())
    np.testing.assert_array_equal(nn.AvgPool2d(3, 1, 1)(x).numpy(), F.avg_pool2d(x, 3, 1,
                                                                                 1).numpy())
    np.testing.assert_array_equal(nn.AdaptiveAvgPool2d((1, 1))(x).numpy(),
                                  F.adaptive_avg_pool2d(x, 1).numpy())
    x1 = hybrid.reshape(x, (2, 3, 36))
    np.testing.assert_array_equal(nn.MaxPool1d(3)(x1).numpy(), F.max_pool1d(x1, 3).numpy())
    np.testing.assert_array_equal(nn.AvgPool1d(3)(x1).numpy(), F.avg_pool1d(x1, 3).numpy())
    hybrid.manual_seed(1)
    drop = nn.Dropout2d(0.5)
    y = drop(hybrid.tensor(np.ones((8, 16, 3, 3), np.float32))).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert set(np.unique(per_channel)) <= {0.0, 2.0}
    assert (per_channel.min(-1) == per_channel.max(-1)).all()  # whole channels dropped
    assert 0.2 < (per_channel[..., 0] == 0).mean() < 0.8
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda x, w: F.conv2d(x, hybrid.zeros(4, 2, 3, 3)),  # 3 input channels, weight wants 2
    lambda x, w: F.conv2d(x, hybrid.zeros(4, 1, 3, 3), groups=2),  # 2 does not divide 3
    lambda x, w: F.conv2d(x, w, stride=2, padding="same"),
    lambda x, w: F.conv2d(x, w, padding="full"),
    lambda x, w: F.conv2d(x, hybrid.zeros(4, 3, 9, 9)),  # kernel larger than the input
    lambda x, w: F.conv2d(x, w, bias=hybrid.zeros(5)),
    lambda x, w: F.conv2d(hybrid.zeros(3, 8, dtype=hybrid.float32), w),
    lambda x, w: F.conv2d(x.long(), w),
    lambda x, w: F.conv1d(x, w),
    lambda x, w: nn.Conv2d(3, 4, 3, padding_mode="mirror"),
    lambda x, w: F.max_pool2d(x, 2, padding=2),
    lambda x, w: F.avg_pool2d(x, 0),
    lambda x, w: nn.Conv2d(3, 4, 3, groups=2),
    lambda x, w: F.dropout2d(x, 1.5),
])
def test_bad_input_raises_hybrid_error(call):
    x = hybrid.zeros(2, 3, 6, 6)
    w = hybrid.zeros(4, 3, 3, 3)
    with pytest.raises(HybridError) as e:
        call(x, w)
    assert "test_conv.py" in str(e.value)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dims", [1, 2])
def test_conv_output_is_row_major_so_view_flattens_it(compiled_backend, bias, dims):
    # PyTorch's LeNet tutorial: conv -> relu -> pool -> x.view(-1, 16 * 6 * 6); a conv result
    # is row-major NCHW in eager (as PyTorch's) and a view of it is allowed when compiled too
    rng = np.random.default_rng(7)
    shape = (2, 3, 9) if dims == 1 else (2, 3, 8, 7)
    x = hybrid.tensor(rng.standard_normal(shape).astype(np.float32))
    hybrid.manual_seed(0)
    conv = (nn.Conv1d if dims == 1 else nn.Conv2d)(3, 4, 3, padding=1, bias=bias)

    def f(x):
        y = conv(x)
        return y.view(2, -1), F.relu(y).view(-1)

    y = conv(x)
    assert y.is_contiguous()
    flat, flat_relu = f(x)
    yn = y.detach().numpy()
    np.testing.assert_array_equal(flat.detach().numpy(), yn.reshape(2, -1))
    np.testing.assert_array_equal(flat_relu.detach().numpy(), np.maximum(yn, 0).reshape(-1))
    got = hybrid.compile(f)(x)
    for g, e in zip(got, (flat, flat_relu)):
        assert_matches_eager(g, e)


def test_traced_contiguous_after_a_transpose_allows_view(compiled_backend):
    x = hybrid.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    with pytest.raises(HybridError, match="view"):
        x.t().view(-1)
    f = hybrid.compile(lambda x: x.t().contiguous().view(-1) * 2)
    np.testing.assert_array_equal(f(x).numpy(), x.numpy().T.reshape(-1) * 2)
    g = hybrid.compile(lambda x: x.contiguous().view(-1) + 1)  # already row-major: x itself
    np.testing.assert_array_equal(g(x).numpy(), x.numpy().reshape(-1) + 1)
