"""Compiled conformance of every op of the table-driven suites (tests/hybrid/test_ops.py OPS and
tests/hybrid/test_ops_extra.py EXTRA): each sample runs forward AND backward inside one compiled
function, `y = op(*xs); y.backward(cotangent); return y, [x.grad for x in xs]`, on both backends,
and must give eager's outputs and gradients, including the gradients that fold to constants
(reshape, sum, add, permute, cat, split, linear...). On the native backend a fallback to the
interpreter fails the test (the conftest fixture and the warning filter below) unless the op is
listed in EXPECTED_FALLBACK; an op that cannot be traced must raise a clear hybrid.TraceError."""

from __future__ import annotations

import numpy as np
import pytest
from test_ops import OPS, Idx, Mask, OpInfo, S, to_hybrid
from test_ops_extra import EXTRA

import hybrid as h

pytestmark = [pytest.mark.usefixtures("compiled_backend"),
              pytest.mark.filterwarnings("error:hybrid.compile. running .* on the interpreter"
                                         ":RuntimeWarning")]

# Rows whose op is computed eagerly (LAPACK, data-dependent results): compiling raises TraceError.
UNTRACEABLE = {"matrix_norm_svd": "linalg.svdvals .* cannot be compiled"}
# Rows that may run on the interpreter under backend="native" (none today).
EXPECTED_FALLBACK: dict[str, str] = {}
# Rows known to give a different answer or crash when compiled: name -> the bug (none today).
KNOWN_BUGS: dict[str, str] = {}

# (rtol, atol relative to the largest finite magnitude) of compiled vs eager, by dtype.
TOL = {"float16": (2e-2, 2e-2), "float32": (1e-5, 1e-5), "float64": (1e-10, 1e-10)}


def _as_list(y) -> list:
    return list(y) if isinstance(y, (tuple, list)) else [y]


def check_close(got, want, what: str) -> None:
    """Same shape and dtype, equal values (floats within TOL of their dtype, NaN where eager)."""
    if want is None:
        assert got is None or not np.any(got.numpy()), f"{what}: eager has no gradient"
        return
    assert got is not None, f"{what}: missing (eager has one)"
    assert isinstance(got, h.Tensor), f"{what}: {type(got)}"
    assert tuple(got.shape) == tuple(want.shape), f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype is want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    g, w = got.detach().numpy(), want.detach().numpy()
    if w.dtype.kind != "f":
        np.testing.assert_array_equal(g, w, err_msg=what)
        return
    finite = np.abs(w[np.isfinite(w)].astype(np.float64))
    scale = max(1.0, float(finite.max()) if finite.size else 1.0)
    rtol, atol = TOL[w.dtype.name]
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale, equal_nan=True, err_msg=what)


class Case:
    """One sample of one row as a function of its tensor arguments, with fixed cotangents."""

    def __init__(self, info: OpInfo, sample: S, dtype):
        self.info, self.sample, self.dtype = info, sample, dtype
        self.pos = [i for i, a in enumerate(sample.args) if isinstance(a, np.ndarray)]
        with h.no_grad():
            ys = _as_list(self.call(*self.leaves()))
        rng = np.random.default_rng(11)
        diff = info.grad and any(t.requires_grad for t in self.leaves())
        self.cots = [h.tensor(rng.standard_normal(tuple(y.shape)).astype(y.dtype.np))
                     if diff and y.dtype.is_floating else None for y in ys]

    def leaves(self) -> list:
        """Fresh tensor arguments; floating ones require grad on differentiable rows."""
        out = []
        for i in self.pos:
            a = self.sample.args[i]
            t = to_hybrid(a, self.dtype)
            if self.info.grad and t.dtype.is_floating and not isinstance(a, (Idx, Mask)):
                t.requires_grad_(True)
            out.append(t)
        return out

    def call(self, *ts):
        args = list(self.sample.args)
        for i, t in zip(self.pos, ts):
            args[i] = t
        return self.info.op(*args, **self.sample.kwargs)

    def step(self, *xs):
        """The function under test: forward, backward with the fixed cotangents, the grads."""
        y = self.call(*xs)
        pairs = [(o, c) for o, c in zip(_as_list(y), self.cots) if c is not None]
        if len(pairs) == 1:
            pairs[0][0].backward(pairs[0][1])
        elif pairs:
            h.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])
        return y, [x.grad for x in xs]

    def check(self, backend: str) -> None:
        want_y, want_g = self.step(*self.leaves())
        got_y, got_g = h.compile(self.step)(*self.leaves())
        what = f"{self.info.name} {self.sample} {self.dtype.name} {backend}"
        want_y, got_y = _as_list(want_y), _as_list(got_y)
        assert len(got_y) == len(want_y), f"{what}: {len(got_y)} outputs, eager {len(want_y)}"
        for k, (g, w) in enumerate(zip(got_y, want_y)):
            check_close(g, w, f"{what} out{k}")
        for k, (g, w) in enumerate(zip(got_g, want_g)):
            check_close(g, w, f"{what} grad{k}")


def _rows() -> list:
    params = []
    for info in OPS + EXTRA:
        marks = []
        if info.name in EXPECTED_FALLBACK:
            marks.append(pytest.mark.expect_fallback)
        if info.name in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[info.name]))
        params.append(pytest.param(info, id=info.name, marks=marks))
    return params


@pytest.mark.parametrize("info", _rows())
def test_compiled_forward_and_backward_match_eager(info: OpInfo, compiled_backend: str) -> None:
    """Every sample of the row, in the row's first dtype, compiled with its backward inside."""
    dtype = info.dtypes[0]
    samples = info.samples(np.random.default_rng(5), dtype)
    if info.name in UNTRACEABLE:
        case = Case(info, samples[0], dtype)
        with pytest.raises(h.TraceError, match=UNTRACEABLE[info.name]):
            h.compile(case.step)(*case.leaves())
        return
    if info.name in EXPECTED_FALLBACK and compiled_backend == "native":
        with pytest.warns(RuntimeWarning, match="on the interpreter"):
            _check_all(info, samples, dtype, compiled_backend)
        return
    _check_all(info, samples, dtype, compiled_backend)


@pytest.mark.parametrize("info", _rows())
def test_compiled_other_dtypes_match_eager(info: OpInfo, compiled_backend: str) -> None:
    """Every further dtype of the row (float64, float16, integers, bool: the first is above),
    its first sample, compiled with its backward inside."""
    if len(info.dtypes) < 2 or info.name in UNTRACEABLE:
        pytest.skip("the row has one dtype" if len(info.dtypes) < 2 else "untraceable")
    for dtype in info.dtypes[1:]:
        samples = info.samples(np.random.default_rng(6), dtype)
        if info.name in EXPECTED_FALLBACK and compiled_backend == "native":
            with pytest.warns(RuntimeWarning, match="on the interpreter"):
                _check_all(info, samples[:1], dtype, compiled_backend)
        else:
            _check_all(info, samples[:1], dtype, compiled_backend)


def _check_all(info: OpInfo, samples: list, dtype, backend: str) -> None:
    with np.errstate(all="ignore"):
        for sample in samples:
            Case(info, sample, dtype).check(backend)


def test_every_row_is_covered() -> None:
    """The lists above name only rows that exist (a renamed row would silently drop out)."""
    names = {o.name for o in OPS + EXTRA}
    for table in (UNTRACEABLE, EXPECTED_FALLBACK, KNOWN_BUGS):
        assert set(table) <= names, set(table) - names
    assert len(OPS) + len(EXTRA) >= 200


# --- compositions the tables do not hold: indexing chains and scatters over broadcast values -----


def _emb_sum(w, ids):
    return h.nn.functional.embedding(ids, w).sum()


COMPOSED = [
    # the backward of x[idx] is a scatter-add whose source is the pad/expand of a smaller
    # cotangent: its kernel ran over more elements than any of its buffers (plan.cc refused it)
    ("index_then_slice", lambda x, i: x[i][0:1], ((1, 2), [0, 0])),
    ("index_expanded_cotangent", lambda x, i: x[i] * 1.0, ((1, 2), [0, 0, 0])),
    ("embedding_sum_more_ids_than_rows", _emb_sum, ((3, 2), [0, 1, 2, 0, 1, 2, 0, 1])),
    ("index_select_slice", lambda x, i: h.index_select(x, 0, i)[1:], ((2, 3), [1, 0, 1, 1])),
    ("gather_then_sum", lambda x, i: x[i].sum(0), ((2, 4), [1, 1, 0, 1, 0])),
    ("double_index", lambda x, i: x[i][i], ((3, 2), [2, 0, 2])),
]


@pytest.mark.parametrize("name,fn,spec", COMPOSED, ids=[c[0] for c in COMPOSED])
def test_composed_indexing_matches_eager(name, fn, spec, compiled_backend: str) -> None:
    """Indexing compositions, backward inside the compiled function, give eager's gradients."""
    shape, ids = spec
    data = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    idx = h.tensor(np.array(ids))
    with h.no_grad():
        out_shape = tuple(fn(h.tensor(data), idx).shape)
    cot = h.tensor(np.random.default_rng(4).standard_normal(out_shape).astype(np.float32))

    def step(x, i, c):
        y = fn(x, i)
        y.backward(c)
        return y, x.grad

    xe, xc = h.tensor(data, requires_grad=True), h.tensor(data, requires_grad=True)
    want = step(xe, idx, cot)
    got = h.compile(step)(xc, idx, cot)
    check_close(got[0], want[0], f"{name} out")
    check_close(got[1], want[1], f"{name} grad")
