"""The primitive -> ONNX node table used by hybrid.onnx.export.

Each emitter gets an `Emit` context (which makes names, constants and nodes) and one graph Node,
and returns nothing: it appends ONNX nodes whose last one writes the node's output name. Every
primitive not in `EMITTERS` (or one whose attributes fall outside what is mapped) is refused by
the exporter with the op named."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compiler.ir.ops import Literal, Op
from compiler.ir.types import DType
from hybrid.onnx._symbolic import is_symbolic


class Unsupported(Exception):
    """A primitive (or an attribute value of one) this exporter has no ONNX mapping for."""


def onnx_dtype(dtype: DType) -> int:
    """The TensorProto element type of a hybrid dtype (bfloat16 is not exported)."""
    from onnx import TensorProto

    table = {
        DType.bool: TensorProto.BOOL, DType.uint8: TensorProto.UINT8,
        DType.int8: TensorProto.INT8, DType.int16: TensorProto.INT16,
        DType.int32: TensorProto.INT32, DType.int64: TensorProto.INT64,
        DType.float16: TensorProto.FLOAT16, DType.float32: TensorProto.FLOAT,
        DType.float64: TensorProto.DOUBLE,
    }
    if dtype not in table:
        raise Unsupported(f"dtype {dtype.name} has no exported ONNX element type")
    return table[dtype]


class Emit:
    """Builds the ONNX node list and the constant initializers of one exported graph."""

    def __init__(self, opset: int):
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._consts: dict[tuple, str] = {}
        self.dims: dict[int, tuple[str, int]] = {}  # dynamic dim -> (graph input, axis)
        self._polys: dict[Any, str] = {}

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"_{hint}{self._count}"

    def node(self, op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = output or self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def const(self, array: Any, dtype: Any = None) -> str:
        """An initializer holding `array` (shared by content), its name."""
        from onnx import numpy_helper

        arr = np.array(array, dtype=dtype, order="C")  # (ascontiguousarray makes 0-d 1-d)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self.fresh("const")
            self.initializers.append(numpy_helper.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def ints(self, values: Any) -> str:
        """A 1-d int64 tensor of `values`: an initializer, or where some are symbolic sizes
        (`_symbolic.Poly`) the concat of constant runs and those sizes computed from the inputs'
        shapes (`dims`: symbol -> (input name, axis))."""
        values = list(values)
        if not is_symbolic(values):
            return self.const(np.asarray(values, dtype=np.int64))
        parts, run = [], []
        for v in values:
            if is_symbolic(v):
                if run:
                    parts.append(self.const(np.asarray(run, dtype=np.int64)))
                    run = []
                parts.append(self._poly(v))
            else:
                run.append(int(v))
        if run:
            parts.append(self.const(np.asarray(run, dtype=np.int64)))
        return parts[0] if len(parts) == 1 else self.node("Concat", parts, axis=0)

    def _poly(self, p: Any) -> str:
        if p in self._polys:
            return self._polys[p]
        acc = None
        for mono, coef in p.terms:
            t = None
            for i in mono:
                d = self._dim(i)
                t = d if t is None else self.node("Mul", [t, d])
            if t is None:
                t = self.const(np.asarray([coef], dtype=np.int64))
            elif coef != 1:
                t = self.node("Mul", [t, self.const(np.asarray([coef], dtype=np.int64))])
            acc = t if acc is None else self.node("Add", [acc, t])
        self._polys[p] = acc
        return acc

    def _dim(self, i: int) -> str:
        name, axis = self.dims[i]
        key = ("dim", i)
        if key not in self._polys:
            self._polys[key] = self.node("Shape", [name], start=axis, end=axis + 1)
        return self._polys[key]

    def scalar_like(self, value: float, dtype: DType) -> str:
        return self.const(np.asarray(value, dtype=dtype.np))


TensorProto_UINT8 = 2  # onnx.TensorProto.UINT8

Emitter = Callable[[Emit, list, Any, str], None]  # (ctx, input names, node, output name)


def _simple(op_type: str) -> Emitter:
    def run(ctx: Emit, ins: list, node: Any, out: str) -> None:
        ctx.node(op_type, ins, out)

    return run


def _float_only(op_type: str) -> Emitter:
    def run(ctx: Emit, ins: list, node: Any, out: str) -> None:
        if not node.inputs[0].dtype.is_floating:
            raise Unsupported(f"{node.op.value} on {node.inputs[0].dtype.name} inputs")
        ctx.node(op_type, ins, out)

    return run


def _rsqrt(ctx, ins, node, out):
    ctx.node("Reciprocal", [ctx.node("Sqrt", ins)], out)


def _erfc(ctx, ins, node, out):
    one = ctx.scalar_like(1, node.out.dtype)
    ctx.node("Sub", [one, ctx.node("Erf", ins)], out)


def _log1p(ctx, ins, node, out):
    one = ctx.scalar_like(1, node.out.dtype)
    ctx.node("Log", [ctx.node("Add", [ins[0], one])], out)


def _expm1(ctx, ins, node, out):
    one = ctx.scalar_like(1, node.out.dtype)
    ctx.node("Sub", [ctx.node("Exp", ins), one], out)


def _trunc(ctx, ins, node, out):
    zero = ctx.scalar_like(0, node.inputs[0].dtype)
    neg = ctx.node("Less", [ins[0], zero])
    ctx.node("Where", [neg, ctx.node("Ceil", ins), ctx.node("Floor", ins)], out)


def _floordiv(ctx, ins, node, out):
    if not node.inputs[0].dtype.is_floating:
        raise Unsupported("floordiv on integers (ONNX Div truncates toward zero)")
    ctx.node("Floor", [ctx.node("Div", ins)], out)


def _remainder(ctx, ins, node, out):
    if node.inputs[0].dtype.is_floating:
        # a - floor(a / b) * b: the sign of the divisor, as torch.remainder
        q = ctx.node("Floor", [ctx.node("Div", ins)])
        ctx.node("Sub", [ins[0], ctx.node("Mul", [q, ins[1]])], out)
    else:
        ctx.node("Mod", ins, out, fmod=0)


def _logical(bool_op: str, bit_op: str) -> Emitter:
    def run(ctx, ins, node, out):
        if node.inputs[0].dtype is DType.bool:
            ctx.node(bool_op, ins, out)
        elif ctx.opset >= 18:
            ctx.node(bit_op, ins, out)
        else:
            raise Unsupported(f"{node.op.value} on integers (needs opset >= 18: {bit_op})")

    return run


def _not(ctx, ins, node, out):
    if node.inputs[0].dtype is not DType.bool:
        raise Unsupported("not on integers")
    ctx.node("Not", ins, out)


def _ne(ctx, ins, node, out):
    ctx.node("Not", [ctx.node("Equal", ins)], out)


def _where(ctx, ins, node, out):
    if node.out.dtype is not DType.bool:
        ctx.node("Where", ins, out)
        return
    # onnxruntime has no bool Where kernel: select uint8, cast back
    u8 = [ctx.node("Cast", [i], to=TensorProto_UINT8) for i in ins[1:]]
    ctx.node("Cast", [ctx.node("Where", [ins[0]] + u8)], out, to=onnx_dtype(DType.bool))


def _cast(ctx, ins, node, out):
    ctx.node("Cast", ins, out, to=onnx_dtype(node.attrs["dtype"]))


def _reduce(op_type: str, axes_input_from: int) -> Emitter:
    """ReduceSum takes axes as an input from opset 13, ReduceMax/Prod from opset 18."""

    def run(ctx, ins, node, out):
        axes = tuple(node.attrs["axes"])
        if not axes:
            ctx.node("Identity", ins, out)
        elif ctx.opset >= axes_input_from:
            ctx.node(op_type, [ins[0], ctx.ints(axes)], out, keepdims=1)
        else:
            ctx.node(op_type, ins, out, axes=list(axes), keepdims=1)

    return run


def _reshape(ctx, ins, node, out):
    ctx.node("Reshape", [ins[0], ctx.ints(node.attrs["shape"])], out, allowzero=1)


def _permute(ctx, ins, node, out):
    ctx.node("Transpose", ins, out, perm=list(node.attrs["perm"]))


def _expand(ctx, ins, node, out):
    ctx.node("Expand", [ins[0], ctx.ints(node.attrs["shape"])], out)


def _slice(ctx, ins, node, out):
    a = node.attrs
    n = len(a["starts"])
    ctx.node("Slice", [ins[0], ctx.ints(a["starts"]), ctx.ints(a["stops"]), ctx.ints(range(n)),
                       ctx.ints(a["steps"])], out)


def _pad(ctx, ins, node, out):
    pads = node.attrs["pads"]
    if any(p[2] for p in pads):
        raise Unsupported("pad with interior padding (dilation)")
    flat = [p[0] for p in pads] + [p[1] for p in pads]
    value = ctx.scalar_like(node.attrs["value"], node.out.dtype)
    ctx.node("Pad", [ins[0], ctx.ints(flat), value], out, mode="constant")


def _concat(ctx, ins, node, out):
    ctx.node("Concat", ins, out, axis=int(node.attrs["axis"]))


def _gather(ctx, ins, node, out):
    ctx.node("Gather", ins, out, axis=int(node.attrs["axis"]))


def _value_array(node) -> np.ndarray:
    a = node.attrs
    value = a["value"]
    if isinstance(value, Literal):
        return np.asarray(value.array, dtype=a["dtype"].np).reshape(a["shape"])
    return np.full(a["shape"], value, dtype=a["dtype"].np)


def _constant(ctx, ins, node, out):
    # NOTE: never symbolic: a literal's content and shape are part of what the traces compare
    # (_symbolic.skeleton), so a size-dependent literal is refused before emission
    _const_node(ctx, _value_array(node), out)


def _full(ctx, ins, node, out):
    a = node.attrs
    if is_symbolic(a["value"]):  # a size as a value (mean's divisor): computed, cast
        n = ctx.node("Reshape", [ctx.ints([a["value"]]), ctx.ints([])])
        ctx.node("Expand", [ctx.node("Cast", [n], to=onnx_dtype(a["dtype"])),
                            ctx.ints(a["shape"])], out)
        return
    if is_symbolic(a["shape"]):  # (a full node's value is a scalar; literals are constants)
        from onnx import numpy_helper

        fill = numpy_helper.from_array(np.asarray([a["value"]], dtype=a["dtype"].np))
        ctx.node("ConstantOfShape", [ctx.ints(a["shape"])], out, value=fill)
        return
    if isinstance(a["value"], Literal) or int(np.prod(a["shape"])) <= 1:
        _const_node(ctx, _value_array(node), out)
        return
    # a large fill: ConstantOfShape instead of storing every element
    from onnx import numpy_helper

    fill = numpy_helper.from_array(np.asarray([a["value"]], dtype=a["dtype"].np))
    ctx.node("ConstantOfShape", [ctx.ints(a["shape"])], out, value=fill)


def _iota(ctx, ins, node, out):
    a = node.attrs
    shape, axis = tuple(a["shape"]), int(a["axis"])
    if is_symbolic(shape):
        # Range(0, n) shaped (n, 1, ..., 1), broadcast to the shape at run time
        n = ctx.node("Reshape", [ctx.ints([shape[axis]]), ctx.ints([])])  # a 0-d size
        r = ctx.node("Range", [ctx.scalar_like(0, a["dtype"]),
                               ctx.node("Cast", [n], to=onnx_dtype(a["dtype"])),
                               ctx.scalar_like(1, a["dtype"])])
        tail = ctx.ints([shape[axis]] + [1] * (len(shape) - axis - 1))
        ctx.node("Expand", [ctx.node("Reshape", [r, tail]), ctx.ints(shape)], out)
        return
    n = shape[axis]
    r = np.arange(n, dtype=a["dtype"].np).reshape((n,) + (1,) * (len(shape) - axis - 1))
    if int(np.prod(shape)) <= 4096:
        _const_node(ctx, np.broadcast_to(r, shape), out)
    else:
        ctx.node("Expand", [ctx.const(r), ctx.ints(shape)], out)


def _const_node(ctx: Emit, array: np.ndarray, out: str) -> None:
    ctx.node("Identity", [ctx.const(array)], out)


EMITTERS: dict[Op, Emitter] = {
    Op.NEG: _simple("Neg"), Op.ABS: _simple("Abs"), Op.SIGN: _simple("Sign"),
    Op.EXP: _simple("Exp"), Op.LOG: _simple("Log"), Op.SQRT: _simple("Sqrt"),
    Op.RSQRT: _rsqrt, Op.SIN: _simple("Sin"), Op.COS: _simple("Cos"),
    Op.TANH: _simple("Tanh"), Op.ERF: _simple("Erf"), Op.ERFC: _erfc,
    Op.SIGMOID: _simple("Sigmoid"), Op.LOG1P: _log1p, Op.EXPM1: _expm1,
    Op.RECIPROCAL: _simple("Reciprocal"), Op.FLOOR: _simple("Floor"),
    Op.CEIL: _simple("Ceil"), Op.ROUND: _simple("Round"), Op.TRUNC: _trunc,
    Op.NOT: _not, Op.COPY: _simple("Identity"),
    Op.ADD: _simple("Add"), Op.SUB: _simple("Sub"), Op.MUL: _simple("Mul"),
    Op.DIV: _float_only("Div"), Op.POW: _float_only("Pow"),
    Op.MAXIMUM: _simple("Max"), Op.MINIMUM: _simple("Min"),
    Op.FLOORDIV: _floordiv, Op.REMAINDER: _remainder,
    Op.AND: _logical("And", "BitwiseAnd"), Op.OR: _logical("Or", "BitwiseOr"),
    Op.XOR: _logical("Xor", "BitwiseXor"),
    Op.EQ: _simple("Equal"), Op.NE: _ne, Op.LT: _simple("Less"),
    Op.LE: _simple("LessOrEqual"), Op.GT: _simple("Greater"),
    Op.GE: _simple("GreaterOrEqual"),
    Op.WHERE: _where, Op.CAST: _cast,
    Op.SUM: _reduce("ReduceSum", 13), Op.PROD: _reduce("ReduceProd", 18),
    Op.MAX: _reduce("ReduceMax", 18),
    Op.RESHAPE: _reshape, Op.PERMUTE: _permute, Op.EXPAND: _expand, Op.SLICE: _slice,
    Op.PAD: _pad, Op.CONCAT: _concat,
    Op.MATMUL: _simple("MatMul"), Op.GATHER: _gather,
    Op.CONSTANT: _constant, Op.FULL: _full, Op.IOTA: _iota,
}

# ops whose emitters take symbolic sizes (hybrid/onnx/_symbolic.py) in their attributes: shapes
# and bounds go through Emit.ints, computed from the inputs' shapes at run time
SIZED = frozenset({Op.RESHAPE, Op.EXPAND, Op.SLICE, Op.PAD, Op.FULL, Op.IOTA})


def supported_ops() -> list[str]:
    """The primitive names hybrid.onnx.export maps, sorted."""
    return sorted(op.value for op in EMITTERS)
