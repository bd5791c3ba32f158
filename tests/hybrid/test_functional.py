"""hybrid.nn.functional against independent numpy float64 references, plus finite-difference
gradient checks (float64) and error messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gradcheck import gradcheck
from scipy.special import erf as np_erf

import hybrid
import hybrid.nn.functional as F
from hybrid import ShapeError


def T(a, **kw):
    return hybrid.tensor(np.asarray(a), **kw)


def close(t, ref, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(t.detach().numpy(), ref, rtol=rtol, atol=atol)


def np_log_softmax(x, axis):
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def np_softplus(z):
    return np.logaddexp(0.0, z)


@pytest.fixture
def x(rng):
    return rng.standard_normal((4, 5))


# --- activations -------------------------------------------------------------------------------

ACTIVATIONS = {
    "relu": (F.relu, lambda a: np.maximum(a, 0)),
    "gelu": (F.gelu, lambda a: a * 0.5 * (1 + np_erf(a / math.sqrt(2)))),
    "gelu_tanh": (lambda t: F.gelu(t, approximate="tanh"),
                  lambda a: 0.5 * a * (1 + np.tanh(math.sqrt(2 / math.pi) * (a + 0.044715 * a**3)))),
    "silu": (F.silu, lambda a: a / (1 + np.exp(-a))),
    "sigmoid": (F.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "tanh": (F.tanh, np.tanh),
    "softplus": (F.softplus, np_softplus),
    "softmax": (lambda t: F.softmax(t, 1), lambda a: np.exp(np_log_softmax(a, 1))),
    "softmax0": (lambda t: F.softmax(t, dim=0), lambda a: np.exp(np_log_softmax(a, 0))),
    "log_softmax": (lambda t: F.log_softmax(t, 1), lambda a: np_log_softmax(a, 1)),
    "log_softmax_neg": (lambda t: F.log_softmax(t, -1), lambda a: np_log_softmax(a, -1)),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_numpy(name, x):
    fn, ref = ACTIVATIONS[name]
    close(fn(T(x)), ref(x))


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_gradient(name, x):
    fn, _ = ACTIVATIONS[name]
    x = x + 0.05 * np.sign(x)  # stay away from relu's kink
    gradcheck(fn, x)


def test_activation_float32_dtype(x):
    for fn, _ in ACTIVATIONS.values():
        assert fn(T(x, dtype=hybrid.float32)).dtype is hybrid.float32


def test_softmax_is_stable_for_large_logits():
    a = np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1002.0, -1001.0]])
    close(F.softmax(T(a), 1), np.exp(np_log_softmax(a, 1)))
    close(F.log_softmax(T(a), 1), np_log_softmax(a, 1))
    assert np.isfinite(F.log_softmax(T(a, dtype=hybrid.float32), 1).numpy()).all()


def test_tensor_softmax_methods(x):
    close(T(x).softmax(1), np.exp(np_log_softmax(x, 1)))
    close(T(x).log_softmax(0), np_log_softmax(x, 0))
    assert hybrid.functional.softmax is F.softmax


def test_softplus_gradient_at_zero():
    z = T([0.0], requires_grad=True)
    F.softplus(z).sum().backward()
    assert z.grad.item() == pytest.approx(0.5)


# --- losses -------------------------------------------------------------------------------------


def np_nll(logp, target, weight=None, ignore_index=-100, reduction="mean"):
    """logp (N, C, *rest), target (N, *rest): loops written out for clarity."""
    n_classes = logp.shape[1]
    w = np.ones(n_classes) if weight is None else weight
    lp = np.moveaxis(logp, 1, -1).reshape(-1, n_classes)
    t = target.reshape(-1)
    losses, weights = np.zeros(len(t)), np.zeros(len(t))
    for i, c in enumerate(t):
        if c != ignore_index:
            losses[i] = -lp[i, c] * w[c]
            weights[i] = w[c]
    if reduction == "none":
        return losses.reshape(target.shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / weights.sum()


def np_cross_entropy(x, target, weight=None, ignore_index=-100, reduction="mean", ls=0.0):
    logp = np_log_softmax(x, 1)
    n_classes = x.shape[1]
    nll = np_nll(logp, target, weight, ignore_index, reduction)
    if ls == 0:
        return nll
    w = np.ones(n_classes) if weight is None else weight
    wshape = (1, n_classes) + (1,) * (x.ndim - 2)
    keep = target != ignore_index
    smooth = -(logp * w.reshape(wshape)).sum(1) * keep
    if reduction == "sum":
        smooth = smooth.sum()
    elif reduction == "mean":
        denom = keep.sum() if weight is None else (w[np.where(keep, target, 0)] * keep).sum()
        smooth = smooth.sum() / denom
    return (1 - ls) * nll + ls / n_classes * smooth


CE_CASES = [
    {},
    {"reduction": "sum"},
    {"reduction": "none"},
    {"weight": True},
    {"weight": True, "reduction": "none"},
    {"ignore_index": 1},
    {"ignore_index": 1, "weight": True},
    {"ls": 0.1},
    {"ls": 0.2, "weight": True, "ignore_index": 2},
    {"ls": 0.1, "reduction": "sum"},
    {"ls": 0.1, "reduction": "none"},
]


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 5), (2, 4, 3, 2)])
@pytest.mark.parametrize("case", CE_CASES, ids=str)
def test_cross_entropy_class_indices(rng, shape, case):
    x = rng.standard_normal(shape)
    target = rng.integers(0, shape[1], (shape[0],) + shape[2:])
    target.reshape(-1)[0] = 1  # at least one ignored entry when ignore_index=1
    target.reshape(-1)[1] = 0
    weight = rng.uniform(0.5, 2.0, shape[1]) if case.get("weight") else None
    kw = {"weight": None if weight is None else T(weight),
              "ignore_index": case.get("ignore_index", -100),
              "reduction": case.get("reduction", "mean"), "label_smoothing": case.get("ls", 0.0)}
    ref = np_cross_entropy(x, target, weight, kw["ignore_index"], kw["reduction"], kw["label_smoothing"])
    close(F.cross_entropy(T(x), T(target), **kw), ref)
    gradcheck(lambda a: F.cross_entropy(a, T(target), **kw), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ls", [0.0, 0.15])
@pytest.mark.parametrize("use_weight", [False, True])
def test_cross_entropy_probabilities(rng, reduction, ls, use_weight):
    x = rng.standard_normal((5, 3, 2))
    p = rng.uniform(size=x.shape)
    p /= p.sum(1, keepdims=True)
    w = rng.uniform(0.5, 2, 3) if use_weight else np.ones(3)
    q = p * (1 - ls) + ls / 3
    terms = -(np_log_softmax(x, 1) * q * w.reshape(1, 3, 1))
    ref = {"none": terms.sum(1), "sum": terms.sum(), "mean": terms.sum() / 10}[reduction]
    kw = {"weight": T(w) if use_weight else None, "reduction": reduction, "label_smoothing": ls}
    close(F.cross_entropy(T(x), T(p), **kw), ref)
    gradcheck(lambda a, b: F.cross_entropy(a, b, **kw), x, p)


def test_cross_entropy_unbatched(rng):
    x = rng.standard_normal(5)
    close(F.cross_entropy(T(x), T(3)), -np_log_softmax(x[None], 1)[0, 3])


def test_cross_entropy_float32_matches(rng):
    x = rng.standard_normal((8, 10)).astype(np.float32)
    t = rng.integers(0, 10, 8)
    out = F.cross_entropy(T(x), T(t))
    assert out.dtype is hybrid.float32
    np.testing.assert_allclose(out.item(), np_cross_entropy(x.astype(np.float64), t), rtol=1e-5)


def test_cross_entropy_shape_errors(rng):
    x = T(rng.standard_normal((4, 3)))
    with pytest.raises(ShapeError, match=r"cross_entropy: target of shape \[5\] does not match "
                                         r"input f64\[4,3\].*need shape \[4\]"):
        F.cross_entropy(x, T([0, 1, 2, 0, 1]))
    with pytest.raises(ShapeError, match=r"cross_entropy.*\[4, 2\]"):
        F.cross_entropy(x, T(np.ones((4, 2), np.float32)))
    with pytest.raises(ShapeError, match="weight must have shape \\[3\\]"):
        F.cross_entropy(x, T([0, 1, 2, 0]), weight=T([1.0, 2.0]))
    with pytest.raises(ShapeError, match="reduction"):
        F.cross_entropy(x, T([0, 1, 2, 0]), reduction="avg")
    with pytest.raises(hybrid.DTypeError, match="nll_loss: target must hold class indices"):
        F.nll_loss(x, T([0.0, 1.0, 2.0, 0.0]))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss(rng, reduction):
    logp = np_log_softmax(rng.standard_normal((6, 4)), 1)
    t = rng.integers(0, 4, 6)
    w = rng.uniform(0.5, 2, 4)
    close(F.nll_loss(T(logp), T(t), T(w), reduction=reduction), np_nll(logp, t, w, reduction=reduction))
    gradcheck(lambda a: F.nll_loss(a, T(t), T(w), reduction=reduction), logp)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_l1(rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    red = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    close(F.mse_loss(T(a), T(b), reduction), red((a - b) ** 2))
    close(F.l1_loss(T(a), T(b), reduction), red(np.abs(a - b)))
    gradcheck(lambda u, v: F.mse_loss(u, v, reduction), a, b)
    gradcheck(lambda u, v: F.l1_loss(u, v, reduction), a, b)


def test_mse_shape_error():
    with pytest.raises(ShapeError, match=r"mse_loss: input f32\[3\] and target f32\[3,1\]"):
        F.mse_loss(hybrid.zeros(3), hybrid.zeros(3, 1))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("extras", ["plain", "weight", "pos_weight"])
def test_bce_with_logits(rng, reduction, extras):
    x = rng.standard_normal((4, 3)) * 3
    x[0, 0] = 0.0  # the kink of |x| in the stable form
    x[1, 1] = 60.0  # large logits stay finite
    t = rng.uniform(size=(4, 3))
    w = rng.uniform(0.5, 2, (4, 3)) if extras == "weight" else None
    pw = rng.uniform(0.5, 3, 3) if extras == "pos_weight" else None
    lw = 1 if pw is None else pw
    loss = lw * t * np_softplus(-x) + (1 - t) * np_softplus(x)
    if w is not None:
        loss = loss * w
    ref = {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]
    kw = {"weight": None if w is None else T(w), "reduction": reduction,
              "pos_weight": None if pw is None else T(pw)}
    close(F.binary_cross_entropy_with_logits(T(x), T(t), **kw), ref)
    gradcheck(lambda a, b: F.binary_cross_entropy_with_logits(a, b, **kw), x, t)


# --- layers as functions -------------------------------------------------------------------------


def test_linear(rng):
    x, w, b = rng.standard_normal((5, 3)), rng.standard_normal((4, 3)), rng.standard_normal(4)
    close(F.linear(T(x), T(w), T(b)), x @ w.T + b)
    close(F.linear(T(x), T(w)), x @ w.T)
    gradcheck(F.linear, x, w, b)
    with pytest.raises(ShapeError, match=r"linear: input f64\[5,3\] does not fit weight f64\[3,4\]"):
        F.linear(T(x), T(w.T))


def test_embedding(rng):
    w = rng.standard_normal((6, 3))
    idx = np.array([[0, 2, 5], [1, 1, 0]])
    close(F.embedding(T(idx), T(w)), w[idx])
    gradcheck(lambda a: F.embedding(T(idx), a), w)
    wt = T(w, requires_grad=True)
    F.embedding(T(idx), wt, padding_idx=0).sum().backward()
    g = wt.grad.numpy()
    assert (g[0] == 0).all() and (g[1] == 2).all() and (g[2] == 1).all()


@pytest.mark.parametrize("shape,normalized", [((4, 6), (6,)), ((2, 3, 4), (3, 4))])
def test_layer_norm(rng, shape, normalized):
    x = rng.standard_normal(shape)
    w, b = rng.standard_normal(normalized), rng.standard_normal(normalized)
    axes = tuple(range(len(shape) - len(normalized), len(shape)))
    ref = (x - x.mean(axes, keepdims=True)) / np.sqrt(x.var(axes, keepdims=True) + 1e-5) * w + b
    close(F.layer_norm(T(x), normalized, T(w), T(b)), ref, rtol=1e-9)
    gradcheck(lambda a, c, d: F.layer_norm(a, normalized, c, d), x, w, b)
    with pytest.raises(ShapeError, match=r"layer_norm: normalized_shape \[5\]"):
        F.layer_norm(T(x), (5,))


def test_one_hot():
    t = T([0, 2, 1, 2])
    expected = np.eye(3, dtype=np.int64)[[0, 2, 1, 2]]
    out = F.one_hot(t)
    assert out.dtype is hybrid.int64
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(F.one_hot(t, 5).numpy(), np.eye(5, dtype=np.int64)[[0, 2, 1, 2]])


def test_pad_is_reexported():
    assert F.pad is hybrid.ops.shape.pad
    assert F.pad(hybrid.ones(2), (1, 1)).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_dropout_statistics_and_scaling():
    hybrid.manual_seed(0)
    x = hybrid.ones(20000)
    y = F.dropout(x, 0.3).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)


def test_dropout_modes_and_errors():
    x = hybrid.randn(5)
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    assert (F.dropout(x, 1.0).numpy() == 0).all()
    for p in (-0.1, 1.5):
        with pytest.raises(ShapeError, match="dropout: probability has to be between 0 and 1"):
            F.dropout(x, p)


def test_dropout_fresh_masks_and_reproducible():
    hybrid.manual_seed(1)
    a, b = F.dropout(hybrid.ones(100), 0.5).numpy(), F.dropout(hybrid.ones(100), 0.5).numpy()
    assert not np.array_equal(a, b)
    hybrid.manual_seed(1)
    np.testing.assert_array_equal(F.dropout(hybrid.ones(100), 0.5).numpy(), a)


def test_dropout_gradient_is_mask_times_scale():
    hybrid.manual_seed(2)
    x = hybrid.ones(50, requires_grad=True)
    y = F.dropout(x, 0.4)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), y.detach().numpy())
