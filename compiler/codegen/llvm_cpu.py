"""LLVM code generation for CPU kernels (llvmlite's IR builder).

Each Kernel becomes `void name(i64 start, i64 end, i8** args)`: a loop over the outer range
[start, end) (the runtime splits it over threads), and inside it one loop nest per stage over the
inner dims. Buffers are passed to an internal body function as `noalias` pointers, so after
inlining LLVM knows loads and stores do not alias and vectorizes the innermost loop; reductions
use `reassoc` so they vectorize too. The values inside the loops come from llvm_scalar.py (the
expression emitter and the elementwise lowering registry); transcendentals from llvm_math
(vectorizable polynomial code), libm only where no polynomial exists.
"""

from __future__ import annotations

import math
from typing import Any

from llvmlite import ir

from compiler.codegen.llvm_scalar import (
    F16, F32, F64, I1, I8, I64, PTR, cast_value, combine, compute_type, const, elementwise,
    identity, storage_type,
)
from compiler.errors import DIV_BY_ZERO_CODE
from compiler.ir.ops import Op
from compiler.ir.reference import GAMMA, MIX1, MIX2
from compiler.ir.types import DType
from compiler.kernel import (
    Apply, Const, Gather, Iota, Kernel, Load, Padded, Rand, Row, Stage, checked, depends_on,
)

DIV_BY_ZERO = DIV_BY_ZERO_CODE  # error flag code (index checks use their site, > 0)


class _Fn:
    """Emission state of one kernel function."""

    def __init__(self, module: ir.Module, kernel: Kernel, noalias: bool):
        self.m = module
        self.k = kernel
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
        self.ptrs = list(self.body.args[2:])
        self.b = ir.IRBuilder(self.body.append_basic_block("entry"))
        self.key_cache: dict[int, ir.Value] = {}
        # the exported ABI wrapper: void name(i64 start, i64 end, i8** args)
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

    # --- addresses and loads -----------------------------------------------------------------------

    def affine(self, coords: list, strides: tuple[int, ...], offset: int) -> ir.Value:
        b = self.b
        acc: ir.Value = ir.Constant(I64, offset)
        for c, s in zip(coords, strides):
            if s:
                term = c if s == 1 else b.mul(c, ir.Constant(I64, s), flags=["nsw"])
                acc = b.add(acc, term, flags=["nsw"])
        return acc

    def load(self, arg: int, dtype: DType, index: ir.Value) -> ir.Value:
        b = self.b
        st = storage_type(dtype)
        v = b.load(b.gep(self.ptrs[arg], [index], source_etype=st, inbounds=True), typ=st)
        return self.to_compute(v, dtype)

    def to_compute(self, v: ir.Value, dtype: DType) -> ir.Value:
        if dtype is DType.bool:
            return self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        if dtype is DType.float16:
            return self.b.fpext(v, F32)
        return v

    def to_storage(self, v: ir.Value, dtype: DType) -> ir.Value:
        if dtype is DType.bool:
            return self.b.zext(v, I8)
        if dtype is DType.float16:
            return self.b.fptrunc(v, F16)
        return v

    def store(self, arg: int, dtype: DType, index: ir.Value, v: ir.Value) -> None:
        b = self.b
        st = storage_type(dtype)
        b.store(self.to_storage(v, dtype),
                b.gep(self.ptrs[arg], [index], source_etype=st, inbounds=True))

    # --- expressions -------------------------------------------------------------------------------

    def emit(self, e: Any, coords: list, rows: dict, memo: dict) -> ir.Value:
        key = id(e)
        if key in memo:
            return memo[key]
        v = self._emit(e, coords, rows, memo)
        memo[key] = v
        return v

    def _emit(self, e: Any, coords: list, rows: dict, memo: dict) -> ir.Value:
        b = self.b
        if isinstance(e, Load):
            return self.load(e.arg, e.dtype, self.affine(coords, e.strides, e.offset))
        if isinstance(e, Const):
            return const(e.value, e.dtype)
        if isinstance(e, Row):
            return rows[e.stage]
        if isinstance(e, Iota):
            return cast_value(b, self.affine(coords, e.strides, e.offset), DType.int64, e.dtype)
        if isinstance(e, Apply):
            args = [self.emit(a, coords, rows, memo) for a in e.args]
            return self.apply(e, args)
        if isinstance(e, Rand):
            return self.rand(e, coords)
        if isinstance(e, Gather):
            idx = self.emit(e.index, coords, rows, memo)
            idx = self.checked_index(idx, e.index.dtype, e.axis_size, e.site)
            base = self.affine(coords, e.strides, e.offset)
            pos = b.add(base, b.mul(idx, ir.Constant(I64, e.axis_stride)))
            return self.load(e.arg, e.dtype, pos)
        if isinstance(e, Padded):
            return self.padded(e, coords)
        raise TypeError(f"cannot generate code for {e!r}")

    def checked_index(self, idx: ir.Value, dtype: DType, n: int, site: int) -> ir.Value:
        """An index as i64 in [0, n): one outside (negative too) records `site` in the error
        flag and reads or writes element 0 instead, so memory stays safe until the caller
        raises (eager raises at once)."""
        b = self.b
        if dtype is not DType.int64:  # signed indices keep their sign (a negative one fails)
            signed = dtype.is_integer and dtype is not DType.uint8
            idx = b.sext(idx, I64) if signed else b.zext(idx, I64)
        ok = b.icmp_unsigned("<", idx, ir.Constant(I64, n))
        self.record(max(site, 1), b.not_(ok))
        return b.select(ok, idx, ir.Constant(I64, 0))

    def record(self, code: int, bad: ir.Value) -> None:
        """OR `bad` (i1) into this function's flag for `code`: a branch-free `or` reduction
        the vectorizer keeps; written to the plan's error flag once, at the end (`report`)."""
        b = self.b
        slot = self.errors.get(code)
        if slot is None:
            here = b.block
            b.position_at_start(self.body.entry_basic_block)
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

    def padded(self, e: Padded, coords: list) -> ir.Value:
        b = self.b
        valid: ir.Value = ir.Constant(I1, 1)
        pos: ir.Value = ir.Constant(I64, e.offset)
        for c, st, lo, step, size in zip(coords, e.strides, e.lows, e.steps, e.sizes):
            t = b.sub(c, ir.Constant(I64, lo))
            q = b.sdiv(t, ir.Constant(I64, step)) if step != 1 else t
            ok = b.and_(b.icmp_signed(">=", t, ir.Constant(I64, 0)),
                        b.icmp_signed("<", q, ir.Constant(I64, size)))
            if step != 1:
                ok = b.and_(ok, b.icmp_signed("==", b.srem(t, ir.Constant(I64, step)),
                                              ir.Constant(I64, 0)))
            valid = b.and_(valid, ok)
            qs = b.select(ok, q, ir.Constant(I64, 0))
            if st:
                pos = b.add(pos, b.mul(qs, ir.Constant(I64, st)))
        pos = b.select(valid, pos, ir.Constant(I64, e.offset))
        v = self.load(e.arg, e.dtype, pos)
        return b.select(valid, v, const(e.value, e.dtype))

    def rand(self, e: Rand, coords: list) -> ir.Value:
        b = self.b
        key, base = self.rng_key(e.state)
        lin = self.affine(coords, e.lin, e.offset + 1)
        ctr = b.add(base, lin)
        z = b.add(key, b.mul(ctr, ir.Constant(I64, _signed(GAMMA))))
        z = b.mul(b.xor(z, b.lshr(z, ir.Constant(I64, 30))), ir.Constant(I64, _signed(MIX1)))
        z = b.mul(b.xor(z, b.lshr(z, ir.Constant(I64, 27))), ir.Constant(I64, _signed(MIX2)))
        z = b.xor(z, b.lshr(z, ir.Constant(I64, 31)))
        if e.dtype is DType.float64:
            u = b.uitofp(b.lshr(z, ir.Constant(I64, 11)), F64)
            return b.fmul(u, ir.Constant(F64, 2.0**-53))
        u = b.uitofp(b.lshr(z, ir.Constant(I64, 40)), F32)
        return b.fmul(u, ir.Constant(F32, 2.0**-24))

    def rng_key(self, state: int) -> tuple[ir.Value, ir.Value]:
        """(mixed seed, counter) of an RNG state buffer, computed once at function entry."""
        if state not in self.key_cache:
            b = self.b
            here = b.block
            b.position_at_start(self.body.entry_basic_block)
            p = self.ptrs[state]
            seed = b.load(p, typ=I64)
            ctr = b.load(b.gep(p, [ir.Constant(I64, 1)], source_etype=I64), typ=I64)
            z = b.add(b.mul(seed, ir.Constant(I64, _signed(GAMMA))), ir.Constant(I64, _signed(GAMMA)))
            z = b.mul(b.xor(z, b.lshr(z, ir.Constant(I64, 30))), ir.Constant(I64, _signed(MIX1)))
            z = b.mul(b.xor(z, b.lshr(z, ir.Constant(I64, 27))), ir.Constant(I64, _signed(MIX2)))
            z = b.xor(z, b.lshr(z, ir.Constant(I64, 31)))
            self.key_cache[state] = (z, ctr)
            b.position_at_end(here)
        return self.key_cache[state]

    def apply(self, e: Apply, args: list) -> ir.Value:
        op = e.op
        if op is Op.CAST:
            src = e.args[0].dtype
            return cast_value(self.b, args[0], src, dict(e.attrs)["dtype"])
        if op is Op.WHERE:
            return self.b.select(args[0], args[1], args[2])
        dtype = e.args[0].dtype if e.args else e.dtype
        if op in (Op.FLOORDIV, Op.REMAINDER) and not dtype.is_floating:
            zero = ir.Constant(args[1].type, 0)
            self.record(DIV_BY_ZERO, self.b.icmp_signed("==", args[1], zero))
        return elementwise(self.m, self.b, op, dtype, args)

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

        def outer_body(o: ir.Value) -> None:
            coords = self.outer_coords(o)
            rows: dict[int, ir.Value] = {}
            for si, st in enumerate(k.stages):
                self.stage(si, st, coords, rows)

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
        n_outer = len(self.k.outer)
        inner_dims = range(n_outer, n_outer + len(inner))
        zero_inner = [ir.Constant(I64, 0)] * len(inner)
        if st.kind == "row":
            rows[si] = self.emit(st.expr, outer_coords + zero_inner, rows, {})
            return
        if st.kind == "reduce":
            rows[si] = self.reduce(st, outer_coords, rows)
            return
        needs_loop = bool(inner) and (depends_on(st.expr, inner_dims) or
                                      any(st.strides[d] for d in inner_dims) or
                                      (st.index is not None and depends_on(st.index, inner_dims)))
        if not needs_loop:
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


def _signed(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u


def generate(kernels: list[Kernel], module_name: str = "hybrid", noalias: bool = True) -> str:
    """LLVM IR text of a module holding every kernel."""
    m = ir.Module(name=module_name)
    for k in kernels:
        fn = _Fn(m, k, noalias)
        fn.generate()
    return str(m)
