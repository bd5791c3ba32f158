"""The extra ops of the tutorial surface (asin..atanh, cumsum/cumprod, sort/topk, tril/triu, cross,
einsum, addmm/baddbmm, norms, distances, losses, linalg) in the table-driven op suite: each row
against a float64 numpy reference on contiguous and non-contiguous inputs, by finite differences,
compiled (forward and backward) against eager, and against PyTorch where it is installed."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F
from gradcheck import gradcheck
from hybrid import linalg
from test_ops import F64, FLOATS, INTS, Idx, Mask, OpInfo, S, compare, to_hybrid, unary, values

I64 = hybrid.int64
EXTRA: list[OpInfo] = []


def add(*infos: OpInfo) -> None:
    EXTRA.extend(infos)


def _in(lo, hi):
    return lambda rng, dt: [S(rng.uniform(lo, hi, s)) for s in [(3, 4), (), (0, 2), (5,)]]


def int64_for_ints(d):
    return d if d.is_floating else I64


# --- elementwise ------------------------------------------------------------------------------
add(
    OpInfo("asin", hybrid.asin, np.arcsin, unary("unit")),
    OpInfo("acos", hybrid.acos, np.arccos, unary("unit")),
    OpInfo("atan", hybrid.atan, np.arctan, unary()),
    OpInfo("sinh", hybrid.sinh, np.sinh, unary()),
    OpInfo("cosh", hybrid.cosh, np.cosh, unary()),
    OpInfo("asinh", hybrid.asinh, np.arcsinh, both_ := (lambda rng, dt: unary()(rng, dt) + [
        S(np.array([0.0, 1e-9, -3e-5, 1e9, -4e20, 50.0]))])),
    OpInfo("acosh", hybrid.acosh, np.arccosh, _in(1.1, 5.0)),
    OpInfo("acosh_wide", hybrid.acosh, np.arccosh,
           lambda rng, dt: [S(np.array([1.0, 1.0 + 1e-6, 2.0, 1e10, 3e20]))], grad=False),
    OpInfo("atanh", hybrid.atanh, np.arctanh, unary("unit")),
    OpInfo("atanh_edges", hybrid.atanh, np.arctanh,
           lambda rng, dt: [S(np.array([-1.0, 1.0, 2.0, 0.0, 1e-8]))], grad=False),
    OpInfo("asin_int", hybrid.asin, np.arcsin, lambda rng, dt: [S(np.array([-1, 0, 1]))], INTS,
           grad=False, out_dtype=lambda d: hybrid.float32),
)
del both_

# --- scans ------------------------------------------------------------------------------------


def _scan_samples(kind):
    def gen(rng, dt):
        return [S(values(rng, (3, 4), kind, dt), 1), S(values(rng, (3, 4), kind, dt), 0),
                S(values(rng, (9,), kind, dt), 0), S(values(rng, (2, 1, 5), kind, dt), -1),
                S(values(rng, (), kind, dt), 0), S(values(rng, (0, 3), kind, dt), 1)]

    return gen


add(
    OpInfo("cumsum", hybrid.cumsum, lambda x, d: np.cumsum(x, axis=d) if x.ndim else x,
           _scan_samples("any"), FLOATS + INTS, out_dtype=int64_for_ints),
    OpInfo("cumprod", hybrid.cumprod, lambda x, d: np.cumprod(x, axis=d) if x.ndim else x,
           _scan_samples("nonzero"), FLOATS + INTS, out_dtype=int64_for_ints),
    OpInfo("cumprod_zeros", hybrid.cumprod, lambda x, d: np.cumprod(x, axis=d),
           lambda rng, dt: [S(np.array([[2.0, 0.0, 3.0, 0.5], [0.0, 0.0, 1.5, 2.0]]), 1)]),
)

# --- sorting ----------------------------------------------------------------------------------


def _sort_ref(x, dim=-1, descending=False):
    order = np.argsort(-x if descending else x, axis=dim, kind="stable")
    return np.take_along_axis(x, order, dim), order


def _sort_samples(rng, dt):
    return [S(values(rng, (3, 5), "any", dt)), S(values(rng, (4, 3), "any", dt), 0),
            S(values(rng, (3, 5), "any", dt), -1, True), S(values(rng, (7,), "any", dt))]


def _ties_samples(rng, dt):
    ties = np.array([[1.0, 3.0, 1.0, 2.0, 3.0], [0.0, 0.0, -1.0, 5.0, 0.0]])
    return [S(ties), S(ties, 1, True), S(ties.T.copy(), 0), S(ties.T.copy(), 0, True)]


def _topk_ref(x, k, dim=-1, largest=True):
    v, i = _sort_ref(x, dim, largest)
    return np.take(v, range(k), axis=dim), np.take(i, range(k), axis=dim)


def _kth_ref(x, k, dim=-1, keepdim=False):
    v, i = _sort_ref(x, dim)
    v, i = np.take(v, [k - 1], axis=dim), np.take(i, [k - 1], axis=dim)
    return (v, i) if keepdim else (np.squeeze(v, dim), np.squeeze(i, dim))


add(
    OpInfo("sort", lambda x, *a: tuple(hybrid.sort(x, *a)), _sort_ref, _sort_samples,
           FLOATS + INTS),
    OpInfo("sort_stable_ties", lambda x, *a: tuple(hybrid.sort(x, *a, stable=True)), _sort_ref,
           _ties_samples, FLOATS + INTS, grad=False),
    OpInfo("argsort", hybrid.argsort, lambda x, *a: _sort_ref(x, *a)[1], _sort_samples,
           FLOATS + INTS, grad=False, out_dtype=lambda d: I64),
    OpInfo("msort", hybrid.msort, lambda x: np.sort(x, axis=0),
           lambda rng, dt: [S(values(rng, s, "any", dt)) for s in [(3, 4), (5,), (0, 3)]]),
    OpInfo("topk", lambda x, *a: tuple(hybrid.topk(x, *a)), _topk_ref,
           lambda rng, dt: [S(values(rng, (3, 5), "any", dt), 2),
                            S(values(rng, (4, 3), "any", dt), 3, 0),
                            S(values(rng, (6,), "any", dt), 4, -1, False)], FLOATS + INTS),
    OpInfo("kthvalue", lambda x, *a: tuple(hybrid.kthvalue(x, *a)), _kth_ref,
           lambda rng, dt: [S(values(rng, (3, 5), "any", dt), 2),
                            S(values(rng, (4, 3), "any", dt), 4, 0, True)], FLOATS + INTS),
)

# --- matrices ---------------------------------------------------------------------------------


def _tri_samples(rng, dt):
    return [S(values(rng, (4, 5), "any", dt)), S(values(rng, (4, 5), "any", dt), 1),
            S(values(rng, (2, 3, 3), "any", dt), -1), S(values(rng, (3, 6), "any", dt), 4)]


def _einsum_samples(rng, dt):
    v = lambda *s: values(rng, s, "any", dt)  # noqa: E731
    return [S("ij,jk->ik", v(3, 4), v(4, 2)), S("bij,bjk->bik", v(2, 3, 4), v(2, 4, 5)),
            S("ij->ji", v(3, 4)), S("ii->i", v(3, 3)), S("ii", v(3, 3)), S("ij->", v(2, 3)),
            S("i,j->ij", v(3), v(4)), S("...ij,...jk", v(2, 3, 4), v(4, 2)),
            S("bhqd,bhkd->bhqk", v(2, 2, 3, 4), v(2, 2, 5, 4)), S("ij,ij->i", v(3, 4), v(3, 4)),
            S("ij,jk,kl->il", v(2, 3), v(3, 4), v(4, 2)), S("i,i", v(5), v(5))]


def _einsum_hybrid(eq, *xs):
    return hybrid.einsum(eq, *xs)


add(
    OpInfo("tril", hybrid.tril, lambda x, k=0: np.tril(x, k), _tri_samples, FLOATS + INTS),
    OpInfo("triu", hybrid.triu, lambda x, k=0: np.triu(x, k), _tri_samples, FLOATS + INTS),
    OpInfo("cross", hybrid.cross, lambda a, b, d=None: np.cross(*np.broadcast_arrays(a, b),
                                                             axis=-1 if d is None else d),
           lambda rng, dt: [S(values(rng, (4, 3), "any", dt), values(rng, (4, 3), "any", dt)),
                            S(values(rng, (3, 2), "any", dt), values(rng, (3, 2), "any", dt), 0),
                            S(values(rng, (2, 3), "any", dt), values(rng, (3,), "any", dt), 1)],
           FLOATS + INTS),
    OpInfo("einsum", _einsum_hybrid, np.einsum, _einsum_samples, FLOATS + INTS),
    OpInfo("addmm", lambda c, a, b, **k: hybrid.addmm(c, a, b, **k),
           lambda c, a, b, beta=1, alpha=1: beta * c + alpha * (a @ b),
           lambda rng, dt: [S(values(rng, (3, 2)), values(rng, (3, 4)), values(rng, (4, 2))),
                            S(values(rng, (2,)), values(rng, (3, 4)), values(rng, (4, 2)),
                              beta=0.5, alpha=2.0)]),
    OpInfo("addmv", lambda c, a, b: hybrid.addmv(c, a, b), lambda c, a, b: c + a @ b,
           lambda rng, dt: [S(values(rng, (3,)), values(rng, (3, 4)), values(rng, (4,)))]),
    OpInfo("addbmm", lambda c, a, b, **k: hybrid.addbmm(c, a, b, **k),
           lambda c, a, b, beta=1, alpha=1: beta * c + alpha * (a @ b).sum(0),
           lambda rng, dt: [S(values(rng, (3, 2)), values(rng, (2, 3, 4)), values(rng, (2, 4, 2)),
                              beta=0.5, alpha=-1.0)]),
    OpInfo("baddbmm", lambda c, a, b, **k: hybrid.baddbmm(c, a, b, **k),
           lambda c, a, b, beta=1, alpha=1: beta * c + alpha * (a @ b),
           lambda rng, dt: [S(values(rng, (2, 3, 2)), values(rng, (2, 3, 4)),
                              values(rng, (2, 4, 2))),
                            S(values(rng, (1, 3, 2)), values(rng, (2, 3, 4)),
                              values(rng, (2, 4, 2)), beta=-1.0, alpha=0.5)]),
)

# --- norms and distances ----------------------------------------------------------------------


def _vnorm_ref(x, ord=2, dim=None, keepdim=False):
    axes = tuple(range(x.ndim)) if dim is None else (dim if isinstance(dim, tuple) else (dim,))
    a = np.abs(x)
    if ord == math.inf:
        return a.max(axis=axes, keepdims=keepdim)
    if ord == -math.inf:
        return a.min(axis=axes, keepdims=keepdim)
    if ord == 0:
        return (a != 0).sum(axis=axes, keepdims=keepdim).astype(x.dtype)
    return (a ** ord).sum(axis=axes, keepdims=keepdim) ** (1.0 / ord)


def _vnorm_samples(rng, dt):
    v = lambda *s: values(rng, s, "nonzero", dt)  # noqa: E731
    return [S(v(3, 4)), S(v(3, 4), 1), S(v(3, 4), 2, 1, True), S(v(3, 4), math.inf, 0),
            S(v(2, 3, 4), -math.inf, (0, 2)), S(v(5), 3), S(v(5), 0.5), S(v(3, 4), -1, 1),
            S(v(2, 3), 2, (0, 1), True)]


def _mnorm_ref(x, ord="fro", dim=(-2, -1), keepdim=False):
    m = np.moveaxis(x, dim, (-2, -1))
    out = np.linalg.norm(m, ord=ord, axis=(-2, -1))
    if keepdim:
        for d in sorted(a % x.ndim for a in dim):
            out = np.expand_dims(out, d)
    return out


def _mnorm_samples(rng, dt):
    v = lambda *s: values(rng, s, "nonzero", dt)  # noqa: E731
    return [S(v(3, 4)), S(v(3, 4), 1), S(v(3, 4), -1), S(v(2, 3, 4), math.inf),
            S(v(3, 4), -math.inf, (1, 0)), S(v(2, 3, 4), "fro", (0, 2), True)]


add(
    OpInfo("vector_norm", linalg.vector_norm, _vnorm_ref, _vnorm_samples),
    OpInfo("vector_norm_ord0", linalg.vector_norm, _vnorm_ref,
           lambda rng, dt: [S(np.array([[0.0, 1.5, -2.0], [0.0, 0.0, 3.0]]), 0, 1),
                            S(np.array([0.0, 2.0]), 0)], grad=False),
    OpInfo("matrix_norm", linalg.matrix_norm, _mnorm_ref, _mnorm_samples),
    OpInfo("matrix_norm_svd", linalg.matrix_norm, _mnorm_ref,
           lambda rng, dt: [S(values(rng, (3, 4)), "nuc"), S(values(rng, (2, 3, 3)), 2),
                            S(values(rng, (4, 3)), -2)], grad=False),
    OpInfo("norm_fro", hybrid.norm, lambda x, p="fro", dim=None: _vnorm_ref(x, 2, dim),
           lambda rng, dt: [S(values(rng, (3, 4), "nonzero")),
                            S(values(rng, (3, 4), "nonzero"), "fro", 1)]),
    OpInfo("norm_p", lambda x, p, *a: x.norm(p, *a), _vnorm_ref,
           lambda rng, dt: [S(values(rng, (3, 4), "nonzero"), 1), S(values(rng, (3, 4)), 3, 0),
                            S(values(rng, (3, 4)), math.inf)]),
    OpInfo("linalg_norm", linalg.norm,
           lambda x, ord=None, dim=None: (_vnorm_ref(x, 2 if ord is None else ord, dim)
                                          if ord is None or x.ndim == 1
                                          else np.linalg.norm(x, ord)),
           lambda rng, dt: [S(values(rng, (3, 4), "nonzero")), S(values(rng, (5,)), 1),
                            S(values(rng, (3, 4)), math.inf), S(values(rng, (3, 4)), None, 1)]),
    OpInfo("dist", hybrid.dist, lambda a, b, p=2: _vnorm_ref(a - b, p),
           lambda rng, dt: [S(values(rng, (3, 4)), values(rng, (4,))),
                            S(values(rng, (3,)), values(rng, (3,)), 1)]),
    OpInfo("norm_zero_grad", linalg.vector_norm, _vnorm_ref,
           lambda rng, dt: [S(np.zeros((2, 3)), 2, 1)]),
    OpInfo("normalize", F.normalize,
           lambda x, p=2.0, dim=1: x / np.maximum(_vnorm_ref(x, p, dim, True), 1e-12),
           lambda rng, dt: [S(values(rng, (3, 4))), S(values(rng, (3, 4)), 1.0, 0),
                            S(values(rng, (2, 3, 4)), 2.0, -1)]),
    OpInfo("cosine_similarity", F.cosine_similarity,
           lambda a, b, dim=1: (a * b).sum(dim) / (np.linalg.norm(a, axis=dim)
                                                   * np.linalg.norm(b, axis=dim)),
           lambda rng, dt: [S(values(rng, (3, 4)), values(rng, (3, 4))),
                            S(values(rng, (2, 5)), values(rng, (1, 5)), -1),
                            S(values(rng, (4, 3)), values(rng, (4, 3)), 0)]),
    OpInfo("pairwise_distance", F.pairwise_distance,
           lambda a, b, p=2.0: _vnorm_ref(a - b + 1e-6, p, -1),
           lambda rng, dt: [S(values(rng, (3, 4)), values(rng, (3, 4))),
                            S(values(rng, (3, 4)), values(rng, (4,)), 1.0)]),
)

EXTRA_BY_NAME = {o.name: o for o in EXTRA}
assert len(EXTRA_BY_NAME) == len(EXTRA), "duplicate OpInfo names"

# Rows that compile (composites of primitives); the rest are eager-only (sorting, LAPACK).
COMPILED = ("asin acos atan sinh cosh asinh acosh atanh cumsum cumprod tril triu cross einsum "
            "addmm baddbmm vector_norm matrix_norm norm_fro dist normalize cosine_similarity "
            "pairwise_distance").split()


def _params():
    for info in EXTRA:
        for dt in info.dtypes:
            yield pytest.param(info, dt, id=f"{info.name}-{dt.name}")


@pytest.mark.parametrize("info,dtype", list(_params()))
def test_forward(info: OpInfo, dtype) -> None:
    """Every sample matches its float64 numpy reference."""
    rng = np.random.default_rng(0)
    for sample in info.samples(rng, dtype):
        compare(info, sample, dtype, "contiguous")


@pytest.mark.parametrize("info", EXTRA, ids=lambda o: o.name)
def test_noncontiguous(info: OpInfo) -> None:
    """Transposed and strided views give the same results."""
    rng = np.random.default_rng(1)
    for sample in info.samples(rng, info.dtypes[0]):
        for layout in ("transposed", "strided"):
            compare(info, sample, info.dtypes[0], layout)


def _grad_args(sample: S) -> list:
    return [np.asarray(a, dtype=np.float64) if isinstance(a, np.ndarray)
            and not isinstance(a, (Idx, Mask)) else to_hybrid(a, F64) for a in sample.args]


@pytest.mark.parametrize("info", [o for o in EXTRA if o.grad], ids=lambda o: o.name)
def test_gradient(info: OpInfo) -> None:
    """Autograd matches central finite differences in float64."""
    rng = np.random.default_rng(2)
    for sample in info.samples(rng, F64):
        args = _grad_args(sample)
        if not any(isinstance(a, np.ndarray) and a.size for a in args):
            continue
        gradcheck(lambda *xs: info.op(*xs, **sample.kwargs), *args, rtol=1e-5, atol=1e-6)


def _leaves(sample: S) -> list:
    return [hybrid.tensor(a, requires_grad=True) if isinstance(a, np.ndarray) and a.size
            and not isinstance(a, (Idx, Mask)) else to_hybrid(a, F64) for a in sample.args]


@pytest.mark.usefixtures("compiled_backend")
@pytest.mark.parametrize("name", COMPILED)
def test_compiled_matches_eager(name: str) -> None:
    """Compiled forward and backward (loss.backward() inside the compiled function) give eager's
    values and gradients."""
    info = EXTRA_BY_NAME[name]
    sample = info.samples(np.random.default_rng(3), F64)[0]
    cot = None

    def step(*xs):
        out = info.op(*xs, **sample.kwargs)
        loss = (out * cot).sum()
        loss.backward()
        return out

    eager_xs = _leaves(sample)
    with hybrid.no_grad():
        shape = info.op(*eager_xs, **sample.kwargs).shape
    cot = hybrid.tensor(np.random.default_rng(4).standard_normal(shape))
    want = step(*eager_xs)
    comp_xs = _leaves(sample)
    got = hybrid.compile(step)(*comp_xs)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for e, c in zip(eager_xs, comp_xs):
        if isinstance(e, hybrid.Tensor) and e.requires_grad:
            np.testing.assert_allclose(c.grad.numpy(), e.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_table_covers_the_new_ops() -> None:
    """Every op of the issue's list has a row (or its own test in test_losses_extra.py)."""
    names = {o.name for o in EXTRA}
    wanted = """asin acos atan sinh cosh asinh acosh atanh cumsum cumprod sort argsort msort topk
        kthvalue tril triu cross einsum addmm baddbmm vector_norm matrix_norm norm_fro norm_p
        linalg_norm dist normalize cosine_similarity pairwise_distance""".split()
    assert not set(wanted) - names, set(wanted) - names


SORT_CASES = [
    ("sort", lambda x: tuple(hybrid.sort(x, 1))),
    ("sort_desc_dim0", lambda x: tuple(hybrid.sort(x, 0, descending=True))),
    ("argsort", lambda x: (hybrid.argsort(x, -1, descending=True),)),
    ("msort", lambda x: (hybrid.msort(x),)),
    ("topk", lambda x: tuple(hybrid.topk(x, 3))),
    ("topk_smallest_dim0", lambda x: tuple(hybrid.topk(x, 2, 0, largest=False))),
    ("kthvalue", lambda x: tuple(hybrid.kthvalue(x, 2, 1, keepdim=True))),
]


@pytest.mark.usefixtures("compiled_backend")
@pytest.mark.parametrize("name,fn", SORT_CASES, ids=[c[0] for c in SORT_CASES])
def test_sorting_compiles_with_eagers_order(name: str, fn) -> None:
    """Compiled sorting (comparison counts) gives the eager numpy order: stable ties, NaN
    largest, -0.0 equal to 0.0; and the same gradient through the values."""
    base = np.array([[1.0, 3.0, np.nan, 1.0, -2.0, 3.0], [0.0, -0.0, 5.0, np.nan, np.nan, 0.0],
                     [2.5, -1.0, 0.5, 4.0, 2.5, -3.0]])
    ints = np.array([[3, 1, 3, 0, 2, 1], [5, 5, 5, -1, 0, 7], [0, 0, 0, 0, 0, 0]])
    for data, dtype in [(base, hybrid.float64), (base, hybrid.float32), (ints, hybrid.int64),
                        (ints > 1, hybrid.bool)]:
        want = fn(hybrid.tensor(data, dtype=dtype))
        got = hybrid.compile(fn)(hybrid.tensor(data, dtype=dtype))
        for g, w in zip(got, want):
            assert g.dtype is w.dtype and g.shape == w.shape
            np.testing.assert_array_equal(g.numpy(), w.numpy(), err_msg=f"{name} {dtype}")
    finite = np.nan_to_num(base, nan=7.0) + np.arange(18).reshape(3, 6) * 1e-3  # no ties

    def step(x):
        out = fn(x)[0]
        if out.dtype.is_floating:
            (out * out).sum().backward()
        return out

    xe, xc = hybrid.tensor(finite, requires_grad=True), hybrid.tensor(finite, requires_grad=True)
    step(xe)
    hybrid.compile(step)(xc)
    if xe.grad is not None:
        np.testing.assert_allclose(xc.grad.numpy(), xe.grad.numpy(), rtol=1e-12)
