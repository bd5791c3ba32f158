"""The rest of the tutorial API surface: losses (numpy references, finite differences, PyTorch),
hybrid.linalg, unique/bincount/histc, out=, int8/int16/uint8 and finfo/iinfo, Tensor.new_*,
in-place variants, boolean-mask assignment under compile, and the eager-only ops' trace errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F
from gradcheck import gradcheck
from hybrid import linalg, nn

RNG = np.random.default_rng(0)


def t64(a, rg=False):
    return hybrid.tensor(np.asarray(a, dtype=np.float64), requires_grad=rg)


def oracle(hfn, tfn, *arrays, ints=(), rtol=1e-10, atol=1e-12):
    """hfn on hybrid float64 leaves and tfn on torch ones: the same values and gradients."""
    torch = pytest.importorskip("torch")
    hx = [hybrid.tensor(a) if i in ints else t64(a, True) for i, a in enumerate(arrays)]
    tx = [torch.tensor(a) if i in ints else torch.tensor(np.asarray(a, np.float64),
                                                         requires_grad=True)
          for i, a in enumerate(arrays)]
    ho, to = hfn(*hx), tfn(*tx)
    np.testing.assert_allclose(ho.detach().numpy(), to.detach().numpy(), rtol=rtol, atol=atol)
    if not to.requires_grad:
        return
    cot = RNG.standard_normal(tuple(to.shape))
    (ho * hybrid.tensor(cot)).sum().backward()
    (to * torch.tensor(cot)).sum().backward()
    for i, (h, t) in enumerate(zip(hx, tx)):
        if i in ints or t.grad is None:
            continue
        if h.grad is None:  # not connected (PyTorch materializes zeros there)
            assert not t.grad.numpy().any(), f"input {i}: no gradient, PyTorch's is nonzero"
            continue
        np.testing.assert_allclose(h.grad.numpy(), t.grad.numpy(), rtol=1e-8, atol=1e-10,
                                   err_msg=f"gradient of input {i}")


# --- losses -------------------------------------------------------------------------------------

x = RNG.standard_normal((4, 5))
y = RNG.standard_normal((4, 5))
p = RNG.uniform(0.05, 0.95, (4, 5))
q = RNG.uniform(0.05, 0.95, (4, 5))
w = RNG.uniform(0.5, 2.0, (4, 5))
logp = np.log(p / p.sum(1, keepdims=True))
pm1 = np.where(RNG.random(4) < 0.5, 1, -1).astype(np.int64)
pm1_2d = np.where(RNG.random((4, 5)) < 0.5, 1, -1).astype(np.int64)
counts = RNG.choice([0.0, 0.3, 2.0, 2.3, 3.7, 5.0], (4, 5))  # away from 1 (full=True's kink)


def _sl1(a, b, beta):
    d = np.abs(a - b)
    return np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta) if beta else d


LOSSES = [  # (name, hybrid fn, numpy reference, arrays, integer positions, torch fn name/kwargs)
    ("smooth_l1", lambda a, b: F.smooth_l1_loss(a, b), lambda a, b: _sl1(a, b, 1.0).mean(),
     (x, y), (), ("smooth_l1_loss", {})),
    ("smooth_l1_beta", lambda a, b: F.smooth_l1_loss(a, b, reduction="sum", beta=0.5),
     lambda a, b: _sl1(a, b, 0.5).sum(), (x, y), (), ("smooth_l1_loss",
                                                      {"reduction": "sum", "beta": 0.5})),
    ("smooth_l1_beta0", lambda a, b: F.smooth_l1_loss(a, b, beta=0.0),
     lambda a, b: np.abs(a - b).mean(), (x, y), (), ("smooth_l1_loss", {"beta": 0.0})),
    ("huber", lambda a, b: F.huber_loss(a, b, delta=0.7),
     lambda a, b: np.where(np.abs(a - b) < 0.7, 0.5 * (a - b) ** 2,
                           0.7 * (np.abs(a - b) - 0.35)).mean(), (x, y), (),
     ("huber_loss", {"delta": 0.7})),
    ("kl_div_batchmean", lambda a, b: F.kl_div(a, b, reduction="batchmean"),
     lambda a, b: (b * (np.log(b) - a)).sum() / a.shape[0], (logp, p), (),
     ("kl_div", {"reduction": "batchmean"})),
    ("kl_div_none_log_target", lambda a, b: F.kl_div(a, b, reduction="none", log_target=True),
     lambda a, b: np.exp(b) * (b - a), (logp, np.log(q)), (),
     ("kl_div", {"reduction": "none", "log_target": True})),
    ("kl_div_mean", lambda a, b: F.kl_div(a, b), lambda a, b: (b * (np.log(b) - a)).mean(),
     (logp, p), (), ("kl_div", {"reduction": "mean"})),
    ("bce", lambda a, b: F.binary_cross_entropy(a, b),
     lambda a, b: -(b * np.log(a) + (1 - b) * np.log(1 - a)).mean(), (p, q), (),
     ("binary_cross_entropy", {})),
    ("bce_weight", lambda a, b, c: F.binary_cross_entropy(a, b, c, reduction="sum"),
     lambda a, b, c: -(c * (b * np.log(a) + (1 - b) * np.log(1 - a))).sum(), (p, q, w), (),
     ("binary_cross_entropy", {"reduction": "sum"})),
    ("cosine_embedding", lambda a, b, t: F.cosine_embedding_loss(a, b, t, margin=0.1),
     lambda a, b, t: np.where(t == 1, 1 - (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1)),
                              np.maximum((a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))
                                         - 0.1, 0)).mean(), (x, y, pm1), (2,),
     ("cosine_embedding_loss", {"margin": 0.1})),
    ("margin_ranking", lambda a, b, t: F.margin_ranking_loss(a, b, t, margin=0.2),
     lambda a, b, t: np.maximum(-t * (a - b) + 0.2, 0).mean(), (x, y, pm1_2d), (2,),
     ("margin_ranking_loss", {"margin": 0.2})),
    ("hinge_embedding", lambda a, t: F.hinge_embedding_loss(a, t, margin=0.5),
     lambda a, t: np.where(t == 1, a, np.maximum(0.5 - a, 0)).mean(), (x, pm1_2d), (1,),
     ("hinge_embedding_loss", {"margin": 0.5})),
    ("soft_margin", lambda a, t: F.soft_margin_loss(a, t),
     lambda a, t: np.log1p(np.exp(-t * a)).mean(), (x, pm1_2d.astype(np.float64)), (1,),
     ("soft_margin_loss", {})),
    ("poisson_nll", lambda a, b: F.poisson_nll_loss(a, b),
     lambda a, b: (np.exp(a) - b * a).mean(), (x, counts), (), ("poisson_nll_loss", {})),
    ("poisson_nll_full", lambda a, b: F.poisson_nll_loss(a, b, log_input=False, full=True),
     lambda a, b: (a - b * np.log(a + 1e-8) + np.where(
         b > 1, b * np.log(np.maximum(b, 1)) - b + 0.5 * np.log(2 * np.pi * np.maximum(b, 1)),
         0)).mean(), (p + 0.5, counts), (), ("poisson_nll_loss", {"log_input": False,
                                                                  "full": True})),
]


@pytest.mark.parametrize("case", LOSSES, ids=lambda c: c[0])
def test_loss_reference_and_gradient(case) -> None:
    name, fn, ref, arrays, ints, _ = case
    args = [hybrid.tensor(a) if i in ints else t64(a) for i, a in enumerate(arrays)]
    np.testing.assert_allclose(fn(*args).numpy(), ref(*arrays), rtol=1e-10, atol=1e-12)
    gargs = [hybrid.tensor(a) if i in ints else np.asarray(a, np.float64)
             for i, a in enumerate(arrays)]
    gradcheck(fn, *gargs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", LOSSES, ids=lambda c: c[0])
def test_loss_matches_torch(case) -> None:
    torch = pytest.importorskip("torch")
    name, fn, _, arrays, ints, (tname, kw) = case
    tf = getattr(torch.nn.functional, tname)
    if name == "bce_weight":
        def tfn(a, b, c):
            return tf(a, b, c.detach(), **kw)
        oracle(lambda a, b, c: fn(a, b, c.detach()), tfn, *arrays, ints=ints)
        return
    if name == "poisson_nll_full":  # PyTorch's target gradient is NaN at target 0 (0 log 0)
        ints = (1,)
    oracle(fn, lambda *a: tf(*a, **kw), *arrays, ints=ints)


def test_loss_modules_and_legacy_reduction_arguments() -> None:
    a, b = t64(x), t64(y)
    with pytest.warns(UserWarning, match="size_average and reduce"):
        assert nn.MSELoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning):
        assert nn.L1Loss(reduce=False).reduction == "none"
    with pytest.warns(UserWarning):
        assert nn.CrossEntropyLoss(size_average=True, reduce=True).reduction == "mean"
    with pytest.warns(UserWarning):
        m = nn.SmoothL1Loss(size_average=False, beta=0.5)
    np.testing.assert_allclose(m(a, b).numpy(), _sl1(x, y, 0.5).sum())
    huber = nn.HuberLoss(delta=2.0)(a, b).item()
    assert huber == pytest.approx(F.huber_loss(a, b, delta=2.0).item())
    assert nn.KLDivLoss(reduction="batchmean")(t64(logp), t64(p)).item() == pytest.approx(
        (p * (np.log(p) - logp)).sum() / 4)
    assert nn.BCELoss(weight=t64(w))(t64(p), t64(q)).item() == pytest.approx(
        -(w * (q * np.log(p) + (1 - q) * np.log(1 - p))).mean())
    cel = nn.CosineEmbeddingLoss(margin=0.1)(a, b, hybrid.tensor(pm1))
    want = F.cosine_embedding_loss(a, b, hybrid.tensor(pm1), 0.1).item()
    assert cel.item() == pytest.approx(want)
    mrl = nn.MarginRankingLoss(0.2, reduction="sum")(a, b, hybrid.tensor(pm1_2d))
    assert mrl.item() == pytest.approx(np.maximum(-pm1_2d * (x - y) + 0.2, 0).sum())
    with pytest.raises(hybrid.ShapeError, match="batchmean"):
        nn.MSELoss(reduction="batchmean")
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(t64(x), t64(q))
    with pytest.raises(hybrid.ShapeError, match="same shape"):
        F.smooth_l1_loss(t64(x), t64(y[:, :2]))


def test_cross_entropy_and_nll_weights_match_torch() -> None:
    torch = pytest.importorskip("torch")
    logits = RNG.standard_normal((6, 4))
    target = RNG.integers(0, 4, 6)
    cw = RNG.uniform(0.2, 2.0, 4)
    oracle(lambda a: nn.CrossEntropyLoss(weight=hybrid.tensor(cw))(a, hybrid.tensor(target)),
           lambda a: torch.nn.CrossEntropyLoss(weight=torch.tensor(cw))(a, torch.tensor(target)),
           logits)
    oracle(lambda a: F.nll_loss(F.log_softmax(a, 1), hybrid.tensor(target), hybrid.tensor(cw)),
           lambda a: torch.nn.functional.nll_loss(torch.log_softmax(a, 1), torch.tensor(target),
                                                  torch.tensor(cw)), logits)


def test_distances_match_torch() -> None:
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    oracle(lambda a: F.normalize(a, dim=1), lambda a: tf.normalize(a, dim=1), x)
    oracle(lambda a: F.normalize(a, p=1, dim=0), lambda a: tf.normalize(a, p=1, dim=0), x)
    oracle(F.cosine_similarity, tf.cosine_similarity, x, y)
    oracle(lambda a, b: F.cosine_similarity(a, b, dim=0), lambda a, b: tf.cosine_similarity(
        a, b, dim=0), x, y[:1])
    oracle(F.pairwise_distance, tf.pairwise_distance, x, y)
    oracle(lambda a, b: F.pairwise_distance(a, b, p=1.0, keepdim=True),
           lambda a, b: tf.pairwise_distance(a, b, p=1.0, keepdim=True), x, y)
    zero = np.zeros((2, 3))
    oracle(lambda a: F.normalize(a), lambda a: tf.normalize(a), zero)  # zero rows: 0, grad finite


# --- extra ops against torch ---------------------------------------------------------------------


def test_ops_match_torch() -> None:
    torch = pytest.importorskip("torch")
    u = RNG.uniform(-0.9, 0.9, (3, 4))
    for name in "asin acos atan sinh cosh asinh atanh".split():
        oracle(getattr(hybrid, name), getattr(torch, name), u)
    oracle(hybrid.acosh, torch.acosh, 1.5 + np.abs(u))
    oracle(lambda a: a.cumsum(1), lambda a: a.cumsum(1), x)
    oracle(lambda a: hybrid.cumprod(a, 0), lambda a: torch.cumprod(a, 0), x)
    oracle(lambda a: hybrid.sort(a, 1, descending=True).values,
           lambda a: torch.sort(a, 1, descending=True).values, x)
    oracle(lambda a: hybrid.topk(a, 2).values, lambda a: torch.topk(a, 2).values, x)
    oracle(lambda a: hybrid.kthvalue(a, 2, 0).values, lambda a: torch.kthvalue(a, 2, 0).values, x)
    oracle(lambda a: a.tril(-1), lambda a: a.tril(-1), x)
    oracle(lambda a: hybrid.triu(a, 1), lambda a: torch.triu(a, 1), x)
    v3 = RNG.standard_normal((4, 3))
    oracle(lambda a, b: hybrid.cross(a, b, dim=1), lambda a, b: torch.cross(a, b, dim=1), v3,
           v3[::-1].copy())
    oracle(lambda a, b: linalg.cross(a, b), lambda a, b: torch.linalg.cross(a, b), v3, v3 * 2 + 1)
    oracle(lambda a, b: hybrid.einsum("bi,bj->bij", a, b),
           lambda a, b: torch.einsum("bi,bj->bij", a, b), x, y)
    oracle(lambda a: hybrid.einsum("ij->j", a), lambda a: torch.einsum("ij->j", a), x)
    oracle(lambda c, a, b: hybrid.baddbmm(c, a, b, beta=0.5, alpha=2),
           lambda c, a, b: torch.baddbmm(c, a, b, beta=0.5, alpha=2),
           RNG.standard_normal((2, 3, 2)), RNG.standard_normal((2, 3, 4)),
           RNG.standard_normal((2, 4, 2)))
    oracle(lambda c, a, b: hybrid.addbmm(c, a, b, beta=2, alpha=0.5),
           lambda c, a, b: torch.addbmm(c, a, b, beta=2, alpha=0.5),
           RNG.standard_normal((3, 2)), RNG.standard_normal((2, 3, 4)),
           RNG.standard_normal((2, 4, 2)))
    oracle(lambda c, a, b: hybrid.addmv(c, a, b), lambda c, a, b: torch.addmv(c, a, b),
           RNG.standard_normal(4), x, RNG.standard_normal(5))
    oracle(hybrid.msort, torch.msort, x)
    np.testing.assert_array_equal(hybrid.argsort(t64(x), 0).numpy(),
                                  torch.argsort(torch.tensor(x), 0).numpy())
    oracle(lambda c, a, b: hybrid.addmm(c, a, b, beta=0, alpha=1.5),
           lambda c, a, b: torch.addmm(c, a, b, beta=0, alpha=1.5), x[:, :2], x, y.T.copy()[:, :2])
    for p_, dim in [("fro", None), (1, 1), (3, 0), (math.inf, None), (-math.inf, 1), (2, (0, 1))]:
        oracle(lambda a: a.norm(p_, dim), lambda a: a.norm(p_, dim), x)
    oracle(lambda a: linalg.norm(a), lambda a: torch.linalg.norm(a), x)
    oracle(lambda a: linalg.norm(a, 1), lambda a: torch.linalg.norm(a, 1), x)
    oracle(lambda a: linalg.vector_norm(a, 0.5, 1),
           lambda a: torch.linalg.vector_norm(a, 0.5, 1), x)
    oracle(lambda a: linalg.matrix_norm(a, math.inf),
           lambda a: torch.linalg.matrix_norm(a, math.inf), x)
    oracle(lambda a: linalg.matrix_norm(a.detach(), "nuc"),
           lambda a: torch.linalg.matrix_norm(a.detach(), "nuc"), x)
    oracle(lambda a, b: hybrid.dist(a, b, 3), lambda a, b: torch.dist(a, b, 3), x, y)
    oracle(lambda a: linalg.vector_norm(a * 0), lambda a: torch.linalg.vector_norm(a * 0), x)


def test_unique_bincount_histc_match_torch() -> None:
    torch = pytest.importorskip("torch")
    ints = RNG.integers(0, 6, (4, 5))
    for kw in [{}, {"return_inverse": True}, {"return_counts": True},
               {"return_inverse": True, "return_counts": True}, {"dim": 0}, {"dim": 1}]:
        got = hybrid.unique(hybrid.tensor(ints), **kw)
        want = torch.unique(torch.tensor(ints), **kw)
        got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
        for g, t in zip(got, want):
            np.testing.assert_array_equal(g.numpy(), t.numpy(), err_msg=str(kw))
            assert g.dtype.name == str(t.dtype).split(".")[1]
    flat = ints.reshape(-1)
    np.testing.assert_array_equal(hybrid.bincount(hybrid.tensor(flat)).numpy(),
                                  torch.bincount(torch.tensor(flat)).numpy())
    bw = RNG.uniform(0, 1, flat.shape).astype(np.float32)
    got = hybrid.bincount(hybrid.tensor(flat), hybrid.tensor(bw), minlength=9)
    want = torch.bincount(torch.tensor(flat), torch.tensor(bw), minlength=9)
    assert got.dtype is hybrid.float32 and got.shape == (9,)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-6)
    data = RNG.standard_normal(50).astype(np.float32)
    for kw in [{}, {"bins": 7}, {"bins": 5, "min": -1, "max": 1}, {"bins": 4, "min": 0, "max": 3}]:
        np.testing.assert_array_equal(hybrid.histc(hybrid.tensor(data), **kw).numpy(),
                                      torch.histc(torch.tensor(data), **kw).numpy(), str(kw))
    with pytest.raises(hybrid.HybridIndexError, match="non-negative"):
        hybrid.bincount(hybrid.tensor([1, -1]))
    for a in [ints - 3, np.array(5), np.array(0), np.zeros((2, 0))]:
        h, t = hybrid.tensor(a), torch.tensor(a)
        np.testing.assert_array_equal(h.nonzero().numpy(), t.nonzero().numpy())
        assert h.nonzero().shape == tuple(t.nonzero().shape) and h.nonzero().dtype is hybrid.int64
        for hh, tt in zip(h.nonzero(as_tuple=True), t.nonzero(as_tuple=True), strict=True):
            np.testing.assert_array_equal(hh.numpy(), tt.numpy())
    m = ints > 2
    np.testing.assert_array_equal(hybrid.argwhere(hybrid.tensor(m)).numpy(),
                                  torch.argwhere(torch.tensor(m)).numpy())
    np.testing.assert_array_equal(
        hybrid.masked_select(hybrid.tensor(ints), hybrid.tensor(m[0])).numpy(),
        torch.masked_select(torch.tensor(ints), torch.tensor(m[0])).numpy())


# --- linalg -------------------------------------------------------------------------------------

A = RNG.standard_normal((3, 3)) + 3 * np.eye(3)
AB = RNG.standard_normal((2, 3, 3)) + 3 * np.eye(3)
B = RNG.standard_normal((3, 2))
SPD = A @ A.T + np.eye(3)


def test_linalg_values_gradients_and_torch() -> None:
    torch = pytest.importorskip("torch")
    tl = torch.linalg
    np.testing.assert_allclose(linalg.inv(t64(AB)).numpy(), np.linalg.inv(AB), rtol=1e-12)
    np.testing.assert_allclose(linalg.det(t64(AB)).numpy(), np.linalg.det(AB), rtol=1e-12)
    for fn in (linalg.inv, linalg.det, lambda a: linalg.slogdet(a).logabsdet):
        gradcheck(fn, AB)
    gradcheck(linalg.solve, A, B)
    gradcheck(linalg.solve, AB, B)  # broadcast batch
    gradcheck(linalg.solve, A, B[:, 0].copy())  # vector right-hand side
    gradcheck(lambda a, b: linalg.solve(a, b, left=False), A, B.T.copy())
    gradcheck(linalg.det, np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]]))  # singular
    oracle(linalg.inv, tl.inv, AB)
    oracle(linalg.det, tl.det, AB)
    oracle(lambda a: linalg.slogdet(a).logabsdet, lambda a: tl.slogdet(a).logabsdet, -A)
    oracle(linalg.solve, tl.solve, AB, B)
    oracle(lambda a: a.inverse(), lambda a: a.inverse(), A)
    sign = linalg.slogdet(t64(-A)).sign.item()
    assert sign == pytest.approx(np.sign(np.linalg.det(-A)))
    # second derivatives through the autograd Functions
    xa = t64(A, True)
    (g,) = hybrid.autograd.grad(linalg.det(xa), [xa], create_graph=True)
    (hh,) = hybrid.autograd.grad((g * g).sum(), [xa])
    ta = torch.tensor(A, requires_grad=True)
    (tg,) = torch.autograd.grad(tl.det(ta), [ta], create_graph=True)
    (th,) = torch.autograd.grad((tg * tg).sum(), [ta])
    np.testing.assert_allclose(hh.numpy(), th.numpy(), rtol=1e-9)


def test_linalg_decompositions() -> None:
    M = RNG.standard_normal((4, 3))
    U, S_, Vh = linalg.svd(t64(M), full_matrices=False)
    np.testing.assert_allclose((U.numpy() * S_.numpy()) @ Vh.numpy(), M, atol=1e-12)
    np.testing.assert_allclose(linalg.svdvals(t64(M)).numpy(), np.linalg.svd(M)[1], rtol=1e-12)
    Q, R = linalg.qr(t64(M))
    np.testing.assert_allclose(Q.numpy() @ R.numpy(), M, atol=1e-12)
    assert np.allclose(np.tril(R.numpy(), -1), 0)
    vals, vecs = linalg.eigh(t64(SPD))
    np.testing.assert_allclose(vecs.numpy() @ np.diag(vals.numpy()) @ vecs.numpy().T, SPD,
                               atol=1e-10)
    assert np.all(np.diff(vals.numpy()) >= 0)
    L = linalg.cholesky(t64(SPD))
    np.testing.assert_allclose(L.numpy() @ L.numpy().T, SPD, atol=1e-10)
    Uc = linalg.cholesky(t64(SPD), upper=True)
    np.testing.assert_allclose(Uc.numpy(), L.numpy().T, atol=1e-12)
    with pytest.raises(hybrid.AutogradError, match="not differentiable"):
        linalg.svd(t64(M, True))
    with pytest.raises(ValueError, match="singular"):
        linalg.inv(t64(np.ones((2, 2))))
    with pytest.raises(ValueError, match="positive-definite"):
        linalg.cholesky(t64(-SPD))
    with pytest.raises(hybrid.ShapeError, match="square"):
        linalg.det(t64(M))


def test_eager_only_ops_raise_under_compile_and_fall_back() -> None:
    for name, fn in [("linalg.inv", lambda a: linalg.inv(a)),
                     ("unique", lambda a: hybrid.unique(a)), ("nonzero", lambda a: a.nonzero()),
                     ("bincount", lambda a: (a > 0).long().reshape(-1).bincount()),
                     ("linalg.solve", lambda a: linalg.solve(a, a))]:
        with pytest.raises(hybrid.TraceError, match=f"{name}.*fallback='eager'"):
            hybrid.compile(fn)(t64(A))
        with pytest.warns(RuntimeWarning, match="running eagerly"):
            got = hybrid.compile(fn, fallback="eager")(t64(A))
        np.testing.assert_allclose(got.numpy(), fn(t64(A)).numpy())


@pytest.mark.usefixtures("compiled_backend")
def test_histc_compiles_with_eagers_bins() -> None:
    data = np.concatenate([RNG.standard_normal(40), [0.0, 1.0, -1.0, 2.0, np.nan]])
    for kw in [{}, {"bins": 7}, {"bins": 5, "min": -1, "max": 1}, {"bins": 4, "min": 0, "max": 3},
               {"bins": 3, "min": 2, "max": 2}]:
        for dt in (hybrid.float32, hybrid.float64):
            x = hybrid.tensor(data if kw else np.nan_to_num(data), dtype=dt)
            got = hybrid.compile(lambda a: a.histc(**kw))(x)
            want = x.histc(**kw)
            assert got.dtype is dt
            np.testing.assert_array_equal(got.numpy(), want.numpy(), err_msg=str(kw))
    same = hybrid.full((4,), 2.5)
    np.testing.assert_array_equal(hybrid.compile(lambda a: a.histc(4))(same).numpy(),
                                  same.histc(4).numpy())


def test_inplace_function_forms_match_pytorch():
    """hybrid.sin_(x) is x.sin_(): the same object back, updated; values as torch's."""
    torch = pytest.importorskip("torch")
    a = np.array([0.1, 0.5, 0.9], np.float32)
    for name in ("sin_", "exp_", "sqrt_", "tanh_", "relu_", "neg_", "zero_", "atanh_"):
        x = hybrid.tensor(a.copy())
        t = torch.tensor(a.copy())
        r = getattr(hybrid, name)(x)
        getattr(torch, name)(t)
        assert r is x
        np.testing.assert_allclose(x.numpy(), t.numpy(), rtol=1e-6, err_msg=name)
    x, t = hybrid.tensor(a.copy()), torch.tensor(a.copy())
    hybrid.clamp_(x, 0.2, 0.6)
    torch.clamp_(t, 0.2, 0.6)
    np.testing.assert_array_equal(x.numpy(), t.numpy())


@pytest.mark.parametrize("some", [True, False])
def test_svd_function_form_matches_pytorch(some):
    torch = pytest.importorskip("torch")
    a = np.random.default_rng(0).standard_normal((5, 3))
    u, s, v = hybrid.svd(hybrid.tensor(a), some=some)
    tu, ts, tv = torch.svd(torch.tensor(a), some=some)
    assert u.shape == tuple(tu.shape) and v.shape == tuple(tv.shape)
    np.testing.assert_allclose(s.numpy(), ts.numpy(), rtol=1e-12)
    k = 3  # the reconstruction from the leading singular vectors (signs may differ)
    np.testing.assert_allclose((u.numpy()[:, :k] * s.numpy()) @ v.numpy()[:, :k].T, a, atol=1e-12)
    _, _, v0 = hybrid.svd(hybrid.tensor(a), compute_uv=False)
    assert not v0.numpy().any()


def test_linalg_functions_take_pytorchs_keyword_names():
    torch = pytest.importorskip("torch")
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(12.0).reshape(3, 4)
    got = hybrid.matmul(input=hybrid.tensor(a), other=hybrid.tensor(b)).numpy()
    want = torch.matmul(input=torch.tensor(a), other=torch.tensor(b)).numpy()
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(hybrid.mm(hybrid.tensor(a), mat2=hybrid.tensor(b)).numpy(), want)
    np.testing.assert_array_equal(
        hybrid.outer(hybrid.tensor(a[0]), vec2=hybrid.tensor(b[0])).numpy(),
        torch.outer(torch.tensor(a[0]), vec2=torch.tensor(b[0])).numpy())
