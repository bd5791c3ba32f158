"""Indexing: __getitem__ and __setitem__ against numpy on the same array, without grad (in-place
fast path) and with grad (functional path, checked by finite differences)."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from gradcheck import gradcheck

A = np.arange(60, dtype=np.float64).reshape(3, 4, 5)

INDICES = [
    1, -1, (0, 2), (-1, -2, -3), slice(None), slice(1, None), slice(None, None, 2),
    (slice(None), slice(1, 4, 2)), (slice(-2, None), 0, slice(None, None, 3)),
    None, (None, 1), (0, None, slice(None)), Ellipsis, (Ellipsis, 1), (1, Ellipsis, None),
    (slice(None), Ellipsis, slice(0, 2)),
    [0, 2], ([0, 2, 1],), ([[0, 1], [2, 2]],), (slice(None), [3, 0]),
    ([0, 2], [1, 3]),  # adjacent advanced
    ([0, 2], slice(None), [1, 3]),  # non-adjacent: advanced dims go first
    ([[0], [2]], [1, 3]),  # broadcasting index arrays
    (1, slice(None), [0, 4]),  # int among advanced (non-adjacent)
    (slice(None), [1, 2], [0, 4]),
    (Ellipsis, [0, 1]),
    np.array([True, False, True]),
    (slice(None), np.array([True, False, False, True])),
    (A[:, :, 0] > 20),  # 2-d mask
    (A > 30),  # full mask
    (0, [1, 1, 2], slice(None, None, 2)),
    (slice(5, 1),),  # empty slice
    ([],),
]


def _ids(i):
    return repr(i).replace(" ", "")[:40]


def as_hybrid_index(index, kind):
    """The numpy index with arrays/lists as hybrid tensors (kind='tensor') or left as lists."""
    def conv(it):
        if isinstance(it, (list, np.ndarray)) and kind == "tensor":
            arr = np.asarray(it)
            return hybrid.tensor(arr, dtype=hybrid.bool if arr.dtype == bool else hybrid.int64)
        return it

    return tuple(conv(i) for i in index) if isinstance(index, tuple) else conv(index)


@pytest.mark.parametrize("index", INDICES, ids=_ids)
@pytest.mark.parametrize("kind", ["list", "tensor"])
def test_getitem_matches_numpy(index, kind) -> None:
    x = hybrid.tensor(A)
    got = x[as_hybrid_index(index, kind)]
    want = A[index]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)


def test_getitem_on_noncontiguous_and_0d() -> None:
    x = hybrid.tensor(A).permute(2, 0, 1)
    np.testing.assert_array_equal(x[1:, [0, 2], 1].numpy(), A.transpose(2, 0, 1)[1:, [0, 2], 1])
    s = hybrid.tensor(3.0)
    assert s[()].item() == 3.0 and s[None].shape == (1,) and s[...].shape == ()
    assert hybrid.tensor([1.0, 2.0])[hybrid.tensor(1)].item() == 2.0


def test_basic_index_is_a_view() -> None:
    x = hybrid.tensor(A.copy())
    v = x[1, :, ::2]
    x.add_(1)
    np.testing.assert_array_equal(v.numpy(), (A + 1)[1, :, ::2])


SET_INDICES = [i for i in INDICES if not (isinstance(i, tuple) and i == ([0, 2], [1, 3])) or True]


def _value_for(shape, rng):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("index", SET_INDICES, ids=_ids)
def test_setitem_matches_numpy(index) -> None:
    rng = np.random.default_rng(0)
    shape = A[index].shape
    for value in (_value_for(shape, rng), 7.5, _value_for(shape[-1:], rng)):
        want = A.copy()
        want[index] = value
        x = hybrid.tensor(A.copy())
        x[as_hybrid_index(index, "tensor")] = (hybrid.tensor(value) if isinstance(value, np.ndarray)
                                              else value)
        np.testing.assert_array_equal(x.numpy(), want)


def _unique_positions(index) -> bool:
    lin = np.arange(A.size).reshape(A.shape)[index].reshape(-1)
    return len(set(lin.tolist())) == lin.size


@pytest.mark.parametrize("index", [i for i in SET_INDICES if _unique_positions(i)], ids=_ids)
def test_setitem_with_grad(index) -> None:
    """Functional path: x[index] = v on a tensor that requires grad gives numpy's values and
    finite-difference gradients for both the base and the value."""
    rng = np.random.default_rng(1)
    shape = A[index].shape
    v = rng.standard_normal(shape)
    base = rng.standard_normal(A.shape)

    def f(b, val):
        y = b * 1
        y[as_hybrid_index(index, "tensor")] = val
        return y * y

    want = base.copy()
    want[index] = v
    got = f(hybrid.tensor(base, requires_grad=True), hybrid.tensor(v, requires_grad=True))
    np.testing.assert_allclose(got.detach().numpy(), want * want)
    if v.size <= 12:
        gradcheck(f, base[:3, :4, :5], v)


def test_setitem_broadcast_value_grad() -> None:
    gradcheck(lambda b, v: _set(b, (slice(None), 1), v), np.random.rand(3, 4), np.random.rand(1))


def _set(b, index, v):
    y = b * 1
    y[index] = v
    return y


def test_getitem_gradients() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    for index in [1, (slice(None), [0, 2, 0]), ([0, 2], [1, 3]), (slice(1, None, 2), None),
                  (Ellipsis, -1), (x > 0)]:
        gradcheck(lambda t, i=index: t[as_hybrid_index(i, "tensor")], x)


def test_setitem_with_int_tensor_value_cast() -> None:
    x = hybrid.zeros(3)
    x[1] = 2
    x[hybrid.tensor([0, 2])] = hybrid.tensor([5, 6])
    assert x.tolist() == [5.0, 2.0, 6.0]
    m = hybrid.tensor([1, 2, 3])
    m[m > 1] = 0
    assert m.tolist() == [1, 0, 0]
