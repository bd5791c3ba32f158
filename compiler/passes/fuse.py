"""Fusion: group a graph's primitives into loop kernels, BLAS matmuls and copies.

Which values get a buffer ("realized"): graph inputs and outputs, reductions, matmul and scatter
results, constants with more than one element, and values used by more than one node. Every other
value is inlined into the expression of the kernel that computes a realized value; movement ops
(permute, expand, slice, contiguous reshape) are folded into the strides of the loads they reach.
A reshape that strides cannot express realizes its input first.

Row fusion (passes/row_fusion.py) then merges kernels over the same space: a reduction and the
elementwise work feeding it become one kernel; an elementwise consumer at the reduction's output
shape becomes a per-row stage; and a consumer over the reduction's input space absorbs the whole
row program, so softmax, log_softmax and layer norm are one kernel each."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.ir.graph import Graph, Node
from compiler.ir.ops import ELEMENTWISE, OPS, Op
from compiler.ir.types import DType, TensorType
from compiler.kernel import (  # Gemm and kernel_reads are imported from here too
    Apply, Arg, Const, Gather, Gemm, Iota, Kernel, Load, Padded, Rand, Row, Stage,
    kernel_reads,  # noqa: F401
)
from compiler.passes.row_fusion import RowKernel, row_fusion
from compiler.view import View, blas_layout, contiguous_strides

REDUCE_OPS = (Op.SUM, Op.PROD, Op.MAX)
MOVEMENT = (Op.RESHAPE, Op.PERMUTE, Op.EXPAND, Op.SLICE)


class NeedsRealize(Exception):
    """Raised while building an expression that needs `value` to live in a buffer first."""

    def __init__(self, value: int):
        super().__init__(value)
        self.value = value


@dataclass
class Program:
    """The fused program (the kernel IR): steps in execution order over realized buffers.

    Straight from `fusion`, kernels are `RowKernel`s in the order of their values' dims (not
    scheduled); a target's schedule (passes/schedule_cpu.py) turns them into `Kernel`s."""

    graph: Graph
    steps: list  # RowKernel | Kernel | Gemm
    buffers: dict[int, TensorType]  # realized value id -> type (contiguous buffer)
    constants: dict[int, np.ndarray]
    owner: dict[int, str]  # graph value id -> name of the step that computes it
    # (pass, seconds) of the native passes that made it: fuse, row fusion, then the schedule's
    # (hybrid.compile lists them in `fn.graphs` as "native: <pass>")
    timings: list[tuple[str, float]] = field(default_factory=list)
    types: dict[int, TensorType] = field(default_factory=dict)  # every realized value's type
    space: str = "host"  # the memory space its buffers live in (one per target for now)

    def with_steps(self, steps: list) -> Program:
        """This program with other steps (a kernel pass's result): owners and buffers follow."""
        return _program(self.graph, steps, self.types, self.constants, self.timings, self.space)

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


def _padded_under(pending: list, shape: tuple, strides: tuple, lows: tuple, steps: tuple,
                  sizes: tuple) -> tuple | None:
    """A pad of output `shape`, given per dim as (source strides, lows, steps, source sizes),
    seen through the pending views of its reader; None when one of them cannot be expressed
    that way. A permute reorders the dims, a unit-step slice moves the lows, a reshape may
    insert or drop size-1 dims and an expand may broadcast them, as long as the size-1 dim is
    not padded. (The gradient of a conv's or pool's windows is a sum of pads read through the
    slice that drops the padding and the permute back to the input's layout: one kernel
    instead of one per window.)"""
    dims = list(zip(strides, lows, steps, sizes))
    shape = list(shape)

    def plain_unit(d: tuple) -> bool:  # a size-1 output dim that reads source element 0
        return d[1] == 0 and d[3] >= 1

    for view_op, attrs, _src in reversed(pending):
        if view_op is Op.PERMUTE:
            dims, shape = [dims[p] for p in attrs], [shape[p] for p in attrs]
        elif view_op is Op.SLICE and all(st == 1 for st in attrs[2]):
            dims = [(st, lo - b, step, size) for (st, lo, step, size), b in zip(dims, attrs[0])]
            shape = [e - b for b, e in zip(attrs[0], attrs[1])]
        elif view_op is Op.RESHAPE and [n for n in shape if n != 1] == [
                n for n in attrs if n != 1]:
            if not all(plain_unit(d) for d, n in zip(dims, shape) if n == 1):
                return None
            kept = iter([d for d, n in zip(dims, shape) if n != 1])
            dims = [(0, 0, 1, 1) if n == 1 else next(kept) for n in attrs]
            shape = list(attrs)
        elif view_op is Op.EXPAND:
            lead = len(attrs) - len(dims)
            grown = [(d, n) for d, old, n in zip(dims, shape, attrs[lead:]) if old == 1 and n != 1]
            if not all(plain_unit(d) for d, _ in grown):
                return None
            dims = [(0, 0, 1, n) for n in attrs[:lead]] + [
                (0, 0, 1, n) if old == 1 and n != 1 else d
                for d, old, n in zip(dims, shape, attrs[lead:])]
            shape = list(attrs)
        else:
            return None
    if not dims:
        return (), (), (), ()
    strides, lows, steps, sizes = (tuple(v) for v in zip(*dims))
    return strides, lows, steps, sizes


def _transform_attrs(node: Node) -> Any:
    a = node.attrs
    if node.op is Op.PERMUTE:
        return a["perm"]
    if node.op is Op.EXPAND or node.op is Op.RESHAPE:
        return a["shape"]
    return (a["starts"], a["stops"], a["steps"])


class _Builder:
    """Builds the expressions of one kernel, collecting its buffer arguments."""

    def __init__(self, prog: _Fuser):
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

    def leaf_view(self, base: View, pending: list) -> View:
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
        view = self.leaf_view(View.contiguous(self.f.types[cur].shape), chain)
        return cur, view

    def expr(self, vid: int, pending: list) -> Any:
        """The value of `vid` at the kernel's coordinates (mapped through `pending` views)."""
        t = self.f.types[vid]
        if vid in self.f.realized:
            if vid in self.f.constants or vid in self.f.buffers_ready:
                view = self.leaf_view(View.contiguous(t.shape), pending)
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
            view = self.leaf_view(base, pending)
            return Iota(view.strides, view.offset, t.dtype)
        if op is Op.RAND:
            state = node.inputs[0].id
            if state not in self.f.realized:
                raise NeedsRealize(state)
            view = self.leaf_view(View.contiguous(t.shape), pending)
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
        if op is Op.PAD:
            (x,) = node.inputs
            buf, xv = self.buffer_view(x.id)
            if x.id not in self.f.realized and _transposed(xv):
                raise NeedsRealize(x.id)
            pads = node.attrs["pads"]
            placed = _padded_under(pending, t.shape, xv.strides, tuple(lo for lo, _, _ in pads),
                                   tuple(it + 1 for _, _, it in pads), tuple(x.shape))
            if placed is None:
                raise NeedsRealize(vid)
            strides, lows, steps, sizes = placed
            return Padded(self.arg(buf), t.dtype, strides, xv.offset, lows, steps, sizes,
                          node.attrs["value"])
        raise NeedsRealize(vid)


def _transposed(v: View) -> bool:
    """Whether a view reads its buffer across the grain: its last dim strided while another dim
    is contiguous. A pad of such a view is realized first (one tiled transposing copy, see
    passes/loop_order.py) so that its readers, such as a convolution's k*k windows, read rows."""
    return len(v.shape) > 1 and v.shape[-1] > 1 and v.strides[-1] not in (0, 1) and any(
        s == 1 and n > 1 for s, n in zip(v.strides[:-1], v.shape[:-1]))


# --- building kernels ----------------------------------------------------------------------------


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
        """Kernels for the realized nodes in graph order. A value a kernel cannot inline
        (NeedsRealize) is realized and fusion resumes at the node that computes it: the nodes
        before it cannot read it, so what was built for them stays as it was."""
        t0 = time.perf_counter()
        nodes = self.graph.nodes
        position = {n.out.id: i for i, n in enumerate(nodes)}
        marks: list[int] = []  # len(self.steps) when node i was reached
        i = retries = 0
        while i < len(nodes):
            del marks[i:]
            marks.append(len(self.steps))
            try:
                self._node(nodes[i])
            except NeedsRealize as e:
                if e.value in self.realized or retries >= 10000:
                    raise AssertionError(f"fusion: value {e.value} is realized but still asked "
                                         "for" if e.value in self.realized else
                                         "fusion did not converge") from None
                retries += 1
                self.realized.add(e.value)
                i = position[e.value]
                del self.steps[marks[i]:]
                self.constants = {v: c for v, c in self.constants.items() if position[v] < i}
                self.buffers_ready = {v.id for v in self.graph.inputs} | {
                    n.out.id for n in nodes[:i] if n.out.id in self.realized}
                continue
            i += 1
        t1 = time.perf_counter()
        steps = row_fusion(self.steps, self.graph)
        t2 = time.perf_counter()
        types = {v: self.types[v] for v in self.realized}
        return _program(self.graph, steps, types, self.constants,
                        [("fuse", t1 - t0), ("row fusion", t2 - t1)])

    def _node(self, node: Node) -> None:
        vid = node.out.id
        if vid not in self.realized:
            return
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

    def _new_kernel(self, b: _Builder, shape, reduced, stages, stores, rows) -> RowKernel:
        k = Kernel(self.name(), b.args, (), (), stages, nodes=b.nodes)
        return RowKernel(k, tuple(shape), tuple(reduced), stores, rows)

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
        if math.prod(shape) > max(self.types[a.value].numel for a in b.args):
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
    if blas_layout(shape[-2:], strides[-2:]) is None:  # e.g. broadcast (stride 0) rows
        return None
    return View((merged.shape[0], *shape[-2:]), (merged.strides[0], *strides[-2:]), view.offset)


def _program(graph: Graph, steps: list, types: dict, constants: dict, timings: list,
             space: str = "host") -> Program:
    owner: dict[int, str] = {}
    used = {v.id for v in graph.inputs} | {v.id for v in graph.outputs} | set(constants)
    for s in steps:
        k = s.kernel if isinstance(s, RowKernel) else s
        for v in k.nodes:
            owner.setdefault(v, k.name)
        used |= {a.value for a in k.args} if isinstance(k, Kernel) else {k.a, k.b, k.out}
    buffers = {v: t for v, t in types.items() if v in used}
    return Program(graph, steps, buffers, constants, owner, timings, types, space)


def fuse(graph: Graph) -> Program:
    """`fusion`, then the CPU schedule (passes/schedule_cpu.py): what the CPU backend runs."""
    from compiler.passes.manager import run_kernel_passes
    from compiler.passes.schedule_cpu import CPU_SCHEDULE

    return run_kernel_passes(fusion(graph), CPU_SCHEDULE)


def fusion(graph: Graph) -> Program:
    """Fuse `graph` into unscheduled kernels and GEMMs (see the module docstring)."""
    return _Fuser(graph, set(_realized(graph))).run()
