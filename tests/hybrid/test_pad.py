"""F.pad's modes (hybrid/ops/shape.py `pad`, `pad_mode`): reflect / replicate / circular values
against numpy's np.pad (reflect / edge / wrap) and PyTorch, gradients against finite
differences and PyTorch, compiled forward+backward against eager, and PyTorch's refusals."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import gradcheck
from tolerance import assert_matches_eager

import hybrid
import hybrid.nn.functional as F
from hybrid.errors import HybridError

NP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
MODES = list(NP_MODE)

# (input shape, pads): last 1, 2 and 3 dims of 2-d to 5-d inputs, zero and uneven pads
CASES = [
    ((2, 5), (2, 3)),
    ((1, 2, 5), (0, 4)),
    ((2, 3, 4, 5), (1, 2, 3, 0)),
    ((3, 4, 5), (4, 4, 3, 3)),
    ((1, 2, 3, 4, 5), (1, 1, 2, 0, 0, 2)),
]


def _np_pad(x: np.ndarray, pads: tuple, mode: str) -> np.ndarray:
    width = [(0, 0)] * x.ndim
    for i in range(len(pads) // 2):
        width[x.ndim - 1 - i] = (pads[2 * i], pads[2 * i + 1])
    return np.pad(x, width, mode=NP_MODE[mode])


def _x(*shape) -> np.ndarray:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape,pads", CASES)
def test_values_match_numpy(shape, pads, mode):
    x = _x(shape)
    got = F.pad(hybrid.tensor(x), pads, mode=mode)
    np.testing.assert_array_equal(got.numpy(), _np_pad(x, pads, mode))


@pytest.mark.parametrize("mode", MODES)
def test_gradient_matches_finite_differences(mode):
    x = _x((2, 3, 4))
    gradcheck(lambda t: F.pad(t, (3, 2, 1, 2), mode=mode) ** 2, x)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pads", [(-1, 2), (2, -1), (-2, 0, 1, 1)])
def test_negative_pads_crop_as_torch(mode, pads):
    torch = pytest.importorskip("torch")
    x = _x((1, 3, 5))
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.pad(xt, pads, mode=mode)
    cot = np.random.default_rng(1).standard_normal(tuple(want.shape)).astype(np.float32)
    want.backward(torch.tensor(cot))
    xh = hybrid.tensor(x, requires_grad=True)
    got = F.pad(xh, pads, mode=mode)
    got.backward(hybrid.tensor(cot))
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    np.testing.assert_allclose(xh.grad.numpy(), xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape,pads", CASES[2:])
def test_values_and_gradients_match_torch(shape, pads, mode):
    torch = pytest.importorskip("torch")
    x = _x(shape)
    xt = torch.tensor(x, requires_grad=True)
    want = torch.nn.functional.pad(xt, pads, mode=mode)
    (want ** 3).sum().backward()
    xh = hybrid.tensor(x, requires_grad=True)
    got = F.pad(xh, pads, mode=mode)
    (got ** 3).sum().backward()
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    np.testing.assert_allclose(xh.grad.numpy(), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_compiled_forward_and_backward_match_eager(compiled_backend, mode):
    def step(x):
        y = F.pad(x, (2, 1, 1, 2), mode=mode)
        (y * y).sum().backward()
        return y.detach(), x.grad

    x0 = _x((2, 3, 4, 5))
    want = step(hybrid.tensor(x0, requires_grad=True))
    got = hybrid.compile(step)(hybrid.tensor(x0, requires_grad=True))
    for g, w in zip(got, want):
        assert_matches_eager(g, w)


@pytest.mark.parametrize("mode,shape,pads,words", [
    ("reflect", (1, 2, 4), (4, 0), "less than"),  # reflect needs pad < size
    ("circular", (1, 2, 4), (5, 0), "wraps around once"),
    ("reflect", (4,), (1, 1), "got f32[4]"),  # needs a 2-d or 3-d input for one padded dim
    ("replicate", (1, 2, 3, 4), (1, 1), "2-d or 3-d"),
    ("reflect", (1, 1, 2, 2, 2, 2), (1,) * 8, "mode='constant'"),
])
def test_refusals_name_the_op_and_shapes(mode, shape, pads, words):
    torch = pytest.importorskip("torch")
    x = _x(shape)
    with pytest.raises((RuntimeError, NotImplementedError)):
        torch.nn.functional.pad(torch.tensor(x), pads, mode=mode)
    with pytest.raises(HybridError) as e:
        F.pad(hybrid.tensor(x), pads, mode=mode)
    msg = str(e.value)
    assert "pad" in msg and words in msg and "test_pad.py" in msg, msg


def test_mode_and_value_checks():
    x = hybrid.zeros(1, 2, 3)
    with pytest.raises(HybridError, match="mode must be one of"):
        F.pad(x, (1, 1), mode="symmetric")
    with pytest.raises(HybridError, match="takes no value"):
        F.pad(x, (1, 1), mode="reflect", value=1.0)
    assert F.pad(x, (1, 1), value=2.0).numpy()[0, 0].tolist() == [2.0, 0.0, 0.0, 0.0, 2.0]


def test_more_pad_refusals():
    with pytest.raises(HybridError, match="replicate'.*no element to pad from"):
        F.pad(hybrid.zeros(1, 2, 0), (1, 1), mode="replicate")
    for mode in ("circular", "reflect"):  # cropping more than the dim holds
        with pytest.raises(HybridError, match="crops more than there is"):
            F.pad(hybrid.zeros(1, 2, 3), (-2, -2), mode=mode)
    with pytest.raises(HybridError, match=r"Conv2d: padding_mode='reflect'.*padding_mode='zeros'"):
        hybrid.nn.Conv2d(2, 3, 3, padding=4, padding_mode="reflect")(hybrid.zeros(1, 2, 3, 3))


LAYERS = [(kind, n) for kind in ("Reflection", "Replication", "Circular", "Zero", "Constant")
          for n in (1, 2, 3)]


@pytest.mark.parametrize("kind,n", LAYERS)
def test_padding_layers_match_torch(kind, n):
    torch = pytest.importorskip("torch")
    name = f"{kind}Pad{n}d"
    args = ((1, 2) * n,) + ((1.5,) if kind == "Constant" else ())
    t, h = getattr(torch.nn, name)(*args), getattr(hybrid.nn, name)(*args)
    assert repr(h) == repr(t) and h.padding == t.padding
    x = _x(*((2, 3) + (4,) * n))
    xt, xh = torch.tensor(x, requires_grad=True), hybrid.tensor(x, requires_grad=True)
    (t(xt) ** 2).sum().backward()
    (h(xh) ** 2).sum().backward()
    np.testing.assert_array_equal(h(hybrid.tensor(x)).numpy(), t(torch.tensor(x)).numpy())
    np.testing.assert_allclose(xh.grad.numpy(), xt.grad.numpy(), rtol=1e-6)
    t1, h1 = getattr(torch.nn, name)(*((1,) + args[1:])), getattr(hybrid.nn, name)(*((1,) + args[1:]))
    assert repr(h1) == repr(t1)  # an int pads every side


def test_padding_layer_bad_padding():
    with pytest.raises(HybridError, match=r"ReflectionPad2d: padding must be an int or 4 ints"):
        hybrid.nn.ReflectionPad2d((1, 2, 3))
