"""The rest of the tutorial surface against PyTorch: every function form of an in-place op
(`torch.sin_(x)`), the NumPy-style aliases (`arccos`, `concat`, `absolute`, ...), the `*_like`
random factories' shapes and dtypes, `broadcast_tensors`, the linalg functions not in the op
table (`eigvalsh`, `logdet`, `pinv`), `F.dropout1d`, and the default-dtype / seed queries."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F
from hybrid import api_extra

torch = pytest.importorskip("torch")

RNG = np.random.default_rng(7)

# Inputs inside each op's domain; (args, kwargs) after the tensor.
_DOMAIN = {"acosh_": (1.1, 3.0), "arccosh_": (1.1, 3.0)}
_ARGS = {"clamp_": ((0.2, 0.6), {}), "clip_": ((0.25, 0.5), {}), "fill_": ((1.5,), {}),
         "nan_to_num_": ((), {"nan": 0.5, "posinf": 9.0})}


@pytest.mark.parametrize("name", api_extra._INPLACE)
def test_inplace_function_form_matches_pytorch(name):
    """hybrid.NAME(x, ...) is x.NAME(...): the same object back, updated as torch updates it."""
    lo, hi = _DOMAIN.get(name, (0.05, 0.95))
    a = RNG.uniform(lo, hi, (3, 4)).astype(np.float32)
    a[0, 0] = -a[0, 0] if name in ("abs_", "absolute_", "neg_", "negative_", "relu_") else a[0, 0]
    if name == "nan_to_num_":
        a[0, :2] = [np.nan, np.inf]
    args, kwargs = _ARGS.get(name, ((), {}))
    x, t = hybrid.tensor(a.copy()), torch.tensor(a.copy())
    storage = x.numpy()
    r = getattr(hybrid, name)(x, *args, **kwargs)
    getattr(torch, name)(t, *args, **kwargs)
    assert r is x
    assert np.shares_memory(x.numpy(), storage)
    np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=2e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("alias, fn", [("arcsin", np.arcsin), ("arccos", np.arccos),
                                       ("arctan", np.arctan), ("arcsinh", np.arcsinh),
                                       ("arctanh", np.arctanh), ("absolute", np.abs),
                                       ("negative", np.negative)])
def test_numpy_style_aliases_match_pytorch_and_float64(alias, fn):
    a = RNG.uniform(-0.9, 0.9, (5,))
    got = getattr(hybrid, alias)(hybrid.tensor(a))
    want = getattr(torch, alias)(torch.tensor(a))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)
    np.testing.assert_allclose(got.numpy(), fn(a), rtol=1e-12)
    b = RNG.uniform(1.1, 4.0, (5,))
    np.testing.assert_allclose(hybrid.arccosh(hybrid.tensor(b)).numpy(), np.arccosh(b),
                               rtol=1e-12)


def test_concat_is_cat():
    a, b = RNG.standard_normal((2, 3)), RNG.standard_normal((1, 3))
    got = hybrid.concat([hybrid.tensor(a), hybrid.tensor(b)], dim=0)
    want = torch.concat([torch.tensor(a), torch.tensor(b)], dim=0)
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_like_factories_follow_their_argument():
    x = hybrid.zeros(3, 4, dtype=hybrid.float64)
    for fn in (hybrid.randn_like, hybrid.rand_like):
        y = fn(x)
        assert y.shape == (3, 4) and y.dtype is hybrid.float64
    r = hybrid.randint_like(x, 3, 7)
    assert r.shape == (3, 4) and r.dtype is hybrid.float64
    assert set(np.unique(r.numpy())) <= {3.0, 4.0, 5.0, 6.0}
    p = hybrid.randperm(10).numpy()
    assert p.dtype == np.int64 and sorted(p.tolist()) == list(range(10))
    assert hybrid.randn_like(x).numpy().std() > 0  # not a constant


def test_broadcast_tensors_matches_pytorch():
    shapes = [(3, 1), (1, 4), (4,)]
    arrays = [RNG.standard_normal(s) for s in shapes]
    got = hybrid.broadcast_tensors(*[hybrid.tensor(a) for a in arrays])
    want = torch.broadcast_tensors(*[torch.tensor(a) for a in arrays])
    assert len(got) == 3
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape) == (3, 4)
        np.testing.assert_array_equal(g.numpy(), w.numpy())
    with pytest.raises(hybrid.HybridError):
        hybrid.broadcast_tensors(hybrid.zeros(2), hybrid.zeros(3))


def test_linalg_eigvalsh_logdet_pinv_match_pytorch():
    m = RNG.standard_normal((4, 4))
    spd = m @ m.T + 4 * np.eye(4)
    np.testing.assert_allclose(hybrid.linalg.eigvalsh(hybrid.tensor(spd)).numpy(),
                               torch.linalg.eigvalsh(torch.tensor(spd)).numpy(), rtol=1e-10)
    np.testing.assert_allclose(hybrid.linalg.logdet(hybrid.tensor(spd)).item(),
                               np.linalg.slogdet(spd)[1], rtol=1e-12)
    rect = RNG.standard_normal((5, 3))
    np.testing.assert_allclose(hybrid.linalg.pinv(hybrid.tensor(rect)).numpy(),
                               torch.linalg.pinv(torch.tensor(rect)).numpy(), atol=1e-10)


def test_top_level_legacy_linalg_forms_match_pytorch():
    """torch.det / inverse / pinverse / cholesky / qr and their Tensor methods."""
    m = RNG.standard_normal((4, 4))
    spd = m @ m.T + 4 * np.eye(4)
    h, t = hybrid.tensor(spd), torch.tensor(spd)
    for name in ("det", "logdet", "inverse", "pinverse", "cholesky"):
        np.testing.assert_allclose(getattr(hybrid, name)(h).numpy(),
                                   getattr(torch, name)(t).numpy(), rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(getattr(h, name)().numpy(), getattr(t, name)().numpy(),
                                   rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(hybrid.cholesky(h, upper=True).numpy(),
                               torch.linalg.cholesky(t, upper=True).numpy(), rtol=1e-10)
    sign, logabs = hybrid.slogdet(h)
    np.testing.assert_allclose([sign.item(), logabs.item()], list(np.linalg.slogdet(spd)),
                               rtol=1e-12)
    low_rank = RNG.standard_normal((5, 2)) @ RNG.standard_normal((2, 3))
    for rcond in (1e-15, 1e-3):
        np.testing.assert_allclose(hybrid.pinverse(hybrid.tensor(low_rank), rcond).numpy(),
                                   torch.pinverse(torch.tensor(low_rank), rcond).numpy(),
                                   atol=1e-8)
    rect = RNG.standard_normal((5, 3))
    for some in (True, False):
        q, r = hybrid.qr(hybrid.tensor(rect), some=some)
        tq, tr = torch.linalg.qr(torch.tensor(rect), "reduced" if some else "complete")
        assert q.shape == tuple(tq.shape) and r.shape == tuple(tr.shape)
        np.testing.assert_allclose(q.numpy() @ r.numpy(), rect, atol=1e-12)
        np.testing.assert_allclose(np.abs(r.numpy()), np.abs(tr.numpy()), atol=1e-12)
    u, s, v = hybrid.tensor(rect).svd()
    np.testing.assert_allclose((u.numpy() * s.numpy()) @ v.numpy().T, rect, atol=1e-12)


def test_dropout1d_zeroes_whole_channels_and_scales():
    x = hybrid.ones(8, 16, 50)
    y = F.dropout1d(x, p=0.5, training=True).numpy()
    per_channel = y.reshape(8, 16, 50)
    for row in per_channel.reshape(-1, 50):
        assert set(np.unique(row)) <= {0.0, 2.0} and len(np.unique(row)) == 1
    kept = (per_channel[:, :, 0] != 0).mean()
    assert 0.3 < kept < 0.7
    np.testing.assert_array_equal(F.dropout1d(x, 0.5, training=False).numpy(), x.numpy())
    t = torch.ones(8, 16, 50)
    ty = torch.nn.functional.dropout1d(t, p=0.5, training=True).numpy()
    assert set(np.unique(ty)) == set(np.unique(y))  # same values: 0 and 1/(1-p)
    with pytest.raises(hybrid.HybridError):
        F.dropout1d(hybrid.ones(2, 3, 4, 5), 0.5)


def test_default_dtype_and_seed_queries():
    assert hybrid.get_default_dtype() is hybrid.float32
    hybrid.set_default_dtype(hybrid.float64)
    try:
        assert hybrid.get_default_dtype() is hybrid.float64
        assert hybrid.tensor([1.5]).dtype is hybrid.float64
    finally:
        hybrid.set_default_dtype(hybrid.float32)
    hybrid.manual_seed(1234)
    assert hybrid.initial_seed() == 1234
    a = hybrid.rand(3).numpy()
    hybrid.manual_seed(1234)
    np.testing.assert_array_equal(hybrid.rand(3).numpy(), a)
