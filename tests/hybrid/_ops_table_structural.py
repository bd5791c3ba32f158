"""The OpInfo rows of the reductions, movement (shape and view) ops, matmul and the indexing ops,
checked by tests/hybrid/test_ops.py."""

from __future__ import annotations

import numpy as np
from _ops_helpers import B8, FLOATS, I64, INTS, OpInfo, S, binary, idx, mask, to_bool, unary, values

import hybrid

OPS: list[OpInfo] = []


def add(*infos: OpInfo) -> None:
    OPS.extend(infos)


# --- reductions -------------------------------------------------------------------------------


def red_samples(kind="any", dims=(None, 1, -1, (0, 2)), empty=True):
    def gen(rng, dt):
        x = values(rng, (2, 3, 4), kind, dt)
        out = [S(x, d) for d in dims] + [S(x, 1, keepdim=True), S(x, (0, -1), keepdim=True)]
        out += [S(values(rng, (), kind, dt)), S(values(rng, (), kind, dt), 0),
                S(values(rng, (5,), kind, dt), 0)]
        if empty:
            out += [S(values(rng, (0, 3), kind, dt), 0), S(values(rng, (0, 3), kind, dt))]
        return out

    return gen


def _np_dim(d):
    return tuple(d) if isinstance(d, (tuple, list)) else d


def npred(fn):
    """A numpy reduction with torch's (dim, keepdim) calling convention."""
    def ref(x, dim=None, keepdim=False):
        if x.ndim == 0:
            return fn(x, axis=None, keepdims=False)
        return fn(x, axis=_np_dim(dim), keepdims=keepdim)

    return ref


def _i64(d):
    return I64


def _sum_dtype(d):
    return d if d.is_floating else I64


def ref_var(x, dim=None, keepdim=False, correction=1):
    ax = None if x.ndim == 0 else _np_dim(dim)
    n = x.size if ax is None else np.prod([x.shape[a] for a in np.atleast_1d(ax)])
    m = x.mean(axis=ax, keepdims=True) if x.ndim else x
    s = ((x - m) ** 2).sum(axis=ax, keepdims=keepdim if x.ndim else False)
    return s / (n - correction) if n - correction > 0 else s * np.nan


def ref_argmax(x, dim=None, keepdim=False):
    if dim is None or x.ndim == 0:
        r = np.argmax(x)
        return np.reshape(r, (1,) * x.ndim) if keepdim else np.asarray(r)
    r = np.argmax(x, axis=dim)
    return np.expand_dims(r, dim) if keepdim else r


def ref_argmin(x, dim=None, keepdim=False):
    return ref_argmax(-x, dim, keepdim)


def ref_logsumexp(x, dim, keepdim=False):
    ax = None if x.ndim == 0 else _np_dim(dim)
    return np.log(np.exp(x).sum(axis=ax, keepdims=keepdim if x.ndim else False))


def ref_max_dim(x, dim, keepdim=False):
    v = np.max(x, axis=dim, keepdims=keepdim)
    return v, ref_argmax(x, dim, keepdim)


def ref_min_dim(x, dim, keepdim=False):
    v = np.min(x, axis=dim, keepdims=keepdim)
    return v, ref_argmin(x, dim, keepdim)


add(
    OpInfo("sum", hybrid.sum, npred(np.sum), red_samples(), FLOATS + INTS + (B8,),
           out_dtype=_sum_dtype),
    OpInfo("sum_method", lambda x, *a, **k: x.sum(*a, **k), npred(np.sum), red_samples()),
    OpInfo("mean", hybrid.mean, npred(np.mean), red_samples(empty=False)),
    OpInfo("mean_empty", hybrid.mean, npred(np.mean),
           lambda rng, dt: [S(np.zeros((0, 3)), 0)], grad=False),
    OpInfo("prod", hybrid.prod, npred(np.prod), red_samples("nonzero"), FLOATS + INTS,
           out_dtype=_sum_dtype),
    OpInfo("amax", hybrid.amax, npred(np.max), red_samples(empty=False), FLOATS + INTS),
    OpInfo("amin", hybrid.amin, npred(np.min), red_samples(empty=False), FLOATS + INTS),
    OpInfo("amax_bool", hybrid.amax, npred(np.max), red_samples(empty=False), (B8,), grad=False),
    OpInfo("max_all", lambda x: hybrid.max(x), np.max,
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt)), S(values(rng, (), "any", dt))],
           FLOATS + INTS),
    OpInfo("min_all", lambda x: x.min(), np.min,
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt)), S(values(rng, (), "any", dt))],
           FLOATS + INTS),
    OpInfo("max_all_ties", lambda x: hybrid.max(x), np.max,
           lambda rng, dt: [S(values(rng, (3, 4), "int", dt) // 4)], FLOATS + INTS, grad=False),
    OpInfo("max_dim", lambda x, d, k=False: tuple(hybrid.max(x, d, k)), ref_max_dim,
           lambda rng, dt: [S(values(rng, (3, 4)), 1), S(values(rng, (3, 4)), 0, True),
                            S(values(rng, (2, 3, 4)), -2), S(values(rng, (5,)), 0)]),
    OpInfo("max_dim_ties", lambda x, d: tuple(x.max(d)), ref_max_dim,
           lambda rng, dt: [S(values(rng, (4, 6), "int", dt) // 4, 1), S(np.ones((3, 2)), 0)],
           FLOATS + INTS, grad=False),
    OpInfo("min_dim", lambda x, d, k=False: tuple(hybrid.min(x, d, k)), ref_min_dim,
           lambda rng, dt: [S(values(rng, (3, 4)), 1), S(values(rng, (3, 4)), 0, True)]),
    OpInfo("min_dim_ties", lambda x, d: tuple(x.min(d)), ref_min_dim,
           lambda rng, dt: [S(values(rng, (4, 6), "int", dt) // 4, 1)], FLOATS + INTS,
           grad=False),
    OpInfo("max_binary", lambda a, b: hybrid.max(a, b), np.maximum, binary(scalars=())),
    OpInfo("argmax", hybrid.argmax, ref_argmax,
           lambda rng, dt: [S(values(rng, (4, 6), "int", dt) // 4, d, k)
                            for d in (None, 0, 1, -1) for k in (False, True)]
           + [S(values(rng, (), "any", dt)), S(values(rng, (5,), "any", dt), 0)],
           FLOATS + INTS, grad=False, out_dtype=_i64),
    OpInfo("argmin", hybrid.argmin, ref_argmin,
           lambda rng, dt: [S(values(rng, (4, 6), "int", dt) // 4, d, k)
                            for d in (None, 0, 1) for k in (False, True)],
           FLOATS + INTS, grad=False, out_dtype=_i64),
    OpInfo("var", hybrid.var, ref_var, red_samples(empty=False)),
    OpInfo("var_correction", lambda x, d, c: hybrid.var(x, d, correction=c),
           lambda x, d, c: ref_var(x, d, correction=c),
           lambda rng, dt: [S(values(rng, (3, 4)), 1, c) for c in (0, 1, 2)]
           + [S(values(rng, (3, 4)), None, 0)]),
    OpInfo("var_unbiased_false", lambda x, d: hybrid.var(x, d, unbiased=False),
           lambda x, d: ref_var(x, d, correction=0), lambda rng, dt: [S(values(rng, (3, 4)), 0)]),
    OpInfo("std", hybrid.std, lambda *a, **k: np.sqrt(ref_var(*a, **k)), red_samples(empty=False)),
    OpInfo("std_correction", lambda x, d, c: hybrid.std(x, d, correction=c),
           lambda x, d, c: np.sqrt(ref_var(x, d, correction=c)),
           lambda rng, dt: [S(values(rng, (3, 4)), 1, c) for c in (0, 2)]),
    OpInfo("logsumexp", hybrid.logsumexp, ref_logsumexp,
           lambda rng, dt: [S(values(rng, (2, 3, 4)), d) for d in (1, -1, (0, 2))]
           + [S(values(rng, (3, 4)), 1, True), S(values(rng, ()), 0),
              S(values(rng, (3,)) * 300, 0)]),
    OpInfo("all", hybrid.all, npred(np.all),
           lambda rng, dt: [S(values(rng, (3, 4), "int", dt), d) for d in (None, 0, 1)]
           + [S(np.ones((2, 3)), 1, True), S(np.zeros((0, 3))), S(np.ones(()))],
           FLOATS + INTS + (B8,), grad=False, out_dtype=to_bool),
    OpInfo("any", hybrid.any, npred(np.any),
           lambda rng, dt: [S(values(rng, (3, 4), "int", dt) // 7, d) for d in (None, 0, 1)]
           + [S(np.zeros((2, 3)), 1, True), S(np.zeros((0, 3))), S(np.ones(()))],
           FLOATS + INTS + (B8,), grad=False, out_dtype=to_bool),
    OpInfo("count_nonzero", hybrid.count_nonzero, lambda x, d=None: np.count_nonzero(x, axis=d),
           lambda rng, dt: [S(values(rng, (3, 4), "int", dt) // 4, d) for d in (None, 0, 1)],
           FLOATS + INTS, grad=False, out_dtype=_i64),
)


# --- movement ---------------------------------------------------------------------------------


def x_(shape, kind="any"):
    return lambda rng, dt: values(rng, shape, kind, dt)


def samples(*specs):
    """specs: (shape, *extra args); returns a generator of S(x, *extra)."""
    return lambda rng, dt: [S(values(rng, sp[0], "any", dt), *sp[1:]) for sp in specs]


def ref_pad(x, p, value=0.0):
    pads = [(0, 0)] * x.ndim
    for i in range(len(p) // 2):
        pads[x.ndim - 1 - i] = (p[2 * i], p[2 * i + 1])
    crop = tuple(slice(max(-lo, 0), x.shape[d] - max(-hi, 0)) for d, (lo, hi) in enumerate(pads))
    x = x[crop]
    return np.pad(x, [(max(lo, 0), max(hi, 0)) for lo, hi in pads], constant_values=value)


def ref_split(x, s, dim=0):
    n = x.shape[dim]
    if isinstance(s, int):
        cuts = list(range(s, n, s))
    else:
        cuts = list(np.cumsum(s)[:-1])
    return tuple(np.split(x, cuts, axis=dim))


def ref_chunk(x, c, dim=0):
    n = x.shape[dim]
    size = -(-n // c)
    return ref_split(x, size, dim)


add(
    OpInfo("reshape", hybrid.reshape, np.reshape,
           samples(((3, 4), (4, 3)), ((3, 4), (-1,)), ((2, 3, 4), (4, -1)), ((), (1, 1)),
                   ((6,), (2, 1, 3)), ((0, 3), (3, 0)), ((0, 3), (-1, 3)), ((1,), ())), FLOATS + INTS),
    OpInfo("view", lambda x, *s: x.view(*s), lambda x, *s: x.reshape(s),
           samples(((3, 4), 2, 6), ((3, 4), -1), ((2, 3, 4), 6, -1))),
    OpInfo("permute", hybrid.permute, np.transpose,
           samples(((2, 3, 4), (2, 0, 1)), ((2, 3, 4), (-1, 0, 1)), ((), ()), ((0, 3), (1, 0))),
           FLOATS + INTS),
    OpInfo("permute_method", lambda x, *d: x.permute(*d), lambda x, *d: np.transpose(x, d),
           samples(((2, 3, 4), 1, 2, 0))),
    OpInfo("transpose", hybrid.transpose, lambda x, a, b: np.swapaxes(x, a, b) if x.ndim else x,
           samples(((3, 4), 0, 1), ((2, 3, 4), -1, 0), ((5,), 0, -1), ((), 0, 0))),
    OpInfo("T", lambda x: x.T, lambda x: x.T, samples(((3, 4),), ((2, 3, 4),), ((5,),), ((),))),
    OpInfo("t", lambda x: x.t(), lambda x: x.T, samples(((3, 4),), ((5,),))),
    OpInfo("mT", lambda x: x.mT, lambda x: np.swapaxes(x, -1, -2), samples(((2, 3, 4),))),
    OpInfo("expand", lambda x, *s: x.expand(*s), lambda x, *s: np.broadcast_to(
        x, tuple(x.shape[i - (len(s) - x.ndim)] if v == -1 else v for i, v in enumerate(s))),
           samples(((3, 1), 3, 4), ((4,), 2, 3, 4), ((), 2, 2), ((3, 1), -1, 5), ((1, 1), 0, 1))),
    OpInfo("expand_as", lambda x, y: x.expand_as(y), lambda x, y: np.broadcast_to(x, y.shape),
           lambda rng, dt: [S(values(rng, (3, 1)), values(rng, (2, 3, 4)))]),
    OpInfo("broadcast_to", hybrid.broadcast_to, np.broadcast_to, samples(((3, 1), (2, 3, 4)))),
    OpInfo("squeeze", hybrid.squeeze, lambda x, d=None: np.squeeze(x, axis=d),
           samples(((3, 1, 4, 1),), ((3, 1, 4, 1), 1), ((3, 1, 4, 1), -1), ((3, 1, 4, 1), (1, 3)),
                   ((1,),), ((),), ((1, 0),))),
    OpInfo("squeeze_noop", lambda x: x.squeeze(0), lambda x: x, samples(((3, 4),))),
    OpInfo("unsqueeze", hybrid.unsqueeze, np.expand_dims,
           samples(((3, 4), 0), ((3, 4), 2), ((3, 4), -1), ((), 0), ((0, 2), 1))),
    OpInfo("flatten", hybrid.flatten, lambda x, a=0, b=-1: x.reshape(
        x.shape[:a] + (-1,) + x.shape[b % x.ndim + 1:]) if x.ndim else x.reshape(1),
           samples(((2, 3, 4),), ((2, 3, 4), 1), ((2, 3, 4), 0, 1), ((),), ((2, 0, 3), 1))),
    OpInfo("unflatten", hybrid.unflatten, lambda x, d, s: x.reshape(x.shape[:d] + s + x.shape[d + 1:]),
           samples(((2, 12), 1, (3, 4)))),
    OpInfo("contiguous", lambda x: x.contiguous(), lambda x: x, unary(), FLOATS + INTS),
    OpInfo("clone", hybrid.clone, np.copy, unary(), FLOATS + INTS),
    OpInfo("cat", lambda *xs, dim=0: hybrid.cat(list(xs), dim), lambda *xs, dim=0:
           np.concatenate(xs, axis=dim),
           lambda rng, dt: [S(values(rng, (2, 3), "any", dt), values(rng, (1, 3), "any", dt)),
                            S(values(rng, (2, 3), "any", dt), values(rng, (2, 2), "any", dt),
                              dim=1),
                            S(values(rng, (2, 3), "any", dt), values(rng, (2, 1), "any", dt),
                              values(rng, (2, 2), "any", dt), dim=-1),
                            S(values(rng, (0, 3), "any", dt), values(rng, (2, 3), "any", dt)),
                            S(values(rng, (4,), "any", dt))], FLOATS + INTS),
    OpInfo("cat_mixed_dtype", lambda a, b: hybrid.cat([a, b.long()]),
           lambda a, b: np.concatenate([a, b]),
           lambda rng, dt: [S(values(rng, (2, 3)), values(rng, (1, 3), "int"))], grad=False),
    OpInfo("stack", lambda *xs, dim=0: hybrid.stack(list(xs), dim),
           lambda *xs, dim=0: np.stack(xs, axis=dim),
           lambda rng, dt: [S(values(rng, (2, 3), "any", dt), values(rng, (2, 3), "any", dt)),
                            S(values(rng, (2, 3), "any", dt), values(rng, (2, 3), "any", dt),
                              dim=2),
                            S(values(rng, (2, 3), "any", dt), values(rng, (2, 3), "any", dt),
                              dim=-1),
                            S(values(rng, (), "any", dt), values(rng, (), "any", dt)),
                            S(values(rng, (0, 2), "any", dt), values(rng, (0, 2), "any", dt),
                              dim=1)], FLOATS + INTS),
    OpInfo("split", lambda x, s, d=0: hybrid.split(x, s, d), ref_split,
           samples(((5, 3), 2), ((5, 3), 3, 1), ((5, 3), [1, 4]), ((5, 3), [1, 0, 2], 1),
                   ((6,), 6))),
    OpInfo("chunk", lambda x, c, d=0: hybrid.chunk(x, c, d), ref_chunk,
           samples(((5, 3), 2), ((6, 3), 3), ((2, 7), 3, 1))),
    OpInfo("unbind", lambda x, d=0: hybrid.unbind(x, d), lambda x, d=0: tuple(np.moveaxis(x, d, 0)),
           samples(((3, 4),), ((3, 4), 1), ((2, 3, 4), -1))),
    OpInfo("pad", lambda x, p, v=0.0: hybrid.ops.shape.pad(x, p, value=v), ref_pad,
           samples(((3, 4), (1, 2)), ((3, 4), (1, 0, 0, 2), 1.5), ((2, 3, 4), (0, 1, 2, 0, 1, 1)),
                   ((3, 4), (-1, 2)), ((3, 4), (-1, -1, 1, 0)), ((0, 2), (1, 1)))),
    OpInfo("repeat", lambda x, *r: x.repeat(*r), lambda x, *r: np.tile(x, r),
           samples(((2, 3), 2, 1), ((2, 3), 1, 3), ((3,), 2, 2), ((), 3), ((2, 3), 2, 1, 2))),
    OpInfo("flip", hybrid.flip, lambda x, d: np.flip(x, d),
           samples(((3, 4), 0), ((3, 4), (0, 1)), ((2, 3, 4), [-1]), ((5,), 0))),
    OpInfo("narrow", hybrid.narrow, lambda x, d, s, n: np.take(x, range(s % x.shape[d],
                                                                     s % x.shape[d] + n), axis=d),
           samples(((5, 3), 0, 1, 3), ((5, 3), 1, 1, 2), ((5, 3), -1, -2, 2), ((5, 3), 0, 2, 0))),
)

# --- matmul -----------------------------------------------------------------------------------

MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 4)), ((2, 3), (3, 4)),
                 ((2, 2, 3), (2, 3, 4)), ((2, 1, 2, 3), (3, 3, 4)), ((3,), (2, 3, 4)),
                 ((2, 2, 3), (3,)), ((0, 3), (3, 4)), ((2, 0), (0, 4)), ((1, 2, 3), (2, 3, 4))]


def mm_samples(shapes):
    return lambda rng, dt: [S(values(rng, a, "any", dt), values(rng, b, "any", dt))
                            for a, b in shapes]


add(
    OpInfo("matmul", hybrid.matmul, np.matmul, mm_samples(MATMUL_SHAPES), FLOATS + INTS),
    OpInfo("matmul_dunder", lambda a, b: a @ b, np.matmul, mm_samples(MATMUL_SHAPES[:6])),
    OpInfo("mm", hybrid.mm, np.matmul, mm_samples([((2, 3), (3, 4))])),
    OpInfo("bmm", hybrid.bmm, np.matmul, mm_samples([((2, 2, 3), (2, 3, 4))])),
    OpInfo("dot", hybrid.dot, np.dot, mm_samples([((3,), (3,)), ((0,), (0,))])),
    OpInfo("outer", hybrid.outer, np.outer, mm_samples([((3,), (4,))])),
)

# --- indexing ops -----------------------------------------------------------------------------


def ref_gather(x, dim, index):
    out = np.zeros(index.shape, dtype=x.dtype)
    for pos in np.ndindex(*index.shape):
        src = list(pos)
        src[dim] = index[pos]
        out[pos] = x[tuple(src)]
    return out


def ref_scatter_add(x, dim, index, src):
    out = x.copy()
    src = src[tuple(slice(0, n) for n in index.shape)]
    for pos in np.ndindex(*index.shape):
        tgt = list(pos)
        tgt[dim] = index[pos]
        out[tuple(tgt)] += src[pos]
    return out


def ref_index_add(x, dim, index, src, alpha=1):
    out = x.copy()
    for k, i in enumerate(index):
        sl = [slice(None)] * x.ndim
        sl[dim] = i
        ssl = [slice(None)] * x.ndim
        ssl[dim] = k
        out[tuple(sl)] += alpha * src[tuple(ssl)]
    return out


add(
    OpInfo("gather", hybrid.gather, ref_gather,
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt), 1, idx(rng.integers(0, 4, (3, 2)))),
                            S(values(rng, (3, 4), "any", dt), 0, idx(rng.integers(0, 3, (5, 4)))),
                            S(values(rng, (3, 4), "any", dt), -1, idx(rng.integers(0, 4, (2, 3)))),
                            S(values(rng, (2, 3, 4), "any", dt), 2,
                              idx(rng.integers(0, 4, (2, 3, 6)))),
                            S(values(rng, (3, 4), "any", dt), 1, idx(np.zeros((3, 0))))],
           FLOATS + INTS),
    OpInfo("index_select", hybrid.index_select, lambda x, d, i: np.take(x, i, axis=d),
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt), 0, idx([2, 0, 2])),
                            S(values(rng, (3, 4), "any", dt), 1, idx([3, 1])),
                            S(values(rng, (2, 3, 4), "any", dt), -1, idx([0, 0, 1, 3])),
                            S(values(rng, (3, 4), "any", dt), 0, idx(np.zeros(0)))],
           FLOATS + INTS),
    OpInfo("scatter_add", hybrid.scatter_add, ref_scatter_add,
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt), 0, idx(rng.integers(0, 3, (2, 4))),
                              values(rng, (2, 4), "any", dt)),
                            S(values(rng, (3, 4), "any", dt), 1, idx(rng.integers(0, 4, (3, 6))),
                              values(rng, (3, 6), "any", dt)),
                            S(values(rng, (3, 4), "any", dt), 1, idx(rng.integers(0, 4, (2, 2))),
                              values(rng, (3, 5), "any", dt))],
           FLOATS + INTS),
    OpInfo("index_add", hybrid.index_add, ref_index_add,
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt), 0, idx([0, 2, 0]),
                              values(rng, (3, 4), "any", dt)),
                            S(values(rng, (3, 4), "any", dt), 1, idx([3, 1]),
                              values(rng, (3, 2), "any", dt)),
                            S(values(rng, (3, 4), "any", dt), 0, idx([1]),
                              values(rng, (1, 4), "any", dt), alpha=2)],
           FLOATS + INTS),
    OpInfo("masked_fill", hybrid.masked_fill, lambda x, m, v: np.where(m, v, x),
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt), mask(rng.random((3, 4)) < 0.5), -1.0),
                            S(values(rng, (3, 4), "any", dt), mask(rng.random((4,)) < 0.5), 2),
                            S(values(rng, (), "any", dt), mask(True), 7)], FLOATS + INTS),
    OpInfo("masked_fill_tensor", hybrid.masked_fill, lambda x, m, v: np.where(m, v, x),
           lambda rng, dt: [S(values(rng, (3, 4)), mask(rng.random((3, 4)) < 0.5),
                              values(rng, ()))]),
    OpInfo("take", hybrid.take, lambda x, i: np.take(x, i),
           lambda rng, dt: [S(values(rng, (3, 4), "any", dt), idx([[0, 11], [5, -1]])),
                            S(values(rng, (5,), "any", dt), idx(2)),
                            S(values(rng, (3, 4), "any", dt), idx(np.zeros(0)))], FLOATS + INTS),
)
