"""Max pooling's gradient with tied maxima goes to the first maximum of each window, as
PyTorch's max pools route it (hybrid/nn/functional_pool.py `_window_max`): against torch, against
the window's first argmax computed with numpy, eager and compiled; values stay the maxima."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_matches_eager

import hybrid
import hybrid.nn.functional as F

CASES = [  # (op, input shape, kwargs, output shape)
    ("max_pool1d", (2, 3, 8), {"kernel_size": 2}, (2, 3, 4)),
    ("max_pool2d", (2, 3, 6, 6), {"kernel_size": 2}, (2, 3, 3, 3)),
    ("max_pool2d", (1, 2, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}, (1, 2, 4, 4)),
    ("max_pool3d", (1, 2, 4, 4, 4), {"kernel_size": 2}, (1, 2, 2, 2, 2)),
    ("adaptive_max_pool2d", (1, 2, 7, 5), {"output_size": (3, 2)}, (1, 2, 3, 2)),
]


def _ties(shape: tuple) -> np.ndarray:
    return np.random.default_rng(sum(shape)).integers(0, 3, shape).astype(np.float32)


def _cot(shape: tuple) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


def _grad(op: str, x: np.ndarray, kw: dict, cot: np.ndarray) -> tuple:
    xh = hybrid.tensor(x, requires_grad=True)
    y = getattr(F, op)(xh, **kw)
    y.backward(hybrid.tensor(cot))
    return y.detach().numpy(), xh.grad.numpy()


def test_two_by_two_windows_route_to_the_first_maximum_in_row_major_order():
    x = np.zeros((1, 1, 4, 4), np.float32)  # every window all zeros: ties everywhere
    x[0, 0, 3, 3] = 5.0
    y, g = _grad("max_pool2d", x, {"kernel_size": 2}, np.ones((1, 1, 2, 2), np.float32))
    want = np.zeros_like(x)
    want[0, 0, [0, 0, 2], [0, 2, 0]] = 1.0  # each window's top-left element
    want[0, 0, 3, 3] = 1.0
    np.testing.assert_array_equal(g, want)
    np.testing.assert_array_equal(y, [[[[0.0, 0.0], [0.0, 5.0]]]])


@pytest.mark.parametrize("op,shape,kw,out", CASES)
def test_tied_gradients_match_torch(op, shape, kw, out):
    torch = pytest.importorskip("torch")
    x, cot = _ties(shape), _cot(out)
    xt = torch.tensor(x, requires_grad=True)
    want = getattr(torch.nn.functional, op)(xt, **kw)
    want.backward(torch.tensor(cot))
    y, g = _grad(op, x, kw, cot)
    np.testing.assert_array_equal(y, want.detach().numpy())
    np.testing.assert_array_equal(g, xt.grad.numpy())


@pytest.mark.parametrize("op,shape,kw,out", CASES[:4])
def test_gradient_lands_on_the_returned_indices(op, shape, kw, out):
    x, cot = _ties(shape), _cot(out)
    _, idx = getattr(F, op)(hybrid.tensor(x), return_indices=True, **kw)
    _, g = _grad(op, x, kw, cot)
    n, c = shape[:2]
    want = np.zeros((n, c, int(np.prod(shape[2:]))), np.float32)
    np.add.at(want, (np.arange(n)[:, None, None], np.arange(c)[None, :, None],
                     idx.numpy().reshape(n, c, -1)), cot.reshape(n, c, -1))
    np.testing.assert_array_equal(g, want.reshape(shape))


@pytest.mark.parametrize("op,shape,kw,out", CASES)
def test_compiled_matches_eager_with_ties(compiled_backend, op, shape, kw, out):
    def step(x, cot):
        y = getattr(F, op)(x, **kw)
        y.backward(cot)
        return y.detach(), x.grad

    x, cot = _ties(shape), hybrid.tensor(_cot(out))
    want = step(hybrid.tensor(x, requires_grad=True), cot)
    got = hybrid.compile(step)(hybrid.tensor(x, requires_grad=True), cot)
    for a, b in zip(got, want):
        assert_matches_eager(a, b)


def test_nan_in_a_window_gives_nan_as_torch():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan
    y = F.max_pool2d(hybrid.tensor(x), 2).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 1, 1])
