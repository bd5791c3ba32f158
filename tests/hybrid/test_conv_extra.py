"""conv3d, transposed convolutions, padding modes and the pooling extras (functional_convnd.py,
functional_pool.py, conv.py): values against float64 numpy direct loops and PyTorch, gradients
against finite differences and PyTorch, forward+backward compiled on both backends against
eager, state_dict loading from torch modules, and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from gradcheck import gradcheck
from tolerance import assert_matches_eager, fwd_bwd

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.errors import HybridError


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _tup(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


# --- float64 numpy direct-loop references ---------------------------------------------------------


def ref_conv3d(x, w, b, stride=1, padding=0, dilation=1, groups=1):
    """Gather form: every output cell sums its (dilated, strided) window."""
    s, d = _tup(stride, 3), _tup(dilation, 3)
    k = w.shape[2:]
    if padding == "same":
        tot = [d[i] * (k[i] - 1) for i in range(3)]
        pads = [(t // 2, t - t // 2) for t in tot]
    else:
        pads = [(p, p) for p in _tup(padding, 3)]
    xp = np.pad(x, [(0, 0), (0, 0)] + pads)
    o, cg = w.shape[:2]
    out_sz = [(xp.shape[2 + i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(3)]
    y = np.zeros((x.shape[0], o) + tuple(out_sz))
    for oc in range(o):
        g = oc // (o // groups)
        for pos in itertools.product(*map(range, out_sz)):
            for off in itertools.product(*map(range, k)):
                idx = tuple(pos[i] * s[i] + off[i] * d[i] for i in range(3))
                y[(slice(None), oc) + pos] += xp[(slice(None), slice(g * cg, (g + 1) * cg))
                                                 + idx] @ w[(oc, slice(None)) + off]
        if b is not None:
            y[:, oc] += b[oc]
    return y


def ref_conv_transpose(x, w, b, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Scatter form (the definition): every input cell adds x * w into the output it touches."""
    n = x.ndim - 2
    s, p, op, d = (_tup(v, n) for v in (stride, padding, output_padding, dilation))
    k = w.shape[2:]
    cin, og = w.shape[:2]
    cg = cin // groups
    full = [(x.shape[2 + i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 + op[i] for i in range(n)]
    y = np.zeros((x.shape[0], og * groups) + tuple(full))
    for c in range(cin):
        g = c // cg
        for pos in itertools.product(*map(range, x.shape[2:])):
            for off in itertools.product(*map(range, k)):
                idx = tuple(pos[i] * s[i] + off[i] * d[i] for i in range(n))
                y[(slice(None), slice(g * og, (g + 1) * og)) + idx] += (
                    x[(slice(None), c) + pos][:, None] * w[(c, slice(None)) + off][None])
    y = y[(slice(None), slice(None)) + tuple(slice(p[i], full[i] - p[i]) for i in range(n))]
    return y if b is None else y + b.reshape((1, -1) + (1,) * n)


def ref_max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """(values, PyTorch's flat indices per plane) of an n-d max pool, first maximum wins."""
    n = x.ndim - 2
    k = _tup(kernel_size, n)
    s = _tup(stride, n) if stride is not None else k
    p, d = _tup(padding, n), _tup(dilation, n)
    sizes = x.shape[2:]
    out = []
    for i in range(n):
        span = sizes[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        o = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= sizes[i] + p[i]:
            o -= 1
        out.append(o)
    vals = np.zeros(x.shape[:2] + tuple(out))
    idx = np.zeros(x.shape[:2] + tuple(out), dtype=np.int64)
    for nc in itertools.product(range(x.shape[0]), range(x.shape[1])):
        for pos in itertools.product(*map(range, out)):
            best, where = -np.inf, -1
            for off in itertools.product(*map(range, k)):
                c = [pos[i] * s[i] - p[i] + off[i] * d[i] for i in range(n)]
                if all(0 <= c[i] < sizes[i] for i in range(n)) and x[nc + tuple(c)] > best:
                    best, where = x[nc + tuple(c)], int(np.ravel_multi_index(c, sizes))
            vals[nc + pos], idx[nc + pos] = best, where
    return vals, idx


def ref_avg_pool3d(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    k = _tup(kernel_size, 3)
    s, p = (_tup(stride, 3) if stride is not None else k), _tup(padding, 3)
    out = [(x.shape[2 + i] + 2 * p[i] - k[i]) // s[i] + 1 for i in range(3)]
    y = np.zeros(x.shape[:2] + tuple(out))
    for pos in itertools.product(*map(range, out)):
        lo = [pos[i] * s[i] - p[i] for i in range(3)]
        hi = [min(lo[i] + k[i], x.shape[2 + i] + p[i]) for i in range(3)]
        cl = [slice(max(lo[i], 0), min(hi[i], x.shape[2 + i])) for i in range(3)]
        win = x[(slice(None), slice(None)) + tuple(cl)]
        div = math.prod(hi[i] - lo[i] for i in range(3)) if count_include_pad else \
            math.prod(win.shape[2:])
        y[(slice(None), slice(None)) + pos] = win.sum(axis=(2, 3, 4)) / div
    return y


def ref_adaptive_max_pool2d(x, out):
    h, w = x.shape[2:]
    vals = np.zeros(x.shape[:2] + out)
    idx = np.zeros(x.shape[:2] + out, dtype=np.int64)
    for i, j in itertools.product(range(out[0]), range(out[1])):
        r0, r1 = (i * h) // out[0], -(-((i + 1) * h) // out[0])
        c0, c1 = (j * w) // out[1], -(-((j + 1) * w) // out[1])
        win = x[:, :, r0:r1, c0:c1].reshape(x.shape[:2] + (-1,))
        a = win.argmax(-1)  # numpy: the first maximum
        vals[:, :, i, j] = win.max(-1)
        idx[:, :, i, j] = (r0 + a // (c1 - c0)) * w + c0 + a % (c1 - c0)
    return vals, idx


# --- values and gradients -------------------------------------------------------------------------

CONV3D = [
    ((1, 2, 4, 5, 4), (3, 2, 2, 3, 2), {"stride": (2, 1, 2), "padding": (1, 0, 1)}),
    ((2, 4, 4, 4, 3), (4, 2, 3, 2, 2), {"dilation": (1, 2, 1), "groups": 2, "padding": 1}),
    ((1, 2, 4, 4, 4), (2, 2, 2, 3, 2), {"padding": "same", "dilation": (2, 1, 1)}),
]
TRANSPOSED = [  # (x shape, weight shape, kwargs)
    ((2, 3, 4), (3, 2, 3), {"stride": 2, "padding": 1, "output_padding": 1}),
    ((1, 4, 5), (4, 1, 2), {"stride": 3, "groups": 2, "dilation": 2, "output_padding": 2}),
    ((1, 2, 3, 4), (2, 3, 3, 2), {"stride": (2, 1), "padding": (1, 0)}),
    ((2, 4, 3, 3), (4, 1, 2, 3), {"stride": 2, "padding": (0, 2), "output_padding": (1, 0),
                                  "groups": 2, "dilation": (1, 2)}),
    ((2, 3, 3), (2, 3, 2, 2), {}),  # unbatched 2-d
    ((1, 2, 2, 3, 2), (2, 2, 2, 2, 2), {"stride": (2, 1, 2), "padding": (0, 1, 0),
                                        "output_padding": (1, 0, 0)}),
]
TRANSPOSED_FN = {3: F.conv_transpose1d, 4: F.conv_transpose2d, 5: F.conv_transpose3d}


def _fn_of(xs, ws):
    return TRANSPOSED_FN[len(ws)]


@pytest.mark.parametrize("xs,ws,kw", CONV3D)
def test_conv3d_matches_numpy_and_finite_differences(xs, ws, kw):
    x, w, b = rand(xs), rand(ws, 1), rand((ws[0],), 2)
    got = F.conv3d(hybrid.tensor(x), hybrid.tensor(w), hybrid.tensor(b), **kw).numpy()
    np.testing.assert_allclose(got, ref_conv3d(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    gradcheck(lambda *t: F.conv3d(*t, **kw), x, w, b)


@pytest.mark.parametrize("xs,ws,kw", TRANSPOSED)
def test_conv_transpose_matches_numpy_and_finite_differences(xs, ws, kw):
    fn = _fn_of(xs, ws)
    x, w, b = rand(xs), rand(ws, 1), rand((ws[1] * kw.get("groups", 1),), 2)
    got = fn(hybrid.tensor(x), hybrid.tensor(w), hybrid.tensor(b), **kw).numpy()
    batched = len(xs) == len(ws)
    want = ref_conv_transpose(x if batched else x[None], w, b, **kw)
    np.testing.assert_allclose(got, want if batched else want[0], rtol=1e-12, atol=1e-12)
    if len(ws) < 5:
        gradcheck(lambda *t: fn(*t, **kw), x, w, b)


MAXPOOL = [  # (x shape, kwargs); 1-d, 2-d and 3-d
    ((2, 2, 9), {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}),
    ((2, 7), {"kernel_size": 2, "dilation": 2}),
    ((1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((2, 1, 8, 7), {"kernel_size": (3, 2), "stride": (2, 3), "dilation": (2, 1),
                    "ceil_mode": True, "padding": (1, 1)}),
    ((1, 2, 4, 5, 4), {"kernel_size": (2, 3, 2), "stride": (1, 2, 2), "padding": (1, 1, 0)}),
    ((1, 1, 5, 4, 5), {"kernel_size": 2, "dilation": (2, 1, 1), "ceil_mode": True}),
]
MAXPOOL_FN = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _dims(xs, kw):
    k = kw["kernel_size"]
    return len(k) if isinstance(k, tuple) else (1 if len(xs) <= 3 else len(xs) - 2)


@pytest.mark.parametrize("xs,kw", MAXPOOL)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool_indices_match_numpy(xs, kw, ties):
    fn = MAXPOOL_FN[_dims(xs, kw)]
    x = np.random.default_rng(3).integers(0, 3, xs).astype(np.float64) if ties else rand(xs)
    vals, idx = fn(hybrid.tensor(x), return_indices=True, **kw)
    batched = len(xs) == _dims(xs, kw) + 2
    want_v, want_i = ref_max_pool(x if batched else x[None], **kw)
    want_v, want_i = (want_v, want_i) if batched else (want_v[0], want_i[0])
    assert idx.dtype == hybrid.int64
    np.testing.assert_array_equal(idx.numpy(), want_i)
    np.testing.assert_array_equal(vals.numpy(), want_v)
    np.testing.assert_array_equal(fn(hybrid.tensor(x), **kw).numpy(), want_v)
    if not ties:
        gradcheck(lambda t: fn(t, return_indices=True, **kw)[0], x)


@pytest.mark.parametrize("kw", [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
                                {"kernel_size": (2, 3, 2), "stride": 1, "padding": (1, 1, 0),
                                 "count_include_pad": False}])
def test_avg_pool3d_matches_numpy_and_finite_differences(kw):
    x = rand((1, 2, 4, 5, 4))
    got = F.avg_pool3d(hybrid.tensor(x), **kw).numpy()
    np.testing.assert_allclose(got, ref_avg_pool3d(x, **kw), rtol=1e-12, atol=1e-12)
    gradcheck(lambda t: F.avg_pool3d(t, **kw), x)


@pytest.mark.parametrize("xs,out", [((1, 2, 7, 5), (3, 2)), ((2, 1, 5, 6), (5, 4)),
                                    ((1, 2, 4, 6), (None, 4)), ((2, 5, 5), 2)])
@pytest.mark.parametrize("ties", [False, True])
def test_adaptive_max_pool2d_matches_numpy(xs, out, ties):
    x = np.random.default_rng(4).integers(0, 3, xs).astype(np.float64) if ties else rand(xs)
    xb = x if x.ndim == 4 else x[None]
    o = _tup(out, 2)
    o = (o[0] or xb.shape[2], o[1] or xb.shape[3])
    want_v, want_i = ref_adaptive_max_pool2d(xb, o)
    vals, idx = F.adaptive_max_pool2d(hybrid.tensor(x), out, return_indices=True)
    want_v, want_i = (want_v, want_i) if x.ndim == 4 else (want_v[0], want_i[0])
    np.testing.assert_array_equal(idx.numpy(), want_i)
    np.testing.assert_array_equal(vals.numpy(), want_v)
    if not ties:
        gradcheck(lambda t: F.adaptive_max_pool2d(t, out), x)
    one_v, one_i = F.adaptive_max_pool1d(hybrid.tensor(xb[:, :, 0]), o[1], return_indices=True)
    w1_v, w1_i = ref_adaptive_max_pool2d(xb[:, :, :1], (1, o[1]))
    np.testing.assert_array_equal(one_i.numpy(), w1_i[:, :, 0])
    np.testing.assert_array_equal(one_v.numpy(), w1_v[:, :, 0])


NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_match_numpy_conv(mode):
    x = rand((2, 2, 5, 6))
    m = nn.Conv2d(2, 3, (3, 2), padding=(2, 1), padding_mode=mode, dtype=hybrid.float64)
    w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
    xp = np.pad(x, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=NP_MODE[mode])
    want = ref_conv3d(xp[:, :, None], w[:, :, None], b)[:, :, 0]
    np.testing.assert_allclose(m(hybrid.tensor(x)).detach().numpy(), want, rtol=1e-12,
                               atol=1e-12)
    gradcheck(m, x[:1])
    m1 = nn.Conv1d(2, 2, 3, padding="same", dilation=2, padding_mode=mode, dtype=hybrid.float64)
    x1 = rand((1, 2, 5), 1)
    xp1 = np.pad(x1, ((0, 0), (0, 0), (2, 2)), mode=NP_MODE[mode])
    want1 = ref_conv3d(xp1[:, :, None, None], m1.weight.detach().numpy()[:, :, None, None],
                       m1.bias.detach().numpy(), dilation=(1, 1, 2))[:, :, 0, 0]
    np.testing.assert_allclose(m1(hybrid.tensor(x1)).detach().numpy(), want1, rtol=1e-12,
                               atol=1e-12)


# --- against PyTorch ------------------------------------------------------------------------------


def _grads(lib, fn, arrays, cot=None):
    """(output, input grads, cotangent) of sum(fn(*arrays) * cot) with torch or hybrid."""
    ts = [lib.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*ts)
    y = y[0] if isinstance(y, tuple) else y
    cot = rand(tuple(y.shape), 7).astype(arrays[0].dtype) if cot is None else cot
    (y * lib.tensor(cot)).sum().backward()
    return y.detach().numpy(), [t.grad.numpy() for t in ts], cot


@pytest.mark.parametrize("name,case", [("conv3d", c) for c in CONV3D] + [
    (f"conv_transpose{len(c[1]) - 2}d", c) for c in TRANSPOSED])
def test_conv3d_and_transposed_match_torch(name, case):
    torch = pytest.importorskip("torch")
    xs, ws, kw = case
    tf = torch.nn.functional
    c_out = ws[0] if name == "conv3d" else ws[1] * kw.get("groups", 1)
    names = (name, name)
    arrays = [rand(xs).astype(np.float32), rand(ws, 1).astype(np.float32),
              rand((c_out,), 2).astype(np.float32)]
    want, want_g, cot = _grads(torch, lambda *t: getattr(tf, names[0])(*t, **kw), arrays)
    got, got_g, _ = _grads(hybrid, lambda *t: getattr(F, names[1])(*t, **kw), arrays, cot)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for g, w in zip(got_g, want_g):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs,kw", MAXPOOL)
def test_max_pool_with_indices_matches_torch(xs, kw):
    torch = pytest.importorskip("torch")
    name = f"max_pool{_dims(xs, kw)}d"
    x = rand(xs).astype(np.float32)
    want_i = getattr(torch.nn.functional, name)(torch.tensor(x), return_indices=True, **kw)[1]
    got_i = getattr(F, name)(hybrid.tensor(x), return_indices=True, **kw)[1]
    np.testing.assert_array_equal(got_i.numpy(), want_i.numpy())
    want, (want_g,), cot = _grads(torch, lambda t: getattr(torch.nn.functional, name)(
        t, return_indices=True, **kw), [x])
    got, (got_g,), _ = _grads(hybrid, lambda t: getattr(F, name)(t, return_indices=True, **kw),
                              [x], cot)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6)


def test_pool3d_and_adaptive_max_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x3 = rand((2, 2, 5, 6, 5)).astype(np.float32)
    for kw in ({"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True},
               {"kernel_size": (2, 3, 2), "stride": (1, 2, 2), "count_include_pad": False,
                "padding": 1},
               {"kernel_size": 2, "divisor_override": 3}):
        want, (want_g,), cot = _grads(torch, lambda t, kw=kw: tf.avg_pool3d(t, **kw), [x3])
        got, (got_g,), _ = _grads(hybrid, lambda t, kw=kw: F.avg_pool3d(t, **kw), [x3], cot)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6)
    x = rand((2, 3, 11, 7)).astype(np.float32)
    for out in [(4, 3), (None, 5), 2, (11, 7)]:
        want, (want_g,), cot = _grads(torch, lambda t, out=out: tf.adaptive_max_pool2d(t, out), [x])
        got, (got_g,), _ = _grads(hybrid, lambda t, out=out: F.adaptive_max_pool2d(t, out), [x],
                                  cot)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_allclose(got_g, want_g, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(
            F.adaptive_max_pool2d(hybrid.tensor(x), out, True)[1].numpy(),
            tf.adaptive_max_pool2d(torch.tensor(x), out, True)[1].numpy())
    x1 = x.reshape(2, 3, 77)
    np.testing.assert_array_equal(F.adaptive_max_pool1d(hybrid.tensor(x1), 9, True)[1].numpy(),
                                  tf.adaptive_max_pool1d(torch.tensor(x1), 9, True)[1].numpy())


MODULES = [  # (name, args, kwargs, x shape)
    ("Conv3d", (4, 6, 3), {"stride": (1, 2, 1), "padding": 1, "groups": 2}, (1, 4, 4, 5, 4)),
    ("Conv3d", (2, 3, (2, 3, 2)), {"padding": (1, 2, 0), "padding_mode": "reflect"},
     (1, 2, 4, 4, 3)),
    ("Conv2d", (2, 3, 3), {"padding": 2, "padding_mode": "circular", "bias": False},
     (2, 2, 5, 6)),
    ("Conv2d", (2, 4, (3, 2)), {"padding": "same", "padding_mode": "replicate",
                                "dilation": (1, 2)}, (2, 2, 5, 6)),
    ("Conv1d", (3, 3, 3), {"padding": 1, "padding_mode": "reflect", "groups": 3}, (2, 3, 7)),
    ("ConvTranspose1d", (4, 6, 3), {"stride": 3, "padding": 1, "groups": 2}, (2, 4, 5)),
    ("ConvTranspose2d", (4, 6, 3), {"stride": 2, "padding": 1, "output_padding": 1,
                                    "dilation": 2}, (2, 4, 4, 5)),
    ("ConvTranspose3d", (2, 3, 2), {"stride": 2, "bias": False}, (1, 2, 2, 3, 2)),
]


@pytest.mark.parametrize("name,args,kw,xs", MODULES)
def test_modules_load_torch_state_dict_and_match(name, args, kw, xs):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(*args, **kw)
    hm = getattr(nn, name)(*args, **kw)
    assert [(k, tuple(p.shape)) for k, p in hm.named_parameters()] == [
        (k, tuple(p.shape)) for k, p in tm.named_parameters()]
    assert repr(hm) == repr(tm)
    hm.load_state_dict({k: hybrid.tensor(v.numpy()) for k, v in tm.state_dict().items()})
    x = rand(xs).astype(np.float32)
    want, want_g, cot = _grads(torch, tm, [x])
    got, got_g, _ = _grads(hybrid, hm, [x], cot)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_g[0], want_g[0], rtol=1e-4, atol=1e-4)
    if name.startswith("ConvTranspose"):  # output_size picks the output_padding
        n = len(xs) - 2
        full = tuple(tm(torch.tensor(x)).shape)
        size = [full[2 + i] + (kw.get("stride", 1) > 1 and not kw.get("output_padding"))
                for i in range(n)]
        want = tm(torch.tensor(x), output_size=size).detach().numpy()
        got = hm(hybrid.tensor(x), output_size=full[:2] + tuple(size)).detach().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_pool_modules_match_torch():
    torch = pytest.importorskip("torch")
    x = rand((2, 3, 5, 6, 5)).astype(np.float32)
    for name, args, kw in [("MaxPool3d", (3, 2, 1), {"return_indices": True}),
                           ("AvgPool3d", (2,), {"ceil_mode": True}),
                           ("MaxPool2d", (2,), {"return_indices": True}),
                           ("AdaptiveMaxPool2d", ((3, 4),), {"return_indices": True}),
                           ("AdaptiveMaxPool1d", (4,), {})]:
        t = x.reshape({"3d": (2, 3, 5, 6, 5), "2d": (2, 15, 6, 5), "1d": (2, 15, 30)}[name[-2:]])
        tm, hm = getattr(torch.nn, name)(*args, **kw), getattr(nn, name)(*args, **kw)
        assert repr(hm) == repr(tm)
        want, got = tm(torch.tensor(t)), hm(hybrid.tensor(t))
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(g.numpy(), w.numpy())


def test_transposed_init_uses_pytorch_fan_in():
    hybrid.manual_seed(0)
    m = nn.ConvTranspose2d(64, 6, (3, 2), groups=2)
    assert m.weight.shape == (64, 3, 3, 2) and m.bias.shape == (6,)
    bound = 1 / math.sqrt(3 * 3 * 2)  # fan_in of the weight: out_channels / groups * k
    for p in (m.weight, m.bias):
        a = np.abs(p.detach().numpy())
        assert a.max() <= bound and a.max() > 0.8 * bound


# --- compiled forward + backward vs eager ---------------------------------------------------------


def _check_compiled(fn, arrays):
    ts = [hybrid.tensor(a.astype(np.float32)) for a in arrays]
    cot = hybrid.tensor(rand(tuple(fn(*ts).shape), 3).astype(np.float32))
    step = fwd_bwd(fn, len(ts))
    for g, e in zip(hybrid.compile(step)(*ts, cot), step(*ts, cot)):
        assert_matches_eager(g, e)


@pytest.mark.parametrize("case", [0, 1, 2])
def test_convs_compiled_match_eager(compiled_backend, case):
    if case == 0:
        xs, ws, kw = CONV3D[1]
        _check_compiled(lambda x, w, b: F.conv3d(x, w, b, **kw),
                        [rand(xs), rand(ws, 1), rand((ws[0],), 2)])
    elif case == 1:
        (xs, ws, kw), (xs1, ws1, kw1) = TRANSPOSED[3], TRANSPOSED[1]
        _check_compiled(lambda x, w, b, x1, w1: hybrid.cat([
            F.conv_transpose2d(x, w, b, **kw).reshape(-1),
            F.conv_transpose1d(x1, w1, **kw1).reshape(-1)]),
                        [rand(xs), rand(ws, 1), rand((2,), 2), rand(xs1, 3), rand(ws1, 4)])
    else:
        hybrid.manual_seed(0)
        reflect = nn.Conv2d(2, 3, 3, padding=2, padding_mode="reflect")
        circular = nn.Conv2d(2, 3, (2, 3), padding="same", padding_mode="circular")
        _check_compiled(lambda x: reflect(x)[:, :, 1:-1, 1:-1] + circular(x), [rand((2, 2, 5, 6))])


def test_pools_with_indices_compiled_match_eager(compiled_backend):
    def fn(x, x3):
        v, i = F.max_pool2d(x, 3, 2, 1, return_indices=True)
        a, j = F.adaptive_max_pool2d(x, (2, 3), return_indices=True)
        m3, k = F.max_pool3d(x3, 2, return_indices=True)
        return v, i, a, j, m3 + F.avg_pool3d(x3, 3, 2, 1, count_include_pad=False), k

    x = hybrid.tensor(rand((1, 2, 5, 7)).astype(np.float32))
    x3 = hybrid.tensor(rand((1, 2, 4, 4, 4)).astype(np.float32))
    for g, e in zip(hybrid.compile(fn)(x, x3), fn(x, x3)):
        assert_matches_eager(g, e)
    _check_compiled(lambda t: F.adaptive_max_pool2d(t, (3, 2)) + F.max_pool2d(t, 2, 1)[:, :, :3,
                                                                                       :2],
                    [rand((1, 2, 4, 3))])


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("call", [
    lambda x: F.conv3d(x, hybrid.zeros(4, 2, 3, 3, 3)),  # 3 input channels, weight wants 2
    lambda x: F.conv3d(x, hybrid.zeros(4, 1, 3, 3, 3), groups=2),  # 2 does not divide 3
    lambda x: F.conv3d(x, hybrid.zeros(4, 3, 6, 3, 3)),  # kernel deeper than the input
    lambda x: F.conv3d(x, hybrid.zeros(4, 3, 3, 3, 9)),  # kernel wider than the input
    lambda x: F.conv3d(x, hybrid.zeros(4, 3, 3, 3)),  # 4-d weight
    lambda x: F.conv3d(x, hybrid.zeros(4, 3, 3, 3, 3), stride=2, padding="same"),
    lambda x: F.conv3d(x, hybrid.zeros(4, 3, 1, 1, 1, dtype=hybrid.float64)),
    lambda x: F.conv_transpose2d(x[:, :, 0], hybrid.zeros(2, 4, 3, 3)),  # in_channels first
    lambda x: F.conv_transpose2d(x[:, :, 0], hybrid.zeros(3, 4, 3, 3), stride=2,
                                 output_padding=2),
    lambda x: F.conv_transpose1d(x[:, :, 0, 0], hybrid.zeros(3, 4, 3), bias=hybrid.zeros(3)),
    lambda x: F.conv_transpose2d(x[:, :, 0], hybrid.zeros(3, 2, 3, 3), padding="same"),
    lambda x: F.conv_transpose1d(x[:, :, 0, 0], hybrid.zeros(3, 2, 2), padding=4),
    lambda x: F.adaptive_max_pool2d(x[:, :, 0], (0, 2)),
    lambda x: F.max_pool3d(x, 2, padding=2),
    lambda x: nn.Conv2d(3, 4, 3, padding=5, padding_mode="reflect")(x[:, :, 0]),
    lambda x: nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect"),
    lambda x: nn.Conv2d(3, 4, 3, stride=2, padding="same"),
    lambda x: nn.ConvTranspose2d(3, 4, 3, stride=2)(x[:, :, 0], output_size=(20, 20)),
])
def test_bad_input_raises_hybrid_error(call):
    x = hybrid.zeros(2, 3, 4, 5, 6)
    with pytest.raises(HybridError) as e:
        call(x)
    assert "test_conv_extra.py" in str(e.value)


@pytest.mark.parametrize("xs,kw", [((2, 3, 7, 6), {"kernel_size": 2}),
                                   ((1, 2, 7, 6), {"kernel_size": 3, "stride": 2, "padding": 1,
                                                   "output_size": (7, 6)}),
                                   ((2, 3, 9), {"kernel_size": 3, "stride": 2}),
                                   ((3, 8), {"kernel_size": 2, "output_size": (9,)})])
def test_max_unpool_matches_numpy_and_torch(xs, kw):
    torch = pytest.importorskip("torch")
    n = 2 if len(xs) == 4 else 1
    pool_kw = {k: v for k, v in kw.items() if k != "output_size"}
    x = rand(xs)
    vals, idx = getattr(F, f"max_pool{n}d")(hybrid.tensor(x), return_indices=True, **pool_kw)
    got = getattr(F, f"max_unpool{n}d")(vals, idx, **kw)
    # numpy: zeros with each pooled value written at its flat index of its plane
    v, i = vals.numpy(), idx.numpy()
    lead = v.shape[:-n]
    k = _tup(kw["kernel_size"], n)
    s = _tup(kw.get("stride", k), n)
    p = _tup(kw.get("padding", 0), n)
    size = kw.get("output_size") or tuple((v.shape[-n + j] - 1) * s[j] - 2 * p[j] + k[j]
                                          for j in range(n))
    size = tuple(size)[-n:]
    want = np.zeros(lead + (math.prod(size),))
    flat_v, flat_i = v.reshape(-1, v.shape[-1] if n == 1 else v.shape[-2] * v.shape[-1]), \
        i.reshape(-1, i.shape[-1] if n == 1 else i.shape[-2] * i.shape[-1])
    w2 = want.reshape(flat_v.shape[0], -1)
    for r in range(flat_v.shape[0]):
        w2[r, flat_i[r]] = flat_v[r]
    np.testing.assert_array_equal(got.numpy(), w2.reshape(lead + size))
    tf = torch.nn.functional
    tv, ti = getattr(tf, f"max_pool{n}d")(torch.tensor(x), return_indices=True, **pool_kw)
    np.testing.assert_array_equal(got.numpy(),
                                  getattr(tf, f"max_unpool{n}d")(tv, ti, **kw).numpy())
    gradcheck(lambda t: getattr(F, f"max_unpool{n}d")(t, idx, **kw), v)
