"""A numpy evaluator of fused programs: runs each kernel over its whole index space with array
operations. It is the reference the LLVM code generator is tested against, and makes fusion
testable without a compiler."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler.ir.ops import Op, impls
from compiler.ir.reference import splitmix_uniform
from compiler.kernel import (
    Apply, Const, Gather, Iota, Kernel, Load, Padded, Rand, Row, Stage, depends_on,
)

_NP = impls(np)


def _coords(space: tuple[int, ...]) -> list[np.ndarray]:
    grids = np.indices(space, dtype=np.int64) if space else []
    return list(grids)


def _affine(coords: list, strides: tuple[int, ...], offset: int) -> Any:
    idx = np.int64(offset)
    for c, s in zip(coords, strides):
        if s:
            idx = idx + c * s
    return idx


def rand_values(state: np.ndarray, counters: Any, dtype: Any) -> np.ndarray:
    """The rand primitive's value at each counter (state = [seed, counter])."""
    u64 = np.uint64
    ctr = (np.asarray(counters).astype(np.uint64) + u64((int(state[1]) + 1) & (2**64 - 1)))
    with np.errstate(over="ignore"):
        return splitmix_uniform(np, int(state[0]), ctr, dtype)


def _eval(e: Any, coords: list, bufs: list, rows: dict, space: tuple) -> Any:
    if isinstance(e, Load):
        return bufs[e.arg][_affine(coords, e.strides, e.offset)]
    if isinstance(e, Const):
        return np.asarray(e.value, dtype=e.dtype.np)
    if isinstance(e, Iota):
        return np.asarray(_affine(coords, e.strides, e.offset)).astype(e.dtype.np)
    if isinstance(e, Apply):
        args = [_eval(a, coords, bufs, rows, space) for a in e.args]
        if e.op is Op.CAST:
            return np.asarray(args[0]).astype(dict(e.attrs)["dtype"].np)
        with np.errstate(all="ignore"):
            return np.asarray(_NP[e.op](*args))
    if isinstance(e, Rand):
        return rand_values(bufs[e.state], _affine(coords, e.lin, e.offset), e.dtype)
    if isinstance(e, Gather):
        idx = np.asarray(_eval(e.index, coords, bufs, rows, space)).astype(np.int64)
        idx = np.clip(idx, 0, e.axis_size - 1)
        return bufs[e.arg][_affine(coords, e.strides, e.offset) + idx * e.axis_stride]
    if isinstance(e, Padded):
        src = _affine([np.zeros_like(c) for c in coords], (0,) * len(coords), e.offset)
        valid = True
        for c, st, lo, step, size in zip(coords, e.strides, e.lows, e.steps, e.sizes):
            t = c - lo
            q = t // step
            valid = valid & (t >= 0) & (t % step == 0) & (q < size)
            src = src + np.clip(q, 0, max(size - 1, 0)) * st
        flat = bufs[e.arg]
        vals = flat[np.clip(src, 0, max(flat.size - 1, 0))] if flat.size else np.zeros(1)
        return np.where(valid, vals, np.asarray(e.value, dtype=e.dtype.np)).astype(e.dtype.np)
    if isinstance(e, Row):
        return rows[e.stage]
    raise TypeError(e)


def run_kernel(k: Kernel, bufs: list) -> None:
    """Run kernel `k` on flat numpy buffers (outputs written in place)."""
    space = k.outer + k.inner
    if math.prod(k.outer) == 0 or (math.prod(space) == 0 and
                                   not any(s.kind == "reduce" for s in k.stages)):
        return
    if math.prod(space) == 0:  # reductions over empty inner dims: rows hold the identity
        _run_empty_rows(k, bufs)
        return
    coords = _coords(space)
    n_outer = len(k.outer)
    inner_axes = tuple(range(n_outer, len(space)))
    rows: dict[int, Any] = {}
    for i, s in enumerate(k.stages):
        if s.kind == "reduce":
            v = np.broadcast_to(_eval(s.expr, coords, bufs, rows, space), space)
            if s.op is Op.MAX:
                r = np.max(v, axis=inner_axes, keepdims=True, initial=-np.inf) if v.dtype.kind \
                    == "f" else np.max(v, axis=inner_axes, keepdims=True)
            elif s.op is Op.SUM:
                r = np.sum(v, axis=inner_axes, keepdims=True, dtype=v.dtype)
            else:
                r = np.prod(v, axis=inner_axes, keepdims=True, dtype=v.dtype)
            rows[i] = r.astype(s.expr.dtype.np)
        elif s.kind == "row":
            rows[i] = np.broadcast_to(_eval(s.expr, coords, bufs, rows, space), space)
        elif s.kind == "store":
            v = np.broadcast_to(_eval(s.expr, coords, bufs, rows, space), space)
            idx = np.broadcast_to(_affine(coords, s.strides, s.offset), space)
            bufs[s.arg][idx.reshape(-1)] = v.reshape(-1)
        else:
            _scatter(s, coords, bufs, rows, space)


def _run_empty_rows(k: Kernel, bufs: list) -> None:
    """A kernel whose inner dims are empty: reductions give their identity; the stores that do
    not move along the inner dims run once per outer index."""
    n_outer, n_inner = len(k.outer), len(k.inner)
    one = k.outer + (1,) * n_inner
    coords = _coords(one)
    inner_dims = range(n_outer, n_outer + n_inner)
    rows: dict[int, Any] = {}
    for i, s in enumerate(k.stages):
        if s.kind == "reduce":
            ident = {Op.SUM: 0, Op.PROD: 1}.get(s.op)
            if ident is None:
                ident = -np.inf if s.expr.dtype.is_floating else np.iinfo(s.expr.dtype.np).min
            rows[i] = np.full(one, ident, dtype=s.expr.dtype.np)
        elif s.kind == "row":
            rows[i] = np.broadcast_to(_eval(s.expr, coords, bufs, rows, one), one)
        elif s.kind == "store" and not any(s.strides[d] for d in inner_dims) and \
                not depends_on(s.expr, inner_dims):
            v = np.broadcast_to(_eval(s.expr, coords, bufs, rows, one), one)
            idx = np.broadcast_to(_affine(coords, s.strides, s.offset), one)
            bufs[s.arg][idx.reshape(-1)] = v.reshape(-1)


def _scatter(s: Stage, coords: list, bufs: list, rows: dict, space: tuple) -> None:
    v = np.broadcast_to(_eval(s.expr, coords, bufs, rows, space), space).reshape(-1)
    index = np.broadcast_to(_eval(s.index, coords, bufs, rows, space), space).astype(np.int64)
    index = np.clip(index, 0, s.axis_size - 1)
    pos = (np.broadcast_to(_affine(coords, s.strides, s.offset), space) + index * s.axis_stride)
    if s.op is Op.ADD:
        np.add.at(bufs[s.arg], pos.reshape(-1), v)
    else:
        bufs[s.arg][pos.reshape(-1)] = v


def run_program(prog: Any, inputs: list) -> list:
    """Run a fused Program with numpy: every buffer separately allocated (no arena)."""
    from compiler.passes.fuse import Gemm

    g = prog.graph
    store: dict[int, np.ndarray] = {}
    for v, a in zip(g.inputs, inputs):
        store[v.id] = np.ascontiguousarray(a).reshape(-1)
    for vid, arr in prog.constants.items():
        store[vid] = arr.reshape(-1)
    for vid, t in prog.buffers.items():
        if vid not in store:
            store[vid] = np.zeros(t.numel, dtype=t.dtype.np)
    for step in prog.steps:
        if isinstance(step, Gemm):
            a = _view(store[step.a], step.a_view)
            b = _view(store[step.b], step.b_view)
            out = np.matmul(a, b).reshape(-1)
            if step.alpha != 1:
                out = out * out.dtype.type(step.alpha)
            if step.c is not None:
                out = store[step.c] + out
            store[step.out][...] = out
        else:
            run_kernel(step, [store[a.value] for a in step.args])
    return [store[v.id].reshape(v.shape) for v in g.outputs]


def _view(flat: np.ndarray, view: Any) -> np.ndarray:
    idx = _affine(_coords(view.shape), view.strides, view.offset)
    return flat[idx]



