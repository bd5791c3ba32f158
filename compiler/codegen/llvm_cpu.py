"""The CPU kernel function: calling convention, loop nest and module assembly (llvmlite).

Each Kernel becomes `void name(i64 start, i64 end, ptr args)`: a loop over the outer range
[start, end) (the runtime splits it over threads), and inside it one loop nest per stage over the
inner dims (or, for lane-blocked kernels, blocks of `lanes` outer indices). Buffers are passed to
an internal body function as `noalias` pointers, so after inlining LLVM knows loads and stores do
not alias and vectorizes the innermost loop; reductions use `reassoc` so they vectorize too. The
stages' stores, scatters, reduction accumulators and the error flag are written here; the values
inside the loops come from llvm_expr.py (the expression emitter, shared by any LLVM target), whose
elementwise ops come from llvm_scalar.py and transcendentals from llvm_math.py.
"""

from __future__ import annotations

import math
from typing import Any

from llvmlite import ir

from compiler.codegen.llvm_expr import ExprEmitter
from compiler.codegen.llvm_scalar import (
    I1,
    I64,
    PTR,
    combine,
    compute_type,
    elementwise,
    identity,
    storage_type,
)
from compiler.ir.ops import Op
from compiler.ir.types import DType
from compiler.kernel import Gather, Kernel, Load, Padded, Stage, checked, depends_on, walk


class _Fn(ExprEmitter):
    """Emission state of one kernel function: its loops, stores and error flag around the
    expression values of ExprEmitter."""

    def __init__(self, module: ir.Module, kernel: Kernel, noalias: bool,
                 donated: frozenset = frozenset()):
        self.k = kernel
        self.donated = donated
        # a checking kernel takes the plan's error flag after its buffers (compiler/lower.py)
        n = len(kernel.args) + (1 if checked(kernel) else 0)
        self.errors: dict[int, ir.Value] = {}  # flag code -> i1 alloca: "seen a bad value"
        body_ty = ir.FunctionType(ir.VoidType(), [I64, I64] + [PTR] * n)
        self.body = ir.Function(module, body_ty, name=f"{kernel.name}_body")
        self.body.linkage = "internal"
        self.body.attributes.add("alwaysinline")
        for a in self.body.args[2:]:
            if noalias:
                a.add_attribute("noalias")
        entry = self.body.append_basic_block("entry")
        super().__init__(module, ir.IRBuilder(entry), self.body.args[2:], entry)
        # the exported ABI wrapper: void name(i64 start, i64 end, ptr args)
        wrap_ty = ir.FunctionType(ir.VoidType(), [I64, I64, PTR])
        wrap = ir.Function(module, wrap_ty, name=kernel.name)
        wb = ir.IRBuilder(wrap.append_basic_block("entry"))
        start, end, argv = wrap.args
        ptrs = [wb.load(wb.gep(argv, [ir.Constant(I64, i)], source_etype=PTR), typ=PTR)
                for i in range(n)]
        wb.call(self.body, [start, end] + ptrs)
        wb.ret_void()

    # --- loops ------------------------------------------------------------------------------------

    def loop(self, n: Any, body, name: str) -> None:
        """for i in [0, n): body(i)  (n an i64 value or int)."""
        self.range_loop(ir.Constant(I64, 0), n if isinstance(n, ir.Value) else ir.Constant(I64, n),
                        body, name)

    def range_loop(self, lo: ir.Value, hi: ir.Value, body, name: str) -> None:
        b = self.b
        pre = b.block
        head = b.append_basic_block(f"{name}.head")
        loop = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, name=name)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), loop, done)
        b.position_at_end(loop)
        body(i)
        nxt = b.add(i, ir.Constant(I64, 1), flags=["nsw"])
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(done)

    # --- stores and the error flag ----------------------------------------------------------------

    def store(self, arg: int, dtype: DType, index: ir.Value, v: ir.Value) -> None:
        b = self.b
        st = storage_type(dtype)
        b.store(self.to_storage(v, dtype),
                b.gep(self.ptrs[arg], [index], source_etype=st, inbounds=True))

    def record(self, code: int, bad: ir.Value) -> None:
        """OR `bad` (i1) into this function's flag for `code`: a branch-free `or` reduction
        the vectorizer keeps; written to the plan's error flag once, at the end (`report`)."""
        b = self.b
        slot = self.errors.get(code)
        if slot is None:
            here = b.block
            b.position_at_start(self.entry)
            slot = b.alloca(I1, name=f"err{code}")
            b.store(ir.Constant(I1, 0), slot)
            self.errors[code] = slot
            b.position_at_end(here)
        b.store(b.or_(b.load(slot, typ=I1), bad), slot)

    def report(self) -> None:
        """Before returning: flag[0] = code of a check that failed (an atomic store: threads may
        race to report; any one of their codes will do)."""
        b = self.b
        flag = self.ptrs[-1] if self.errors else None
        for code, slot in self.errors.items():
            with b.if_then(b.load(slot, typ=I1), likely=False):
                # NOTE: llvmlite's store_atomic predates opaque pointers; an atomic exchange
                # is the same store
                b.atomic_rmw("xchg", flag, ir.Constant(I64, code), "monotonic")

    # --- stages -----------------------------------------------------------------------------------

    def generate(self) -> None:
        k = self.k
        b = self.b
        start, end = self.body.args[0], self.body.args[1]
        if k.lanes:
            self.generate_lanes(start, end)
            self.report()
            b.ret_void()
            return

        groups = store_groups(k, self.donated)

        def outer_body(o: ir.Value) -> None:
            coords = self.outer_coords(o)
            rows: dict[int, ir.Value] = {}
            for group in groups:
                if len(group) == 1:
                    self.stage(group[0], k.stages[group[0]], coords, rows)
                    continue
                # consecutive stores over the inner dims: one loop writing every output
                self.nest(list(k.inner), lambda cs, g=group: [
                    self.store_stage(k.stages[si], coords + cs, rows) for si in g], "i")

        self.range_loop(start, end, outer_body, "o")
        self.report()
        b.ret_void()

    def outer_coords(self, o: ir.Value) -> list:
        """The coordinates of flattened outer index `o`."""
        b = self.b
        outer = self.k.outer
        if len(outer) == 1:
            return [o]
        coords = []
        for d in range(len(outer)):
            below = math.prod(outer[d + 1:])
            q = b.udiv(o, ir.Constant(I64, below)) if below > 1 else o
            coords.append(b.urem(q, ir.Constant(I64, outer[d])) if d else q)
        return coords

    # --- lane-blocked kernels (Kernel.lanes) --------------------------------------------------

    def generate_lanes(self, start: ir.Value, end: ir.Value) -> None:
        """Outer indices `lanes` at a time: every stage loops over the block's lanes innermost,
        the reduce and row values of each lane kept in a stack array."""
        k, b = self.k, self.b
        width = k.lanes
        values = {}
        for si, st in enumerate(k.stages):
            if st.kind in ("reduce", "row"):
                values[si] = b.alloca(ir.ArrayType(compute_type(st.expr.dtype), width),
                                      name=f"r{si}")
        pre = b.block
        head = b.append_basic_block("ob.head")
        body = b.append_basic_block("ob.body")
        done = b.append_basic_block("ob.done")
        b.branch(head)
        b.position_at_end(head)
        ob = b.phi(I64, name="ob")
        ob.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", ob, end), body, done)
        b.position_at_end(body)
        left = b.sub(end, ob)
        wide = ir.Constant(I64, width)
        count = b.select(b.icmp_signed("<", left, wide), left, wide)
        for si, st in enumerate(k.stages):
            self.lane_stage(si, st, ob, count, {j: a for j, a in values.items() if j < si},
                            values.get(si))
        ob.add_incoming(b.add(ob, wide, flags=["nsw"]), b.block)
        b.branch(head)
        b.position_at_end(done)

    def lane_stage(self, si: int, st: Stage, ob: ir.Value, count: ir.Value, earlier: dict,
                   slot: ir.Value | None) -> None:
        """One stage for lanes [0, count) of the block at outer index `ob`."""
        b = self.b
        inner = self.k.inner
        n_outer = len(self.k.outer)
        zero = ir.Constant(I64, 0)
        zero_inner = [zero] * len(inner)

        def at(array: ir.Value, lane: ir.Value) -> ir.Value:
            return b.gep(array, [zero, lane], inbounds=True)

        def lanes(body) -> None:  # body(lane, outer coords, rows of the earlier stages)
            def one(lane: ir.Value) -> None:
                rows = {j: b.load(at(a, lane)) for j, a in earlier.items()}
                body(lane, self.outer_coords(b.add(ob, lane, flags=["nsw"])), rows)

            self.range_loop(zero, count, one, "lane")

        if st.kind == "row":
            lanes(lambda ln, cs, rows: b.store(
                self.emit(st.expr, cs + zero_inner, rows, {}), at(slot, ln)))
            return
        if st.kind == "reduce":
            dt = st.expr.dtype
            lanes(lambda ln, cs, rows: b.store(identity(st.op, dt), at(slot, ln)))

            def fold(ln, cs, rows, inner_cs):
                v = self.emit(st.expr, cs + inner_cs, rows, {})
                b.store(combine(self.m, b, st.op, dt, b.load(at(slot, ln)), v), at(slot, ln))

            self.nest(list(inner), lambda ics: lanes(
                lambda ln, cs, rows: fold(ln, cs, rows, ics)), "i")
            return
        inner_dims = range(n_outer, n_outer + len(inner))
        needs_loop = bool(inner) and (depends_on(st.expr, inner_dims) or
                                      any(st.strides[d] for d in inner_dims))
        if not needs_loop:
            lanes(lambda ln, cs, rows: self.store_stage(st, cs + zero_inner, rows))
            return
        self.nest(list(inner), lambda ics: lanes(
            lambda ln, cs, rows: self.store_stage(st, cs + ics, rows)), "i")

    def stage(self, si: int, st: Stage, outer_coords: list, rows: dict) -> None:
        inner = self.k.inner
        zero_inner = [ir.Constant(I64, 0)] * len(inner)
        if st.kind == "row":
            rows[si] = self.emit(st.expr, outer_coords + zero_inner, rows, {})
            return
        if st.kind == "reduce":
            rows[si] = self.reduce(st, outer_coords, rows)
            return
        if not loops_inner(self.k, st):
            self.store_stage(st, outer_coords + zero_inner, rows)
            return
        self.nest(list(inner), lambda cs: self.store_stage(st, outer_coords + cs, rows), "i")

    def nest(self, sizes: list[int], body, name: str, coords: list | None = None) -> None:
        coords = coords or []
        if not sizes:
            body(coords)
            return
        self.loop(sizes[0], lambda i: self.nest(sizes[1:], body, name, coords + [i]),
                  f"{name}{len(coords)}")

    def store_stage(self, st: Stage, coords: list, rows: dict) -> None:
        b = self.b
        memo: dict = {}
        v = self.emit(st.expr, coords, rows, memo)
        dt = st.expr.dtype
        pos = self.affine(coords, st.strides, st.offset)
        if st.kind == "scatter":
            idx = self.checked_index(self.emit(st.index, coords, rows, memo), st.index.dtype,
                                     st.axis_size, st.site)
            pos = b.add(pos, b.mul(idx, ir.Constant(I64, st.axis_stride)))
            if st.op is Op.ADD:
                old = self.load(st.arg, dt, pos)
                v = elementwise(self.m, b, Op.ADD, dt, [old, v])
        self.store(st.arg, self.k.args[st.arg].dtype, pos, v)

    def reduce(self, st: Stage, outer_coords: list, rows: dict) -> ir.Value:
        """Fold st.expr over the inner dims with a phi accumulator (reassoc: vectorizable)."""
        b = self.b
        dt = st.expr.dtype
        ty = compute_type(dt)
        acc_box = [identity(st.op, dt)]

        def level(sizes: list[int], coords: list) -> None:
            if not sizes:
                v = self.emit(st.expr, outer_coords + coords, rows, {})
                acc_box[0] = combine(self.m, b, st.op, dt, acc_box[0], v)
                return
            pre = b.block
            head = b.append_basic_block(f"r{len(coords)}.head")
            loop = b.append_basic_block(f"r{len(coords)}.body")
            done = b.append_basic_block(f"r{len(coords)}.done")
            start_acc = acc_box[0]
            b.branch(head)
            b.position_at_end(head)
            i = b.phi(I64)
            acc = b.phi(ty)
            i.add_incoming(ir.Constant(I64, 0), pre)
            acc.add_incoming(start_acc, pre)
            b.cbranch(b.icmp_signed("<", i, ir.Constant(I64, sizes[0])), loop, done)
            b.position_at_end(loop)
            acc_box[0] = acc
            level(sizes[1:], coords + [i])
            i.add_incoming(b.add(i, ir.Constant(I64, 1), flags=["nsw"]), b.block)
            acc.add_incoming(acc_box[0], b.block)
            b.branch(head)
            b.position_at_end(done)
            acc_box[0] = acc

        level(list(self.k.inner), [])
        return acc_box[0]


def loops_inner(k: Kernel, st: Stage) -> bool:
    """Whether store or scatter stage `st` loops over the kernel's inner dims (else it writes
    once per outer index)."""
    n_outer = len(k.outer)
    inner_dims = range(n_outer, n_outer + len(k.inner))
    return bool(k.inner) and (depends_on(st.expr, inner_dims) or
                              any(st.strides[d] for d in inner_dims) or
                              (st.index is not None and depends_on(st.index, inner_dims)))


def store_groups(k: Kernel, donated: frozenset = frozenset()) -> list[list[int]]:
    """The kernel's stages in order, consecutive store stages over the inner dims grouped when
    one loop may run them all, each stage in turn per element: a later stage reads a buffer an
    earlier one of the group writes, or writes one it reads or writes, only at the positions
    it is written (so each element is written before it is read, in the same iteration, and
    never written after it is read). Distinct arguments are distinct buffers (`noalias`: the
    memory plan gives a multi-stage kernel no in-place outputs), except a `donated` output,
    written into the array of an input that earlier stages read (lower._donations): its stage
    does not join a group, so no load of the input shares a loop body with that store."""
    groups: list[list[int]] = []
    open_group = False  # whether the last group is stores over the inner dims (may grow)
    for si, st in enumerate(k.stages):
        loops = st.kind == "store" and loops_inner(k, st)
        if open_group and loops and k.args[st.arg].value not in donated and \
                _joins(k, groups[-1], st):
            groups[-1].append(si)
        else:
            groups.append([si])
            open_group = loops
    return groups


def _joins(k: Kernel, group: list[int], st: Stage) -> bool:
    """Whether store stage `st` may run in the loop of `group` (see store_groups)."""
    pattern = {}  # buffer -> (strides, offset) of the group's stores to it
    for si in group:
        g = k.stages[si]
        if pattern.setdefault(k.args[g.arg].value, (g.strides, g.offset)) != (g.strides, g.offset):
            return False
    mine = (st.strides, st.offset)
    if pattern.get(k.args[st.arg].value, mine) != mine:
        return False
    for e in walk(st.expr):  # reads of what the group wrote: the same element only
        if isinstance(e, (Load, Gather, Padded)) and k.args[e.arg].value in pattern and not (
                isinstance(e, Load) and (e.strides, e.offset) == pattern[k.args[e.arg].value]):
            return False
    out = k.args[st.arg].value
    for si in group:  # the group's reads of what this stage writes: the same element only
        for e in walk(k.stages[si].expr):
            if isinstance(e, (Load, Gather, Padded)) and k.args[e.arg].value == out and not (
                    isinstance(e, Load) and (e.strides, e.offset) == mine):
                return False
    return True


def generate(kernels: list[Kernel], module_name: str = "hybrid", noalias: bool = True,
             donated: frozenset = frozenset()) -> str:
    """LLVM IR text of a module holding every kernel; `donated`: the output values written into
    an input's array (see store_groups)."""
    m = ir.Module(name=module_name)
    for k in kernels:
        fn = _Fn(m, k, noalias, donated)
        fn.generate()
    return str(m)
