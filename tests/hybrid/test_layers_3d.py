"""Dropout3d / F.dropout3d, InstanceNorm3d and MaxUnpool1d/2d modules (hybrid/nn/conv.py,
norm.py, functional_pool.py): against numpy and torch, gradients, compiled vs eager, errors."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_matches_eager

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.errors import HybridError


def _x(*shape: int) -> np.ndarray:
    return np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(4, 6, 3, 2, 2), (6, 3, 2, 2)])  # batched and unbatched
def test_dropout3d_zeroes_whole_channels_and_scales_the_rest(shape):
    x = hybrid.tensor(np.abs(_x(*shape)) + 1.0)
    hybrid.manual_seed(0)
    y = F.dropout3d(x, 0.5).numpy()
    per_channel = y.reshape(shape[: len(shape) - 3] + (-1,))
    zero, kept = (per_channel == 0).all(-1), (per_channel != 0).all(-1)
    assert (zero | kept).all() and zero.any() and kept.any()  # channels whole, some of each
    want = x.numpy().reshape(per_channel.shape) * 2.0
    np.testing.assert_allclose(per_channel[kept], want[kept], rtol=1e-6)
    m = nn.Dropout3d(0.5)
    m.eval()
    assert m(x) is x or np.array_equal(m(x).numpy(), x.numpy())


def test_dropout3d_gradient_is_the_mask_and_compiles(compiled_backend):
    def step(x):
        hybrid.manual_seed(3)
        y = F.dropout3d(x, 0.25)
        y.sum().backward()
        return y.detach(), x.grad

    x0 = np.abs(_x(2, 8, 2, 3, 2)) + 0.5
    y, g = step(hybrid.tensor(x0, requires_grad=True))
    np.testing.assert_allclose(g.numpy(), (y.numpy() != 0) / 0.75, rtol=1e-6)
    got = hybrid.compile(step)(hybrid.tensor(x0, requires_grad=True))
    for a, b in zip(got, (y, g)):
        assert_matches_eager(a, b)


def test_dropout3d_bad_input():
    with pytest.raises(HybridError, match="dropout3d: expected a 4-d or 5-d input"):
        F.dropout3d(hybrid.zeros(2, 3, 4), 0.5)
    with pytest.raises(HybridError, match="between 0 and 1"):
        nn.Dropout3d(1.5)


@pytest.mark.parametrize("affine,track", [(False, False), (True, True)])
def test_instance_norm3d_matches_numpy_and_torch(affine, track):
    x = _x(2, 3, 4, 3, 5)
    m = nn.InstanceNorm3d(3, affine=affine, track_running_stats=track)
    xh = hybrid.tensor(x, requires_grad=True)
    y = m(xh)
    mean = x.mean(axis=(2, 3, 4), keepdims=True, dtype=np.float64)
    var = x.var(axis=(2, 3, 4), keepdims=True, dtype=np.float64)
    np.testing.assert_allclose(y.detach().numpy(), (x - mean) / np.sqrt(var + 1e-5), atol=1e-5)
    torch = pytest.importorskip("torch")
    t = torch.nn.InstanceNorm3d(3, affine=affine, track_running_stats=track)
    assert repr(t) == repr(m) and list(t.state_dict()) == list(m.state_dict())
    xt = torch.tensor(x, requires_grad=True)
    cot = _x(2, 3, 4, 3, 5) * 0.5
    t(xt).backward(torch.tensor(cot))
    y.backward(hybrid.tensor(cot))
    np.testing.assert_allclose(xh.grad.numpy(), xt.grad.numpy(), rtol=1e-4, atol=1e-5)
    if track:
        np.testing.assert_allclose(m.running_var.numpy(), t.running_var.numpy(), rtol=1e-5)
    with pytest.raises(HybridError, match="4D or 5D"):
        m(hybrid.zeros(3, 4, 5))


@pytest.mark.parametrize("n", [1, 2])
def test_max_unpool_modules_invert_the_pool_as_torch(n, compiled_backend):
    torch = pytest.importorskip("torch")
    x = _x(2, 3, 8) if n == 1 else _x(2, 3, 4, 6)
    pool_t = (torch.nn.MaxPool1d if n == 1 else torch.nn.MaxPool2d)(2, return_indices=True)
    unpool_t = (torch.nn.MaxUnpool1d if n == 1 else torch.nn.MaxUnpool2d)(2)
    pool = (nn.MaxPool1d if n == 1 else nn.MaxPool2d)(2, return_indices=True)
    unpool = (nn.MaxUnpool1d if n == 1 else nn.MaxUnpool2d)(2)
    assert repr(unpool) == repr(unpool_t)
    want = unpool_t(*pool_t(torch.tensor(x)))
    got = unpool(*pool(hybrid.tensor(x)))
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    # the maxima at their places, zeros elsewhere: an independent check of the same result
    kept = got.numpy() != 0
    np.testing.assert_array_equal(got.numpy()[kept], x[kept])
    size = (9,) if n == 1 else (5, 7)  # output_size= as torch's forward argument
    want = unpool_t(*pool_t(torch.tensor(x)), output_size=size)
    got = unpool(*pool(hybrid.tensor(x)), output_size=size)
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    compiled = hybrid.compile(lambda t: unpool(*pool(t)))(hybrid.tensor(x))
    assert_matches_eager(compiled, unpool(*pool(hybrid.tensor(x))))
