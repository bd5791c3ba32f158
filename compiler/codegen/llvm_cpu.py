"""LLVM code generation for CPU kernels (llvmlite's IR builder).

Each Kernel becomes `void name(i64 start, i64 end, i8** args)`: a loop over the outer range
[start, end) (the runtime splits it over threads), and inside it one loop nest per stage over the
inner dims. Buffers are passed to an internal body function as `noalias` pointers, so after
inlining LLVM knows loads and stores do not alias and vectorizes the innermost loop; reductions
use `reassoc` so they vectorize too. Transcendentals come from llvm_math (vectorizable polynomial
code), not from libm calls in the loop (libm is used only for float64 where no polynomial exists).
"""

from __future__ import annotations

import math
from typing import Any

from llvmlite import ir

try:
    from compiler.codegen import llvm_math
except ImportError:  # pragma: no cover  (the polynomial library is optional: libm then)
    llvm_math = None
from compiler.errors import DIV_BY_ZERO_CODE
from compiler.ir.ops import Op
from compiler.ir.reference import GAMMA, MIX1, MIX2
from compiler.ir.types import DType
from compiler.kernel import (
    Apply, Const, Gather, Iota, Kernel, Load, Padded, Rand, Row, Stage, checked, depends_on,
)

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
DIV_BY_ZERO = DIV_BY_ZERO_CODE  # error flag code (index checks use their site, > 0)
F16, F32, F64 = ir.HalfType(), ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()

_STORAGE = {DType.bool: I8, DType.int32: I32, DType.int64: I64, DType.float16: F16,
            DType.float32: F32, DType.float64: F64}
_COMPUTE = {DType.bool: I1, DType.int32: I32, DType.int64: I64, DType.float16: F32,
            DType.float32: F32, DType.float64: F64}
_REASSOC = ("reassoc", "contract")


def storage_type(d: DType) -> ir.Type:
    return _STORAGE[d]


def compute_type(d: DType) -> ir.Type:
    return _COMPUTE[d]


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
        b = self.b
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


def const(value: Any, dtype: DType) -> ir.Constant:
    ty = compute_type(dtype)
    if dtype is DType.bool:
        return ir.Constant(I1, int(bool(value)))
    if dtype.is_integer:
        return ir.Constant(ty, int(value))
    return ir.Constant(ty, float(value))


def identity(op: Op, dtype: DType) -> ir.Constant:
    if op is Op.SUM:
        return const(0, dtype)
    if op is Op.PROD:
        return const(1, dtype)
    if dtype.is_floating:
        return const(-math.inf, dtype)
    return const(-(2 ** (8 * dtype.itemsize - 1)), dtype)


def combine(m: ir.Module, b: ir.IRBuilder, op: Op, dtype: DType, acc: ir.Value,
            v: ir.Value) -> ir.Value:
    if dtype.is_floating:
        if op is Op.SUM:
            return b.fadd(acc, v, flags=_REASSOC)
        if op is Op.PROD:
            return b.fmul(acc, v, flags=_REASSOC)
        return intrinsic(m, b, "llvm.maximum", [acc, v])
    if op is Op.SUM:
        return b.add(acc, v)
    if op is Op.PROD:
        return b.mul(acc, v)
    return b.select(b.icmp_signed(">", v, acc), v, acc)


def intrinsic(m: ir.Module, b: ir.IRBuilder, name: str, args: list) -> ir.Value:
    ty = args[0].type
    suffix = {F32: "f32", F64: "f64", F16: "f16"}[ty] if ty in (F32, F64, F16) else f"i{ty.width}"
    full = f"{name}.{suffix}"
    fn = m.globals.get(full)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(ty, [a.type for a in args]), name=full)
    return b.call(fn, args)


def libm(m: ir.Module, b: ir.IRBuilder, name: str, args: list) -> ir.Value:
    ty = args[0].type
    fname = name if ty == F64 else name + "f"
    fn = m.globals.get(fname)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(ty, [a.type for a in args]), name=fname)
    return b.call(fn, args)


def _to_float32_round_to_odd(b: ir.IRBuilder, d: ir.Value) -> ir.Value:
    """float64 -> float32 rounded to odd: truncated toward zero, with the last bit set when
    inexact. float32 keeps 13 more bits than float16, so rounding this to half is the correctly
    rounded half of `d` (no double rounding). NaN stays NaN, overflow stays above half's max."""
    f = b.fptrunc(d, F32)
    inexact = b.fcmp_unordered("!=", b.fpext(f, F64), d)
    away = b.fcmp_ordered(">", _fabs(b, b.fpext(f, F64)), _fabs(b, d))
    bits = b.bitcast(f, I32)
    toward_zero = b.select(away, b.sub(bits, ir.Constant(I32, 1)), bits)
    odd = b.or_(toward_zero, ir.Constant(I32, 1))
    return b.bitcast(b.select(inexact, odd, bits), F32)


def _fabs(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    m = b.module
    name = "llvm.fabs.f64"
    fn = m.globals.get(name)
    if fn is None:
        fn = ir.Function(m, ir.FunctionType(F64, [F64]), name=name)
    return b.call(fn, [x])


def cast_value(b: ir.IRBuilder, v: ir.Value, src: DType, dst: DType) -> ir.Value:
    """Convert a compute value of dtype src to dtype dst (numpy's astype semantics)."""
    if src is dst:
        return v
    st, dt = compute_type(src), compute_type(dst)
    if dst is DType.bool:
        if src.is_floating:
            return b.fcmp_unordered("!=", v, ir.Constant(st, 0.0))
        return b.icmp_unsigned("!=", v, ir.Constant(st, 0))
    if dst is DType.float16:
        # NOTE: float16 computes in float32, but a cast to it must round to half precision.
        # Only float32 -> half is converted (one instruction with F16C); float64 -> half and
        # int -> half would be compiler-rt calls MCJIT cannot resolve, so they go through float32
        # (a float64 source is rounded to float32 *to odd*, so that the second rounding gives
        # the correctly rounded half, as numpy's direct conversion does).
        f = _to_float32_round_to_odd(b, v) if src is DType.float64 else \
            cast_value(b, v, src, DType.float32)
        return b.fpext(b.fptrunc(f, F16), F32)
    if src is DType.bool:
        return b.uitofp(v, dt) if dst.is_floating else b.zext(v, dt)
    if src.is_floating and dst.is_floating:
        if st == dt:
            return v
        return b.fpext(v, dt) if dt == F64 else b.fptrunc(v, dt)
    if src.is_floating:
        return b.fptosi(v, dt)
    if dst.is_floating:
        return b.sitofp(v, dt)
    if st.width < dt.width:
        return b.sext(v, dt)
    return b.trunc(v, dt)


_FCMP = {Op.EQ: "==", Op.NE: "!=", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_MATH_UNARY = {Op.EXP: "exp", Op.LOG: "log", Op.TANH: "tanh", Op.SIGMOID: "sigmoid",
               Op.ERF: "erf", Op.SIN: "sin", Op.COS: "cos", Op.LOG1P: "log1p",
               Op.EXPM1: "expm1"}
_ROUNDING = {Op.FLOOR: "llvm.floor", Op.CEIL: "llvm.ceil", Op.TRUNC: "llvm.trunc",
             Op.ROUND: "llvm.roundeven"}


def _math(m: ir.Module, b: ir.IRBuilder, name: str, dtype: DType, args: list) -> ir.Value:
    kind = "f64" if dtype is DType.float64 else "f32"  # float16 computes in float32
    if llvm_math is not None and llvm_math.supports(name, kind):
        return getattr(llvm_math, name)(b, *args)
    if name == "sigmoid":
        one = ir.Constant(args[0].type, 1.0)
        return b.fdiv(one, b.fadd(one, _math(m, b, "exp", dtype, [b.fneg(args[0])])))
    return libm(m, b, name, args)


def elementwise(m: ir.Module, b: ir.IRBuilder, op: Op, dtype: DType, args: list) -> ir.Value:
    """One elementwise primitive on compute values of input dtype `dtype`."""
    if op in _FCMP:
        x, y = args
        if dtype.is_floating:
            if op is Op.NE:
                return b.fcmp_unordered("!=", x, y)
            return b.fcmp_ordered(_FCMP[op], x, y)
        if dtype is DType.bool:
            return b.icmp_unsigned(_FCMP[op], x, y)
        return b.icmp_signed(_FCMP[op], x, y)
    if dtype.is_floating:
        return _float_op(m, b, op, dtype, args)
    return _int_op(m, b, op, dtype, args)


def _float_op(m: ir.Module, b: ir.IRBuilder, op: Op, dtype: DType, args: list) -> ir.Value:
    ty = args[0].type
    one = ir.Constant(ty, 1.0)
    if op is Op.ADD:
        return b.fadd(*args)
    if op is Op.SUB:
        return b.fsub(*args)
    if op is Op.MUL:
        return b.fmul(*args)
    if op is Op.DIV:
        return b.fdiv(*args)
    if op is Op.NEG:
        return b.fneg(args[0])
    if op is Op.COPY:
        return args[0]
    if op is Op.ABS:
        return intrinsic(m, b, "llvm.fabs", args)
    if op is Op.SQRT:
        return intrinsic(m, b, "llvm.sqrt", args)
    if op is Op.RSQRT:
        return b.fdiv(one, intrinsic(m, b, "llvm.sqrt", args))
    if op is Op.RECIPROCAL:
        return b.fdiv(one, args[0])
    if op in _ROUNDING:
        return intrinsic(m, b, _ROUNDING[op], args)
    if op is Op.MAXIMUM:
        return intrinsic(m, b, "llvm.maximum", args)
    if op is Op.MINIMUM:
        return intrinsic(m, b, "llvm.minimum", args)
    if op is Op.SIGN:
        x = args[0]
        zero = ir.Constant(ty, 0.0)
        s = b.select(b.fcmp_ordered(">", x, zero), one,
                     b.select(b.fcmp_ordered("<", x, zero), ir.Constant(ty, -1.0), zero))
        return b.select(b.fcmp_unordered("uno", x, x), x, s)
    if op in _MATH_UNARY:
        return _math(m, b, _MATH_UNARY[op], dtype, args)
    if op is Op.POW:
        return _math(m, b, "pow", dtype, args)
    if op is Op.ATAN2:
        return _math(m, b, "atan2", dtype, args)
    if op in (Op.FLOORDIV, Op.REMAINDER):
        return _float_divmod(m, b, op, args)
    raise NotImplementedError(f"codegen: {op.value} on {dtype.name}")


def _float_divmod(m: ir.Module, b: ir.IRBuilder, op: Op, args: list) -> ir.Value:
    """numpy's float floor_divide / remainder (npy_divmod): the quotient is rounded from
    (x - fmod(x, y)) / y, the remainder takes the divisor's sign, y == 0 gives x / y and
    fmod(x, 0)."""
    x, y = args
    ty = x.type
    zero, one = ir.Constant(ty, 0.0), ir.Constant(ty, 1.0)
    mod = b.frem(x, y)
    y_zero = b.fcmp_ordered("==", y, zero)
    if op is Op.REMAINDER:
        mod_nz = b.fcmp_unordered("!=", mod, zero)
        fix = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
        fixed = b.select(fix, b.fadd(mod, y), mod)
        signed_zero = intrinsic(m, b, "llvm.copysign", [zero, y])
        return b.select(y_zero, mod, b.select(mod_nz, fixed, signed_zero))
    div = b.fdiv(b.fsub(x, mod), y)
    mod_nz = b.fcmp_unordered("!=", mod, zero)
    fix = b.and_(mod_nz, b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero)))
    div = b.select(fix, b.fsub(div, one), div)
    fl = intrinsic(m, b, "llvm.floor", [div])
    fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), ir.Constant(ty, 0.5)), b.fadd(fl, one), fl)
    quotient = b.fdiv(x, y)
    signed_zero = intrinsic(m, b, "llvm.copysign", [zero, quotient])
    res = b.select(b.fcmp_unordered("!=", div, zero), fl, signed_zero)
    return b.select(y_zero, quotient, res)


def _int_op(m: ir.Module, b: ir.IRBuilder, op: Op, dtype: DType, args: list) -> ir.Value:
    ty = args[0].type
    zero = ir.Constant(ty, 0)
    if op is Op.ADD:
        return b.or_(*args) if dtype is DType.bool else b.add(*args)
    if op is Op.SUB:
        return b.sub(*args)
    if op is Op.MUL:
        return b.and_(*args) if dtype is DType.bool else b.mul(*args)
    if op is Op.NEG:
        return b.sub(zero, args[0])
    if op is Op.COPY:
        return args[0]
    if op is Op.ABS:
        x = args[0]
        return b.select(b.icmp_signed("<", x, zero), b.sub(zero, x), x)
    if op is Op.SIGN:
        x = args[0]
        return b.select(b.icmp_signed(">", x, zero), ir.Constant(ty, 1),
                        b.select(b.icmp_signed("<", x, zero), ir.Constant(ty, -1), zero))
    if op in (Op.MAXIMUM, Op.MINIMUM):
        x, y = args
        cmp = "icmp_unsigned" if dtype is DType.bool else "icmp_signed"
        gt = getattr(b, cmp)(">", x, y)
        return b.select(gt, x, y) if op is Op.MAXIMUM else b.select(gt, y, x)
    if op is Op.AND:
        return b.and_(*args)
    if op is Op.OR:
        return b.or_(*args)
    if op is Op.XOR:
        return b.xor(*args)
    if op is Op.NOT:
        return b.xor(args[0], ir.Constant(ty, 1))
    if op in (Op.FLOORDIV, Op.REMAINDER):
        x, y = args
        # NOTE: numpy gives 0 for a zero divisor and wraps MIN // -1 to MIN; sdiv would trap
        # (SIGFPE) on both, so those divisors are replaced by 1 and the -1 case fixed up.
        minus_one = b.icmp_signed("==", y, ir.Constant(ty, -1))
        safe = b.select(b.or_(b.icmp_signed("==", y, zero), minus_one), ir.Constant(ty, 1), y)
        q, r = b.sdiv(x, safe), b.srem(x, safe)
        q = b.select(minus_one, b.sub(zero, x), q)
        adjust = b.and_(b.icmp_signed("!=", r, zero),
                        b.xor(b.icmp_signed("<", r, zero), b.icmp_signed("<", safe, zero)))
        if op is Op.FLOORDIV:
            return b.select(b.icmp_signed("==", y, zero), zero,
                            b.select(adjust, b.sub(q, ir.Constant(ty, 1)), q))
        return b.select(b.icmp_signed("==", y, zero), zero,
                        b.select(adjust, b.add(r, safe), r))
    if op is Op.POW:
        # square-and-multiply over the exponent's bits: numpy's wrapping integer power; a
        # negative exponent truncates 1 / x ** -y as PyTorch does (1 for x == 1, +-1 for
        # x == -1, else 0)
        x, y = args
        result, base = ir.Constant(ty, 1), x
        for bit in range(ty.width - 1):
            on = b.icmp_unsigned("!=", b.and_(y, ir.Constant(ty, 1 << bit)), zero)
            result = b.select(on, b.mul(result, base), result)
            if bit < ty.width - 2:
                base = b.mul(base, base)
        one, minus_one = ir.Constant(ty, 1), ir.Constant(ty, -1)
        odd = b.icmp_unsigned("!=", b.and_(y, one), zero)
        neg_pow = b.select(b.icmp_signed("==", x, one), one,
                           b.select(b.icmp_signed("==", x, minus_one),
                                    b.select(odd, minus_one, one), zero))
        return b.select(b.icmp_signed("<", y, zero), neg_pow, result)
    raise NotImplementedError(f"codegen: {op.value} on {dtype.name}")


def generate(kernels: list[Kernel], module_name: str = "hybrid", noalias: bool = True) -> str:
    """LLVM IR text of a module holding every kernel."""
    m = ir.Module(name=module_name)
    for k in kernels:
        fn = _Fn(m, k, noalias)
        fn.generate()
    return str(m)
