"""Fusion: group a graph's primitives into loop kernels, BLAS matmuls and copies.

Which values get a buffer ("realized"): graph inputs and outputs, reductions, matmul and scatter
results, constants with more than one element, and values used by more than one node. Every other
value is inlined into the expression of the kernel that computes a realized value; movement ops
(permute, expand, slice, contiguous reshape) are folded into the strides of the loads they reach.
A reshape that strides cannot express realizes its input first.

Row fusion then merges kernels over the same space: a reduction and the elementwise work feeding
it become one kernel; an elementwise consumer at the reduction's output shape becomes a per-row
stage; and a consumer over the reduction's input space absorbs the whole row program, so softmax,
log_softmax and layer norm are one kernel each."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import ELEMENTWISE, EXPENSIVE, OPS, Op
from compiler.ir.types import DType, TensorType
from compiler.kernel import (  # Gemm and kernel_reads are imported from here too
    Apply, Arg, Const, Gather, Gemm, Iota, Kernel, Load, NotReindexable, Padded, Rand, Row, Stage,
    kernel_reads, walk,
)
from compiler.passes.gemm_epilogue import accumulating_gemms
from compiler.passes.loop_order import finish
from compiler.view import View, contiguous_strides

REDUCE_OPS = (Op.SUM, Op.PROD, Op.MAX)
MOVEMENT = (Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.SLICE)


class NeedsRealize(Exception):
    """Raised while building an expression that needs `value` to live in a buffer first."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value


@dataclass
class Program:
    """The fused program: steps in execution order over realized buffers."""

    graph: Graph
    steps: list  # Kernel | Gemm
    buffers: dict[int, TensorType]  # realized value id -> type (contiguous buffer)
    constants: dict[int, np.ndarray]
    owner: dict[int, str]  # graph value id -> name of the step that computes it

    @property
    def kernel_count(self) -> int:
        return sum(1 for s in self.steps if isinstance(s, Kernel))

    def __str__(self) -> str:
        from compiler.ir.printer import format_graph

        text = format_graph(self.graph, annotate=self.owner)
        parts = [text]
        parts += [str(s) for s in self.steps]
        return "\n".join(parts)


# --- what gets a buffer --------------------------------------------------------------------------


def _realized(graph: Graph) -> set[int]:
    out = {v.id for v in graph.inputs} | {v.id for v in graph.outputs}
    for n in graph.nodes:
        if n.op in REDUCE_OPS or n.op in (Op.MATMUL, Op.SCATTER, Op.SCATTER_ADD, Op.CONCAT):
            out.add(n.out.id)
        elif n.op is Op.CONSTANT and n.out.type.numel > 1:
            out.add(n.out.id)
    # A value read by the expressions of more than one realized value gets a buffer too, unless
    # it is cheap to recompute in each (a small expression without transcendentals): walk users
    # before producers, collecting which kernels read each value.
    cost = _inline_costs(graph, out)
    users = graph.users()
    anchors: dict[int, frozenset] = {}
    for n in reversed(graph.nodes):
        v = n.out.id
        if v in out:
            anchors[v] = frozenset([v])
            continue
        reach: set = set()
        for u in users.get(v, ()):
            reach |= anchors[u.out.id]
        shared = len(reach) > 1 and cost[v] > RECOMPUTE_COST
        if shared and (n.op in ELEMENTWISE or n.op in (Op.GATHER, Op.PAD, Op.RAND)):
            out.add(v)
            reach = {v}
        anchors[v] = frozenset(reach)
    return out


# Shared values whose inlined expression costs at most this much are recomputed by each kernel
# that reads them rather than stored (a compare, a cast, a select of loads: cheaper than a
# memory round trip and a kernel of their own).
RECOMPUTE_COST = 6


def _inline_costs(graph: Graph, realized: set[int]) -> dict[int, int]:
    """Per value: the size of the expression a kernel would inline to compute it."""
    cost: dict[int, int] = {v.id: 0 for v in graph.inputs}
    for n in graph.nodes:
        if n.out.id in realized:
            cost[n.out.id] = 0
            continue
        own = OPS[n.op].cost  # the op table's cost class
        cost[n.out.id] = own + sum(cost.get(v.id, 0) for v in n.inputs)
    return cost


# --- expressions -------------------------------------------------------------------------------


def _apply_view(view: View, op: Any, attrs: Any) -> View | None:
    if op is Op.PERMUTE:
        return view.permute(attrs)
    if op is Op.EXPAND:
        return view.expand(attrs)
    if op is Op.SLICE:
        return view.slice(*attrs)
    if op is Op.RESHAPE:
        return view.reshape(attrs)
    if op == "embed":  # the dims of an index tensor inside a gather's output space
        start, ndim = attrs
        lead = (0,) * start
        tail = (0,) * (ndim - start - len(view.shape))
        return View((1,) * start + view.shape + (1,) * len(tail), lead + view.strides + tail,
                    view.offset)
    raise AssertionError(op)


def _transform_attrs(node: Node) -> Any:
    a = node.attrs
    if node.op is Op.PERMUTE:
        return a["perm"]
    if node.op is Op.EXPAND or node.op is Op.RESHAPE:
        return a["shape"]
    return (a["starts"], a["stops"], a["steps"])


class _Builder:
    """Builds the expressions of one kernel, collecting its buffer arguments."""

    def __init__(self, prog: _Fuser, space_perm: tuple[int, ...] | None = None):
        self.f = prog
        self.args: list[Arg] = []
        self.arg_of: dict[int, int] = {}
        self.nodes: list[int] = []

    def arg(self, buffer: int, writes: bool = False) -> int:
        """The argument index of `buffer` (one per buffer: a kernel that writes and re-reads a
        buffer must do both through one pointer, or `noalias` would be a lie)."""
        i = self.arg_of.get(buffer)
        if i is None:
            i = self.arg_of[buffer] = len(self.args)
            self.args.append(Arg(buffer, self.f.types[buffer].dtype, writes))
        elif writes and not self.args[i].writes:
            self.args[i] = Arg(buffer, self.args[i].dtype, True)
        return i

    def leaf_view(self, base: View, pending: list, failing: int) -> View:
        v = base
        for op, attrs, src in reversed(pending):
            nv = _apply_view(v, op, attrs)
            if nv is None:
                raise NeedsRealize(src)
            v = nv
        return v

    def buffer_view(self, vid: int) -> tuple[int, View]:
        """A view chain from `vid` down to a realized buffer: (buffer id, view in vid's shape)."""
        chain = []
        cur = vid
        while cur not in self.f.realized:
            node = self.f.prod.get(cur)
            if node is None or node.op not in MOVEMENT:
                raise NeedsRealize(cur)
            chain.append((node.op, _transform_attrs(node), node.inputs[0].id))
            cur = node.inputs[0].id
        view = self.leaf_view(View.contiguous(self.f.types[cur].shape), chain, cur)
        return cur, view

    def expr(self, vid: int, pending: list) -> Any:
        """The value of `vid` at the kernel's coordinates (mapped through `pending` views)."""
        t = self.f.types[vid]
        if vid in self.f.realized:
            if vid in self.f.constants or vid in self.f.buffers_ready:
                view = self.leaf_view(View.contiguous(t.shape), pending, vid)
                return Load(self.arg(vid), t.dtype, view.strides, view.offset)
        node = self.f.prod[vid]
        self.nodes.append(vid)
        op = node.op
        if op in MOVEMENT:
            return self.expr(node.inputs[0].id, pending + [(op, _transform_attrs(node),
                                                            node.inputs[0].id)])
        if op in ELEMENTWISE:
            args = []
            for w in node.inputs:
                sub = pending
                if tuple(w.shape) != tuple(t.shape):  # implicit broadcasting
                    sub = pending + [(Op.EXPAND, t.shape, w.id)]
                args.append(self.expr(w.id, sub))
            attrs = (("dtype", node.attrs["dtype"]),) if op is Op.CAST else ()
            return Apply(op, tuple(args), t.dtype, attrs)
        if op is Op.FULL:
            return Const(node.attrs["value"], t.dtype)
        if op is Op.CONSTANT:  # a one-element constant
            return Const(node.attrs["value"].array.reshape(-1)[0].item(), t.dtype)
        if op is Op.IOTA:
            axis = node.attrs["axis"]
            base = View(t.shape, tuple(1 if d == axis else 0 for d in range(len(t.shape))), 0)
            view = self.leaf_view(base, pending, vid)
            return Iota(view.strides, view.offset, t.dtype)
        if op is Op.RAND:
            state = node.inputs[0].id
            if state not in self.f.realized:
                raise NeedsRealize(state)
            view = self.leaf_view(View.contiguous(t.shape), pending, vid)
            return Rand(self.arg(state), node.attrs["offset"] + view.offset, view.strides,
                        t.dtype)
        if op is Op.GATHER and not pending:
            x, idx = node.inputs
            axis = node.attrs["axis"]
            buf, xv = self.buffer_view(x.id)
            nd = len(idx.shape)
            strides = xv.strides[:axis] + (0,) * nd + xv.strides[axis + 1:]
            index = self.expr(idx.id, [("embed", (axis, len(t.shape)), idx.id)])
            return Gather(self.arg(buf), t.dtype, strides, xv.offset, xv.strides[axis],
                          x.shape[axis], index, self.f.site[vid])
        if op is Op.PAD and not pending:
            (x,) = node.inputs
            buf, xv = self.buffer_view(x.id)
            pads = node.attrs["pads"]
            return Padded(self.arg(buf), t.dtype, xv.strides, xv.offset,
                          tuple(lo for lo, _, _ in pads), tuple(it + 1 for _, _, it in pads),
                          tuple(x.shape), node.attrs["value"])
        raise NeedsRealize(vid)


# --- building kernels ----------------------------------------------------------------------------


@dataclass
class _RowKernel:
    """A kernel during fusion: its space in the order of the original dims of the value it
    computes (`dims`), which of them are reduced, and the permutation into loop order."""

    kernel: Kernel
    shape: tuple[int, ...]  # original space shape
    reduced: tuple[int, ...]  # original dims reduced (empty for elementwise)
    stores: dict[int, int]  # buffer id -> stage index that stores it
    rows: dict[int, int]  # buffer id -> Row stage whose value the store writes (row kernels)


class _Fuser:
    def __init__(self, graph: Graph, realized: set[int]):
        self.graph = graph
        self.realized = realized
        self.prod = {n.out.id: n for n in graph.nodes}
        # NOTE: a bounds check reports the node's position, not its value id: positions are the
        # same in another process that loads this plan from the disk cache for an equal graph.
        self.site = {n.out.id: i + 1 for i, n in enumerate(graph.nodes)}
        self.types = {v.id: v.type for v in graph.inputs}
        self.types.update({n.out.id: n.out.type for n in graph.nodes})
        self.constants: dict[int, np.ndarray] = {}
        self.buffers_ready: set[int] = {v.id for v in graph.inputs}
        self.steps: list = []
        self.owner: dict[int, str] = {}

    def name(self) -> str:
        return f"k{len(self.steps)}"

    def run(self) -> Program:
        for node in self.graph.nodes:
            vid = node.out.id
            if vid not in self.realized:
                continue
            op = node.op
            if op is Op.CONSTANT and node.out.type.numel > 1:
                self.constants[vid] = np.asarray(node.attrs["value"].array,
                                                 dtype=node.out.type.dtype.np)
            elif op is Op.MATMUL:
                self._gemm(node)
            elif op in REDUCE_OPS:
                self._reduce(node)
            elif op in (Op.SCATTER, Op.SCATTER_ADD):
                self._scatter(node)
            elif op is Op.CONCAT:
                self._concat(node)
            else:
                self._elementwise(vid, vid, node.out.type.shape)
            self.buffers_ready.add(vid)
        steps = _row_fusion(self.steps, self.graph)
        kernels = [finish(s) if isinstance(s, _RowKernel) else s for s in steps]
        kernels = accumulating_gemms(kernels, {v.id for v in self.graph.outputs}, self.types)
        owner = {}
        for s in kernels:
            for v in s.nodes:
                owner.setdefault(v, s.name)
        used = {v.id for v in self.graph.inputs} | {v.id for v in self.graph.outputs}
        used |= set(self.constants)
        for s in kernels:
            used |= {a.buffer for a in s.args} if isinstance(s, Kernel) else {s.a, s.b, s.out}
        buffers = {v: self.types[v] for v in self.realized if v in used}
        return Program(self.graph, kernels, buffers, self.constants, owner)

    def _new_kernel(self, b: _Builder, shape, reduced, stages, stores, rows) -> _RowKernel:
        k = Kernel(self.name(), b.args, (), (), stages, nodes=b.nodes)
        return _RowKernel(k, tuple(shape), tuple(reduced), stores, rows)

    def _elementwise(self, vid: int, out: int, shape: tuple[int, ...]) -> None:
        b = _Builder(self)
        b.nodes.append(vid)
        node = self.prod[vid]
        # the value itself, not its buffer (we are computing it)
        saved = vid in self.buffers_ready
        self.buffers_ready.discard(vid)
        self.realized.discard(vid)
        try:
            e = b.expr(vid, [])
        finally:
            self.realized.add(vid)
            if saved:
                self.buffers_ready.add(vid)
        del node
        dst = b.arg(out, writes=True)
        st = Stage("store", e, arg=dst, strides=contiguous_strides(shape), offset=0)
        self.steps.append(self._new_kernel(b, shape, (), [st], {out: 0}, {}))

    def _reduce(self, node: Node) -> None:
        (x,) = node.inputs
        axes = node.attrs["axes"]
        b = _Builder(self)
        b.nodes.append(node.out.id)
        e = b.expr(x.id, [])
        out_strides = tuple(0 if d in axes else s for d, s in
                            enumerate(contiguous_strides(node.out.type.shape)))
        dst = b.arg(node.out.id, writes=True)
        stages = [Stage("reduce", e, op=node.op),
                  Stage("store", Row(0, node.out.type.dtype), arg=dst, strides=out_strides)]
        self.steps.append(self._new_kernel(b, x.shape, axes, stages, {node.out.id: 1},
                                           {node.out.id: 0}))

    def _gemm(self, node: Node) -> None:
        a, bb = node.inputs
        if node.out.type.dtype not in (DType.float32, DType.float64) or 0 in a.shape or \
                0 in bb.shape:
            # NOTE: empty operands: a (possibly empty) reduction kernel writes the zeros
            return self._matmul_kernel(node)
        views = []
        for v in (a, bb):
            b = _Builder(self)
            # NOTE: a computed operand behind movement ops (the transpose of a gradient) gets a
            # buffer of its own, which BLAS reads through the view and other kernels can share;
            # only a view BLAS cannot read realizes the operand itself.
            buf, view = b.buffer_view(v.id)
            flat = _gemm_view(view)
            if flat is None:
                raise NeedsRealize(v.id)
            views.append((buf, flat))
        (abuf, av), (bbuf, bv) = views
        self.steps.append(Gemm(self.name(), abuf, bbuf, node.out.id, av, bv, [node.out.id]))

    def _matmul_kernel(self, node: Node) -> None:
        """A matmul BLAS has no routine for (int, float16): a reduction over k."""
        a, bb = node.inputs
        b = _Builder(self)
        b.nodes.append(node.out.id)
        abuf, av = b.buffer_view(a.id)
        bbuf, bv = b.buffer_view(bb.id)
        nb = len(a.shape) - 2
        a_str = av.strides[:nb] + (av.strides[-2], 0, av.strides[-1])
        b_str = bv.strides[:nb] + (0, bv.strides[-1], bv.strides[-2])
        dt = node.out.type.dtype
        e = Apply(Op.MUL, (Load(b.arg(abuf), dt, a_str, av.offset),
                           Load(b.arg(bbuf), dt, b_str, bv.offset)), dt)
        shape = tuple(node.out.type.shape) + (a.shape[-1],)
        out_strides = contiguous_strides(node.out.type.shape) + (0,)
        dst = b.arg(node.out.id, writes=True)
        stages = [Stage("reduce", e, op=Op.SUM),
                  Stage("store", Row(0, dt), arg=dst, strides=out_strides)]
        self.steps.append(self._new_kernel(b, shape, (len(shape) - 1,), stages,
                                           {node.out.id: 1}, {node.out.id: 0}))

    def _scatter(self, node: Node) -> None:
        x, idx, src = node.inputs
        out = node.out.id
        self._elementwise_into(x.id, out, node.out.type.shape, [out])
        b = _Builder(self)
        b.nodes.append(out)
        axis = node.attrs["axis"]
        shape = src.shape
        val = b.expr(src.id, [])
        index = b.expr(idx.id, [("embed", (axis, len(shape)), idx.id)])
        ostr = contiguous_strides(node.out.type.shape)
        nd = len(idx.shape)
        strides = ostr[:axis] + (0,) * nd + ostr[axis + 1:]
        dst = b.arg(out, writes=True)
        # NOTE: the kernel runs over src's elements; a src computed from smaller buffers (the pad
        # or expand of a cotangent, a broadcast constant) leaves no argument that long, which the
        # executor refuses (plan.cc validate_step): give src a buffer of its own then.
        if math.prod(shape) > max(self.types[a.buffer].numel for a in b.args):
            raise NeedsRealize(src.id)
        st = Stage("scatter", val, op=Op.ADD if node.op is Op.SCATTER_ADD else None, arg=dst,
                   strides=strides, index=index, axis_stride=ostr[axis],
                   axis_size=node.out.type.shape[axis], site=self.site[out])
        rk = self._new_kernel(b, shape, (), [st], {}, {})
        rk.kernel.serial = True
        self.steps.append(rk)

    def _elementwise_into(self, vid: int, out: int, shape, nodes: list[int],
                          offset: int = 0, strides: tuple[int, ...] | None = None) -> None:
        """A store kernel writing value `vid` into buffer `out` (at a slice for concat)."""
        b = _Builder(self)
        b.nodes.extend(nodes)
        e = b.expr(vid, [])
        dst = b.arg(out, writes=True)
        st = Stage("store", e, arg=dst,
                   strides=strides if strides is not None else contiguous_strides(shape),
                   offset=offset)
        self.steps.append(self._new_kernel(b, shape, (), [st], {}, {}))

    def _concat(self, node: Node) -> None:
        axis = node.attrs["axis"]
        ostr = contiguous_strides(node.out.type.shape)
        start = 0
        for x in node.inputs:
            self._elementwise_into(x.id, node.out.id, x.shape, [node.out.id],
                                   offset=start * ostr[axis], strides=ostr)
            start += x.shape[axis]


def _gemm_view(view: View) -> View | None:
    """The view as [batch, rows, cols] with one batch stride and a unit stride in one of the
    last two dims (what BLAS can read), or None."""
    shape, strides = view.shape, view.strides
    if len(shape) < 2:
        return None
    batch_shape, batch_strides = shape[:-2], strides[:-2]
    merged = View(batch_shape, batch_strides, 0).reshape((math.prod(batch_shape),))
    if merged is None:
        return None
    r, c = shape[-2:]
    rs, cs = strides[-2:]
    row_major = (cs == 1 or c == 1) and (r == 1 or rs >= max(c, 1))
    col_major = (rs == 1 or r == 1) and (c == 1 or cs >= max(r, 1))
    if not (row_major or col_major):  # e.g. broadcast (stride 0) rows: BLAS cannot read them
        return None
    return View((merged.shape[0], r, c), (merged.strides[0], rs, cs), view.offset)


# --- row fusion ----------------------------------------------------------------------------------


def _readers(steps: list, buf: int, start: int, stop: int) -> bool:
    for s in steps[start:stop]:
        reads = kernel_reads(s.kernel) if isinstance(s, _RowKernel) else s.reads()
        if buf in reads:
            return True
    return False


def _row_fusion(steps: list, graph: Graph) -> list:
    """Merge row kernels into later kernels over the same (or the row) space, to a fixed point."""
    outputs = {v.id for v in graph.outputs}
    changed = True
    while changed:
        changed = False
        for j, c in enumerate(steps):
            if not isinstance(c, _RowKernel) or c.kernel.serial:
                continue
            for i in range(j - 1, -1, -1):
                p = steps[i]
                if not isinstance(p, _RowKernel) or p.kernel.serial:
                    continue
                if not p.reduced and (p.shape != c.shape or not p.stores):
                    continue  # elementwise producers merge only into consumers of their space
                if not _reads_any(c, p):
                    continue
                merged = _try_merge(p, c)
                if merged is None:
                    continue
                produced = [a.buffer for a in p.kernel.args if a.writes]
                if any(_readers(steps, buf, i + 1, j) for buf in produced):
                    continue
                steps = steps[:i] + steps[i + 1:j] + [merged] + steps[j + 1:]
                changed = True
                break
            if changed:
                break
    return [_cleanup(s, steps, k, outputs) if isinstance(s, _RowKernel) else s
            for k, s in enumerate(steps)]


def _read_elsewhere(steps: list, k: int, buf: int, outputs: set[int]) -> bool:
    return buf in outputs or any(
        _readers(steps, buf, i, i + 1) for i in range(len(steps)) if i != k)


def _cleanup(rk: _RowKernel, steps: list, k: int, outputs: set[int]) -> _RowKernel:
    """Inside one kernel: a buffer stored and re-read at the same positions, and read by no other
    step, is recomputed from its expression instead (no memory round trip); stores nobody reads
    are dropped."""
    args = rk.kernel.args
    stages = list(rk.kernel.stages)
    for i in range(len(stages)):
        st = stages[i]  # NOTE: read from the current list: earlier inlining rewrote later stages
        if st is None or st.kind != "store":
            continue
        buf = args[st.arg].buffer
        if _read_elsewhere(steps, k, buf, outputs):
            continue
        same = [a for a, x in enumerate(args) if x.buffer == buf]

        def inline(e: Any) -> Any:
            if isinstance(e, Load) and e.arg in same:
                if e.strides == st.strides and e.offset == st.offset:
                    return st.expr
                raise _Keep()
            return e

        # NOTE: only stores that give each outer index positions of its own (no stride 0 over
        # a kept dim): another thread's outer index must never overwrite the kept value.
        private = all(x != 0 or d in rk.reduced or rk.shape[d] == 1
                      for d, x in enumerate(st.strides))
        target = _scratch_target(stages, i, args) if private and _expensive(st.expr) else None
        if target is not None:  # keep the value in memory, in the buffer a later stage writes
            stages = _store_into(stages, i, target, same)
            continue
        try:
            later = [None if s is None else s.map_exprs(inline) for s in stages[i + 1:]]
        except _Keep:
            continue
        stages = stages[:i] + [None] + later
    return _drop_dead_stores(_with_stages(rk, stages), steps, k, outputs)


def _expensive(e: Any) -> bool:
    return any(isinstance(x, Apply) and OPS[x.op].cost >= EXPENSIVE for x in walk(e))


def _loads_of(s: Stage, arg_ids: set[int]) -> list:
    found = [x for x in walk(s.expr) if isinstance(x, (Load, Gather, Padded))
             and x.arg in arg_ids]
    if s.index is not None:
        found += [x for x in walk(s.index) if isinstance(x, (Load, Gather)) and x.arg in arg_ids]
    return found


def _scratch_target(stages: list, i: int, args: list) -> int | None:
    """A later store stage t whose buffer can hold stage i's value until t overwrites it: no
    store in between reads that value or touches t's buffer, and every read of stage i's
    buffer lies in (i, t] at the stored positions. A store followed by a reduction and a
    rescale (softmax's exp, then the sum, then exp * 1/sum) then computes its expensive value
    once and keeps it in the output, as PyTorch's kernel does, rather than twice. Returns t,
    or None."""
    st = stages[i]
    buf = args[st.arg].buffer
    mine = {a for a, x in enumerate(args) if x.buffer == buf}
    for t in range(i + 1, len(stages)):
        out = stages[t]
        if out is None or out.kind == "row" or out.kind == "reduce":
            continue
        if out.kind != "store" or out.strides != st.strides or out.offset != st.offset or \
                args[out.arg].buffer == buf or args[out.arg].dtype is not args[st.arg].dtype:
            # NOTE: a store in between may be inlined into stages after t later on: one that
            # reads stage i's value would then read the overwritten one.
            if _loads_of(out, mine):
                return None
            continue
        theirs = {a for a, x in enumerate(args) if x.buffer == args[out.arg].buffer}
        between = [s for s in stages[i + 1:t + 1] if s is not None]
        after = [s for s in stages[t + 1:] if s is not None]
        if any(_loads_of(s, theirs) or s.arg in theirs for s in between[:-1]):
            return None  # its buffer is in use before t
        reads = [x for s in between for x in _loads_of(s, mine)]
        if any(_loads_of(s, mine) for s in after) or not reads or not all(
                isinstance(x, Load) and x.strides == st.strides and x.offset == st.offset
                for x in reads):
            return None
        return t
    return None


def _store_into(stages: list, i: int, t: int, mine: list) -> list:
    """Stage i stores into stage t's argument, and the reads of its own buffer in (i, t] read
    that argument instead."""
    target = stages[t].arg

    def conv(e: Any) -> Any:
        if isinstance(e, Load) and e.arg in mine:
            return Load(target, e.dtype, e.strides, e.offset)
        return e

    out = list(stages)
    out[i] = dataclasses.replace(stages[i], arg=target)
    for j in range(i + 1, t + 1):
        if out[j] is not None:
            out[j] = out[j].map_exprs(conv)
    return out


class _Keep(Exception):
    """A buffer is also read at other positions: it stays in memory."""


def _with_stages(rk: _RowKernel, stages: list) -> _RowKernel:
    """rk with some stages removed (None), Row references renumbered."""
    remap, n = {}, 0
    for i, s in enumerate(stages):
        if s is not None:
            remap[i] = n
            n += 1

    def conv(e: Any) -> Any:
        return Row(remap[e.stage], e.dtype) if isinstance(e, Row) else e

    new = [s.map_exprs(conv) for s in stages if s is not None]
    k = Kernel(rk.kernel.name, rk.kernel.args, (), (), new, nodes=rk.kernel.nodes,
               serial=rk.kernel.serial)
    rows = {b: remap[r] for b, r in rk.rows.items() if r in remap}
    return _RowKernel(k, rk.shape, rk.reduced, {}, rows)


def _reads_any(c: _RowKernel, p: _RowKernel) -> bool:
    """Whether kernel c reads a buffer kernel p writes."""
    written = {a.buffer for a in p.kernel.args if a.writes}
    return bool(written & kernel_reads(c.kernel))


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def _over_row_shape(p: _RowKernel, c: _RowKernel) -> _RowKernel | None:
    """c (elementwise) re-indexed over p's row shape when its space is that shape up to size-1
    dims (a reduction without keepdim is a reshape of the row: [12,1] -> [12]), else None."""
    row = tuple(1 if d in p.reduced else s for d, s in enumerate(p.shape))
    if c.reduced or c.kernel.serial or c.shape == row or _squeezed(c.shape) != _squeezed(row):
        return None
    # c dim -> p dim, pairing the dims of size > 1 in order (size-1 dims have coordinate 0)
    big_p = [d for d, s in enumerate(row) if s != 1]
    big_c = [d for d, s in enumerate(c.shape) if s != 1]
    where = dict(zip(big_p, big_c))

    def fix(strides: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(strides[where[d]] if d in where else 0 for d in range(len(row)))

    try:
        stages = [st.reindexed(fix, padded=False) for st in c.kernel.stages]
    except NotReindexable:
        return None
    k = Kernel(c.kernel.name, c.kernel.args, (), (), stages, nodes=c.kernel.nodes)
    return _RowKernel(k, row, (), dict(c.stores), dict(c.rows))


def _try_merge(p: _RowKernel, c: _RowKernel) -> _RowKernel | None:
    """p's row program followed by c, if c reads p's outputs only at p's row (or None)."""
    if c.reduced and c.reduced != p.reduced:
        return None
    if p.reduced:
        c = _over_row_shape(p, c) or c
    if c.shape == p.shape:
        c_map = None  # same original space
    elif c.shape == tuple(1 if d in p.reduced else s for d, s in enumerate(p.shape)) and \
            not c.reduced:
        c_map = "row"  # c is over p's output (row) shape: a per-row stage
    else:
        return None
    rows = dict(p.rows)
    # remap c's args into p's argument list
    args = list(p.kernel.args)
    index = {a.buffer: i for i, a in enumerate(args)}
    amap = {}
    for k, a in enumerate(c.kernel.args):
        if a.buffer not in index:
            index[a.buffer] = len(args)
            args.append(a)
        elif a.writes and not args[index[a.buffer]].writes:
            args[index[a.buffer]] = a
        amap[k] = index[a.buffer]
    offset = len(p.kernel.stages)
    row_bufs = {args[amap[k]].buffer: k for k in range(len(c.kernel.args))}
    stages = list(p.kernel.stages)
    new_rows = dict(rows)
    ok = [True]

    written = {a.buffer for a in p.kernel.args if a.writes}

    def conv(e: Any, row_space: bool) -> Any:
        if isinstance(e, Load):
            buf = args[amap[e.arg]].buffer
            if buf in rows and _is_row_read(e, p, buf, row_space):
                return Row(rows[buf], e.dtype)
            if buf in written and (buf in rows or not _same_row(e, p, buf)):
                ok[0] = False
            return Load(amap[e.arg], e.dtype, e.strides, e.offset)
        if isinstance(e, (Gather, Padded)) and args[amap[e.arg]].buffer in written:
            ok[0] = False  # data-dependent reads of p's output may cross rows (and threads)
        if isinstance(e, Apply):
            return Apply(e.op, tuple(conv(a, row_space) for a in e.args), e.dtype, e.attrs)
        if isinstance(e, Row):
            return Row(e.stage + offset, e.dtype)
        if isinstance(e, (Gather,)):
            return Gather(amap[e.arg], e.dtype, e.strides, e.offset, e.axis_stride,
                          e.axis_size, conv(e.index, row_space), e.site)
        if isinstance(e, Padded):
            return Padded(amap[e.arg], e.dtype, e.strides, e.offset, e.lows, e.steps, e.sizes,
                          e.value)
        if isinstance(e, Rand):
            return Rand(amap[e.state], e.offset, e.lin, e.dtype)
        return e

    del row_bufs
    for buf, r in c.rows.items():
        new_rows[buf] = r + offset
    stores = dict(p.stores)
    for s in c.kernel.stages:
        st = Stage(s.kind, conv(s.expr, c_map == "row"), op=s.op,
                   arg=amap[s.arg] if s.arg is not None else None, strides=s.strides,
                   offset=s.offset)
        if c_map == "row" and st.kind == "store" and not any(
                isinstance(x, (Load, Gather, Padded, Rand, Iota)) for x in walk(st.expr)):
            # a pure per-row value: keep it as a Row so later kernels can read it
            stages.append(Stage("row", st.expr))
            stages.append(Stage("store", Row(len(stages) - 1, st.expr.dtype), arg=st.arg,
                                strides=st.strides, offset=st.offset))
            buf = args[st.arg].buffer
            new_rows[buf] = len(stages) - 2
            stores[buf] = len(stages) - 1
            continue
        stages.append(st)
        if st.kind == "store":
            stores[args[st.arg].buffer] = len(stages) - 1
    if not ok[0]:
        return None
    if c_map == "row":
        stages = [_row_strides(s, p) if i >= offset else s for i, s in enumerate(stages)]
        if any(s is None for s in stages):
            return None
    nodes = p.kernel.nodes + [v for v in c.kernel.nodes if v not in p.kernel.nodes]
    k = Kernel(c.kernel.name, args, (), (), stages, nodes=nodes)
    return _RowKernel(k, p.shape, p.reduced, stores, new_rows)


def _is_row_read(e: Load, p: _RowKernel, buf: int, row_space: bool) -> bool:
    """Whether load `e` reads buffer `buf` exactly where p's row stores it."""
    store = p.kernel.stages[p.stores[buf]]
    if e.offset != store.offset:
        return False
    for d, (a, b) in enumerate(zip(e.strides, store.strides)):
        if d in p.reduced:
            if not row_space and a != 0:
                return False
        elif a != b and p.shape[d] != 1:
            return False
    return True


def _same_row(e: Load, p: _RowKernel, buf: int) -> bool:
    """Whether load `e` reads buffer `buf` only within the row p's full store of it just wrote."""
    store = p.kernel.stages[p.stores[buf]] if buf in p.stores else None
    if store is None or store.kind != "store" or e.offset != store.offset:
        return False
    return all(a == b for d, (a, b) in enumerate(zip(e.strides, store.strides))
               if d not in p.reduced)


def _row_strides(s: Stage, p: _RowKernel) -> Stage | None:
    """A stage written over p's row shape, re-expressed over p's full space (0 on reduced)."""
    try:
        return s.reindexed(lambda t: tuple(0 if d in p.reduced else x for d, x in enumerate(t)),
                           padded=False)
    except NotReindexable:
        return None


def _drop_dead_stores(rk: _RowKernel, steps: list, k: int, outputs: set[int]) -> _RowKernel:
    """Remove stores of buffers no one reads (their value lives in a register), and unused
    arguments."""
    args = rk.kernel.args
    stages: list = list(rk.kernel.stages)
    for i, s in enumerate(stages):
        if s.kind == "store":
            buf = args[s.arg].buffer
            in_kernel = any(isinstance(x, (Load, Gather, Padded)) and args[x.arg].buffer == buf
                            for st in stages if st is not None for x in walk(st.expr))
            if not in_kernel and not _read_elsewhere(steps, k, buf, outputs):
                stages[i] = None
    rk = _with_stages(rk, stages)
    stages = rk.kernel.stages
    used = set()
    for s in stages:
        if s.arg is not None:
            used.add(s.arg)
        for e in list(walk(s.expr)) + (list(walk(s.index)) if s.index is not None else []):
            if isinstance(e, (Load, Gather, Padded)):
                used.add(e.arg)
            elif isinstance(e, Rand):
                used.add(e.state)
    order = sorted(used)
    amap = {old: new for new, old in enumerate(order)}
    new_args = [args[i] for i in order]
    stages = [_remap_args(s, amap) for s in stages]
    kern = Kernel(rk.kernel.name, new_args, (), (), stages, nodes=rk.kernel.nodes,
                  serial=rk.kernel.serial)
    return _RowKernel(kern, rk.shape, rk.reduced, {}, rk.rows)


def _remap_args(s: Stage, amap: dict[int, int]) -> Stage:
    def conv(e: Any) -> Any:
        if isinstance(e, (Load, Gather, Padded)):
            return dataclasses.replace(e, arg=amap[e.arg])
        if isinstance(e, Rand):
            return dataclasses.replace(e, state=amap[e.state])
        return e

    return s.map_exprs(conv, arg=amap[s.arg] if s.arg is not None else None)


def fuse(graph: Graph) -> Program:
    """Fuse `graph` into kernels and GEMMs (see the module docstring)."""
    realized = _realized(graph)
    for _ in range(10000):
        try:
            return _Fuser(graph, set(realized)).run()
        except NeedsRealize as e:
            if e.value in realized:
                raise AssertionError(f"fusion: value {e.value} is realized but still asked for")
            realized.add(e.value)
    raise AssertionError("fusion did not converge")
