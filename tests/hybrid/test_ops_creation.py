"""Creation ops (zeros, ones, full, empty and their *_like forms, arange, linspace, eye) and random
sampling (manual_seed, rand, randn, randint, Generator), outside the table-driven suite of
test_ops.py."""

from __future__ import annotations

import numpy as np
from _ops_helpers import B8, F32, F64, I32, I64

import hybrid

# --- creation ops -------------------------------------------------------------------------------


def test_filled_factories() -> None:
    assert hybrid.zeros(2, 3).tolist() == [[0.0] * 3] * 2 and hybrid.zeros(2, 3).dtype is F32
    assert hybrid.ones((2,), dtype=I32).tolist() == [1, 1] and hybrid.ones(()).shape == ()
    assert hybrid.full((2, 2), 7).dtype is I64 and hybrid.full((2,), 1.5).tolist() == [1.5, 1.5]
    assert hybrid.full((1,), True).dtype is B8
    assert hybrid.empty(3, 0).shape == (3, 0) and hybrid.empty(2).dtype is F32
    x = hybrid.tensor([[1, 2]], dtype=I32)
    for f, v in [(hybrid.zeros_like, 0), (hybrid.ones_like, 1), (hybrid.empty_like, None)]:
        y = f(x)
        assert y.shape == (1, 2) and y.dtype is I32 and (v is None or y.tolist() == [[v, v]])
    assert hybrid.full_like(x, 4, dtype=F64).tolist() == [[4.0, 4.0]]
    assert hybrid.zeros(2, requires_grad=True).requires_grad


def test_arange_linspace_eye() -> None:
    np.testing.assert_array_equal(hybrid.arange(5).numpy(), np.arange(5))
    assert hybrid.arange(5).dtype is I64 and hybrid.arange(1, 10, 3).tolist() == [1, 4, 7]
    assert hybrid.arange(5, 0, -2).tolist() == [5, 3, 1] and hybrid.arange(0).shape == (0,)
    f = hybrid.arange(0, 1, 0.25)
    assert f.dtype is F32 and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert hybrid.arange(1.5, 4).tolist() == [1.5, 2.5, 3.5]
    assert hybrid.arange(3, dtype=F64).dtype is F64
    lin = hybrid.linspace(-1, 1, 5)
    np.testing.assert_allclose(lin.numpy(), np.linspace(-1, 1, 5))
    assert lin[-1].item() == 1.0 and hybrid.linspace(0, 1, 1).tolist() == [0.0]
    assert hybrid.linspace(0, 1, 0).shape == (0,)
    np.testing.assert_array_equal(hybrid.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(hybrid.eye(2, 4, dtype=I64).numpy(), np.eye(2, 4))


# --- random -------------------------------------------------------------------------------------


def test_random_reproducible_and_distributed() -> None:
    hybrid.manual_seed(123)
    a, b, c = hybrid.rand(1000), hybrid.randn(2000), hybrid.randint(0, 10, (500,))
    hybrid.manual_seed(123)
    np.testing.assert_array_equal(hybrid.rand(1000).numpy(), a.numpy())
    np.testing.assert_array_equal(hybrid.randn(2000).numpy(), b.numpy())
    np.testing.assert_array_equal(hybrid.randint(0, 10, (500,)).numpy(), c.numpy())
    av = a.numpy()
    assert a.dtype is F32 and av.min() >= 0 and av.max() < 1 and abs(av.mean() - 0.5) < 0.05
    bv = b.numpy()
    assert abs(bv.mean()) < 0.1 and abs(bv.std() - 1) < 0.1
    cv = c.numpy()
    assert c.dtype is I64 and cv.min() == 0 and cv.max() == 9
    assert hybrid.randint(5, (3,)).shape == (3,)  # randint(high, size), as PyTorch
    assert hybrid.rand(2, 3, dtype=F64).dtype is F64 and hybrid.randn(()).shape == ()
    hybrid.manual_seed(1)
    x1 = hybrid.rand(10).numpy()
    hybrid.manual_seed(2)
    assert not np.array_equal(x1, hybrid.rand(10).numpy())
    assert not np.array_equal(hybrid.rand(10).numpy(), hybrid.rand(10).numpy())


def test_generators_are_independent() -> None:
    g1, g2 = hybrid.Generator(7), hybrid.Generator(7)
    a = hybrid.rand(5, generator=g1)
    hybrid.rand(100)  # the default stream does not disturb g2
    np.testing.assert_array_equal(hybrid.rand(5, generator=g2).numpy(), a.numpy())
    g1.manual_seed(7)
    np.testing.assert_array_equal(hybrid.rand(5, generator=g1).numpy(), a.numpy())
    state = g1.get_state()
    n1 = hybrid.randn(4, generator=g1).numpy()
    g1.set_state(state)
    np.testing.assert_array_equal(hybrid.randn(4, generator=g1).numpy(), n1)
