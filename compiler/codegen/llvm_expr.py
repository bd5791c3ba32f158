"""The LLVM value of one kernel-IR expression at given loop coordinates, for any LLVM target.

`ExprEmitter` turns a kernel expression (Load, Const, Apply, Gather, Padded, Iota, Rand, Row;
compiler/kernel.py) into llvmlite instructions at an IRBuilder's position. It is given each
argument's base pointer, the block to hoist loop-invariant values into (the RNG keys) and, per
call, the coordinates of the current element; it knows nothing of a calling convention, threads or
loop nests, which stay with the target (llvm_cpu.py for CPUs). A target subclasses it and defines
`record`: what a failed index or division check does. Elementwise ops come from llvm_scalar.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llvmlite import ir

from compiler.codegen.llvm_scalar import (
    F16,
    F32,
    F64,
    I1,
    I8,
    I64,
    cast_value,
    const,
    elementwise,
    storage_type,
)
from compiler.errors import DIV_BY_ZERO_CODE
from compiler.ir.ops import Op
from compiler.ir.reference import GAMMA, MIX1, MIX2
from compiler.ir.types import DType
from compiler.kernel import Apply, Const, Gather, Iota, Load, Padded, Rand, Row

DIV_BY_ZERO = DIV_BY_ZERO_CODE  # error flag code (index checks use their site, > 0)


class ExprEmitter:
    """Emits expression values with builder `b` into module `m`; `ptrs[i]` is argument i's base
    pointer and `entry` the function's entry block (loop-invariant values are computed there)."""

    def __init__(self, module: ir.Module, builder: ir.IRBuilder, ptrs: Sequence[ir.Value],
                 entry: ir.Block):
        self.m = module
        self.b = builder
        self.ptrs = list(ptrs)
        self.entry = entry
        self.key_cache: dict[int, tuple[ir.Value, ir.Value]] = {}  # RNG state arg -> its key

    def record(self, code: int, bad: ir.Value) -> None:
        """The target's error report: `bad` (i1) true means the check `code` failed here."""
        raise NotImplementedError(f"{type(self).__name__} does not report errors")

    # --- addresses and loads -----------------------------------------------------------------------

    def affine(self, coords: list, strides: tuple[int, ...], offset: int) -> ir.Value:
        """offset + sum(coords * strides) as i64 (zero strides emit nothing)."""
        b = self.b
        acc: ir.Value = ir.Constant(I64, offset)
        for c, s in zip(coords, strides):
            if s:
                term = c if s == 1 else b.mul(c, ir.Constant(I64, s), flags=["nsw"])
                acc = b.add(acc, term, flags=["nsw"])
        return acc

    def load(self, arg: int, dtype: DType, index: ir.Value) -> ir.Value:
        """Element `index` of argument `arg`, in its compute type."""
        b = self.b
        st = storage_type(dtype)
        v = b.load(b.gep(self.ptrs[arg], [index], source_etype=st, inbounds=True), typ=st)
        return self.to_compute(v, dtype)

    def to_compute(self, v: ir.Value, dtype: DType) -> ir.Value:
        """A stored value (bool as i8, float16 as half) in the type it is computed in."""
        if dtype is DType.bool:
            return self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        if dtype is DType.float16:
            return self.b.fpext(v, F32)
        return v

    def to_storage(self, v: ir.Value, dtype: DType) -> ir.Value:
        """The inverse of `to_compute`: a computed value as it is stored."""
        if dtype is DType.bool:
            return self.b.zext(v, I8)
        if dtype is DType.float16:
            return self.b.fptrunc(v, F16)
        return v

    # --- expressions -------------------------------------------------------------------------------

    def emit(self, e: Any, coords: list, rows: dict, memo: dict) -> ir.Value:
        """The value of `e` at `coords` (i64 values, outer dims then inner); `rows` maps a
        stage index to its value (Row), `memo` shares common subexpressions within one element."""
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
            b.position_at_start(self.entry)
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


def _signed(u: int) -> int:
    return u - (1 << 64) if u >= 1 << 63 else u
