"""Row fusion: merge the kernels fusion built over the same space (see compiler/passes/fuse.py's
docstring): a reduction and the elementwise work feeding it become one kernel, an elementwise
consumer at the reduction's output shape becomes a per-row stage, a consumer over the
reduction's input space absorbs the whole row program; then the cleanup of the merged kernels
(scratch stores instead of buffers, dead stores dropped)."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from typing import Any


from compiler.ir.graph import Graph
from compiler.ir.ops import EXPENSIVE, OPS
from compiler.kernel import (
    Apply, Gather, Iota, Kernel, Load, NotReindexable, Padded, Rand, Row, Stage,
    kernel_reads, walk,
)


@dataclass
class RowKernel:
    """A kernel during fusion: its space in the order of the original dims of the value it
    computes (`dims`), which of them are reduced, and the permutation into loop order."""

    kernel: Kernel
    shape: tuple[int, ...]  # original space shape
    reduced: tuple[int, ...]  # original dims reduced (empty for elementwise)
    stores: dict[int, int]  # buffer id -> stage index that stores it
    rows: dict[int, int]  # buffer id -> Row stage whose value the store writes (row kernels)



# --- row fusion ----------------------------------------------------------------------------------


class _Reads:
    """The buffers each step reads, computed once per step object (steps are never changed in
    place: a merge or cleanup makes a new one), for the many queries of one row_fusion call."""

    def __init__(self) -> None:
        self._sets: dict[int, tuple[Any, frozenset[int]]] = {}

    def __call__(self, s: Any) -> frozenset[int]:
        hit = self._sets.get(id(s))
        if hit is not None and hit[0] is s:
            return hit[1]
        reads = frozenset(kernel_reads(s.kernel) if isinstance(s, RowKernel) else s.reads())
        self._sets[id(s)] = (s, reads)
        return reads


def _read_between(indices: list[int], i: int, j: int) -> bool:
    """Whether a step strictly between i and j is among `indices` (sorted)."""
    k = bisect.bisect_right(indices, i)
    return k < len(indices) and indices[k] < j


def row_fusion(steps: list, graph: Graph) -> list:
    """Merge row kernels into later kernels over the same (or the row) space, to a fixed point."""
    outputs = {v.id for v in graph.outputs}
    reads = _Reads()
    changed, start = True, 0
    while changed:
        changed = False
        # which steps write and read each buffer, in step order (rebuilt after every merge)
        writers: dict[int, list[int]] = {}
        readers: dict[int, list[int]] = {}
        for k, s in enumerate(steps):
            for buf in reads(s):
                readers.setdefault(buf, []).append(k)
            if isinstance(s, RowKernel):
                for a in s.kernel.args:
                    if a.writes:
                        writers.setdefault(a.value, []).append(k)
        # NOTE: a merge of steps i < j changes nothing before i, where no merge was found: the
        # next sweep starts at i (the same merges, in the same order, as sweeping from 0)
        for j in range(start, len(steps)):
            c = steps[j]
            if not isinstance(c, RowKernel) or c.kernel.serial:
                continue
            # the producers of what c reads, nearest first: every other earlier step fails the
            # "c reads what p writes" test
            candidates = sorted({i for buf in reads(c) for i in writers.get(buf, ()) if i < j},
                                reverse=True)
            for i in candidates:
                p = steps[i]
                if p.kernel.serial:
                    continue
                if not p.reduced and (p.shape != c.shape or not p.stores):
                    continue  # elementwise producers merge only into consumers of their space
                merged = _try_merge(p, c)
                if merged is None:
                    continue
                produced = [a.value for a in p.kernel.args if a.writes]
                if any(_read_between(readers.get(buf, ()), i, j) for buf in produced):
                    continue
                steps = steps[:i] + steps[i + 1:j] + [merged] + steps[j + 1:]
                changed, start = True, i
                break
            if changed:
                break
    return [_cleanup(s, steps, k, outputs, reads) if isinstance(s, RowKernel) else s
            for k, s in enumerate(steps)]


def _read_elsewhere(steps: list, k: int, buf: int, outputs: set[int], reads: _Reads) -> bool:
    return buf in outputs or any(buf in reads(s) for i, s in enumerate(steps) if i != k)


def _cleanup(rk: RowKernel, steps: list, k: int, outputs: set[int], reads: _Reads) -> RowKernel:
    """Inside one kernel: a buffer stored and re-read at the same positions, and read by no other
    step, is recomputed from its expression instead (no memory round trip); stores nobody reads
    are dropped."""
    args = rk.kernel.args
    stages = list(rk.kernel.stages)
    for i in range(len(stages)):
        st = stages[i]  # NOTE: read from the current list: earlier inlining rewrote later stages
        if st is None or st.kind != "store":
            continue
        buf = args[st.arg].value
        if _read_elsewhere(steps, k, buf, outputs, reads):
            continue
        same = [a for a, x in enumerate(args) if x.value == buf]

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
    return _drop_dead_stores(_with_stages(rk, stages), steps, k, outputs, reads)


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
    buf = args[st.arg].value
    mine = {a for a, x in enumerate(args) if x.value == buf}
    for t in range(i + 1, len(stages)):
        out = stages[t]
        if out is None or out.kind == "row" or out.kind == "reduce":
            continue
        if out.kind != "store" or out.strides != st.strides or out.offset != st.offset or \
                args[out.arg].value == buf or args[out.arg].dtype is not args[st.arg].dtype:
            # NOTE: a store in between may be inlined into stages after t later on: one that
            # reads stage i's value would then read the overwritten one.
            if _loads_of(out, mine):
                return None
            continue
        theirs = {a for a, x in enumerate(args) if x.value == args[out.arg].value}
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


def _with_stages(rk: RowKernel, stages: list) -> RowKernel:
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
    return RowKernel(k, rk.shape, rk.reduced, {}, rows)


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s for s in shape if s != 1)


def _over_row_shape(p: RowKernel, c: RowKernel) -> RowKernel | None:
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
    return RowKernel(k, row, (), dict(c.stores), dict(c.rows))


def _try_merge(p: RowKernel, c: RowKernel) -> RowKernel | None:
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
    index = {a.value: i for i, a in enumerate(args)}
    amap = {}
    for k, a in enumerate(c.kernel.args):
        if a.value not in index:
            index[a.value] = len(args)
            args.append(a)
        elif a.writes and not args[index[a.value]].writes:
            args[index[a.value]] = a
        amap[k] = index[a.value]
    offset = len(p.kernel.stages)
    row_bufs = {args[amap[k]].value: k for k in range(len(c.kernel.args))}
    stages = list(p.kernel.stages)
    new_rows = dict(rows)
    ok = [True]

    written = {a.value for a in p.kernel.args if a.writes}

    def conv(e: Any, row_space: bool) -> Any:
        if isinstance(e, Load):
            buf = args[amap[e.arg]].value
            if buf in rows and _is_row_read(e, p, buf, row_space):
                return Row(rows[buf], e.dtype)
            if buf in written and (buf in rows or not _same_row(e, p, buf)):
                ok[0] = False
            return Load(amap[e.arg], e.dtype, e.strides, e.offset)
        if isinstance(e, (Gather, Padded)) and args[amap[e.arg]].value in written:
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
            buf = args[st.arg].value
            new_rows[buf] = len(stages) - 2
            stores[buf] = len(stages) - 1
            continue
        stages.append(st)
        if st.kind == "store":
            stores[args[st.arg].value] = len(stages) - 1
    if not ok[0]:
        return None
    if c_map == "row":
        stages = [_row_strides(s, p) if i >= offset else s for i, s in enumerate(stages)]
        if any(s is None for s in stages):
            return None
    nodes = p.kernel.nodes + [v for v in c.kernel.nodes if v not in p.kernel.nodes]
    k = Kernel(c.kernel.name, args, (), (), stages, nodes=nodes)
    return RowKernel(k, p.shape, p.reduced, stores, new_rows)


def _is_row_read(e: Load, p: RowKernel, buf: int, row_space: bool) -> bool:
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


def _same_row(e: Load, p: RowKernel, buf: int) -> bool:
    """Whether load `e` reads buffer `buf` only within the row p's full store of it just wrote."""
    store = p.kernel.stages[p.stores[buf]] if buf in p.stores else None
    if store is None or store.kind != "store" or e.offset != store.offset:
        return False
    return all(a == b for d, (a, b) in enumerate(zip(e.strides, store.strides))
               if d not in p.reduced)


def _row_strides(s: Stage, p: RowKernel) -> Stage | None:
    """A stage written over p's row shape, re-expressed over p's full space (0 on reduced)."""
    try:
        return s.reindexed(lambda t: tuple(0 if d in p.reduced else x for d, x in enumerate(t)),
                           padded=False)
    except NotReindexable:
        return None


def _drop_dead_stores(rk: RowKernel, steps: list, k: int, outputs: set[int],
                      reads: _Reads) -> RowKernel:
    """Remove stores of buffers no one reads (their value lives in a register), and unused
    arguments."""
    args = rk.kernel.args
    stages: list = list(rk.kernel.stages)
    for i, s in enumerate(stages):
        if s.kind == "store":
            buf = args[s.arg].value
            in_kernel = any(isinstance(x, (Load, Gather, Padded)) and args[x.arg].value == buf
                            for st in stages if st is not None for x in walk(st.expr))
            if not in_kernel and not _read_elsewhere(steps, k, buf, outputs, reads):
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
    return RowKernel(kern, rk.shape, rk.reduced, {}, rk.rows)


def _remap_args(s: Stage, amap: dict[int, int]) -> Stage:
    def conv(e: Any) -> Any:
        if isinstance(e, (Load, Gather, Padded)):
            return dataclasses.replace(e, arg=amap[e.arg])
        if isinstance(e, Rand):
            return dataclasses.replace(e, state=amap[e.state])
        return e

    return s.map_exprs(conv, arg=amap[s.arg] if s.arg is not None else None)
