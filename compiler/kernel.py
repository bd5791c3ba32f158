"""Loop-level kernels: an iteration space, expressions over strided loads, reductions, stores.

A kernel's index space is `outer + inner` dims. The runtime splits the flattened `outer` range
over threads; for each outer index the kernel runs its stages in order, each a loop over the
`inner` dims: a `reduce` stage folds an expression into one value per outer index (readable by
later stages as `Row(k)`), a `store` stage writes an expression to a buffer. Views (permute,
expand, slice, contiguous reshape) are only strides and an offset on a load, never copies.

A kernel with `lanes` set runs `lanes` consecutive outer indices at a time, every stage a loop
over them innermost: for reductions whose loads are contiguous along the outer dims rather than
the reduced ones (a column sum), so that the loop over lanes vectorizes.

A `scatter` kernel is serial: for each element of its space it writes (or adds) a value at a
data-dependent position of its output."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Union

from compiler.ir.ops import Op
from compiler.ir.types import DType
from compiler.view import View

# --- expressions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Load:
    """buffer[arg][offset + sum(coord[d] * strides[d])]"""

    arg: int
    dtype: DType
    strides: tuple[int, ...]
    offset: int = 0


@dataclass(frozen=True)
class Const:
    value: Any
    dtype: DType


@dataclass(frozen=True)
class Iota:
    """offset + sum(coord[d] * strides[d]): the iota primitive seen through views."""

    strides: tuple[int, ...]
    offset: int
    dtype: DType


@dataclass(frozen=True)
class Apply:
    """An elementwise primitive on sub-expressions (`attrs` holds cast's dtype)."""

    op: Op
    args: tuple
    dtype: DType
    attrs: tuple = ()


@dataclass(frozen=True)
class Rand:
    """Uniform [0,1) at counter state[1] + offset + linear index + 1 (the rand primitive)."""

    state: int
    offset: int
    lin: tuple[int, ...]  # linear element index = sum(coord[d] * lin[d])
    dtype: DType


@dataclass(frozen=True)
class Gather:
    """buffer[arg][offset + sum(coord[d] * strides[d]) + index * axis_stride], index in [0, n):
    an index outside sets the kernel's error flag to `site` (see `checked`)."""

    arg: int
    dtype: DType
    strides: tuple[int, ...]
    offset: int
    axis_stride: int
    axis_size: int
    index: Any  # integer expression
    site: int = 0  # 1 + position of the gather node in the graph (0: not traced from a node)


@dataclass(frozen=True)
class Padded:
    """A load from a padded view: `value` outside, else buffer[offset + sum(src_coord*strides)],
    where per dim src = (coord - lo) / (interior + 1) when it lands on an element."""

    arg: int
    dtype: DType
    strides: tuple[int, ...]  # per loop dim, of the unpadded source
    offset: int
    lows: tuple[int, ...]
    steps: tuple[int, ...]  # interior + 1
    sizes: tuple[int, ...]  # source sizes per loop dim
    value: Any


@dataclass(frozen=True)
class Row:
    """The result of reduce stage `stage` for the current outer index."""

    stage: int
    dtype: DType


Expr = Union[Load, Const, Iota, Apply, Rand, Gather, Padded, Row]


def walk(e: Any):
    """Every sub-expression of `e`, children first."""
    if isinstance(e, Apply):
        for a in e.args:
            yield from walk(a)
    elif isinstance(e, Gather):
        yield from walk(e.index)
    yield e


def map_expr(e: Any, leaf: Callable[[Any], Any]) -> Any:
    """`e` rebuilt with `leaf(x)` in place of each leaf x (a load, constant, row value, ...):
    Apply nodes and a gather's index expression are walked into, the gather itself is a leaf."""
    if isinstance(e, Apply):
        return Apply(e.op, tuple(map_expr(a, leaf) for a in e.args), e.dtype, e.attrs)
    if isinstance(e, Gather):
        e = Gather(e.arg, e.dtype, e.strides, e.offset, e.axis_stride, e.axis_size,
                   map_expr(e.index, leaf), e.site)
    return leaf(e)


class NotReindexable(Exception):
    """A padded load met by a reindex that may not move padding to another loop space."""


def reindex(e: Any, fix: Callable[[tuple], tuple], padded: bool = True) -> Any:
    """`e` over another loop space: every per-dim tuple of its leaves (strides of loads, gathers
    and iotas, a rand's linear index) mapped by `fix`. A padded load has its lows, steps and
    sizes mapped too when `padded`, else NotReindexable is raised."""

    def leaf(x: Any) -> Any:
        if isinstance(x, (Load, Iota, Gather)):
            return dataclasses.replace(x, strides=fix(x.strides))
        if isinstance(x, Rand):
            return dataclasses.replace(x, lin=fix(x.lin))
        if isinstance(x, Padded):
            if not padded:
                raise NotReindexable()
            return dataclasses.replace(x, strides=fix(x.strides), lows=fix(x.lows),
                                       steps=fix(x.steps), sizes=fix(x.sizes))
        return x

    return map_expr(e, leaf)


def depends_on(e: Any, dims: range) -> bool:
    """Whether the value of `e` changes along any of `dims`."""
    for s in walk(e):
        if isinstance(s, (Load, Gather, Padded, Iota)) and any(s.strides[d] for d in dims):
            return True
        if isinstance(s, Padded) and any(s.lows[d] or s.steps[d] > 1 for d in dims):
            return True
        if isinstance(s, Rand) and any(s.lin[d] for d in dims):
            return True
    return False


# --- stages and kernels --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """`reduce`: Row(k) = fold(op, expr over inner dims); `row`: Row(k) = expr (per outer index);
    `store`: arg[...] = expr; `scatter`: arg[offset + strides . coord + index*axis_stride] (+)= expr
    (serial)."""

    kind: str  # 'reduce' | 'row' | 'store' | 'scatter'
    expr: Any
    op: Op | None = None  # SUM / MAX / PROD for reduce; ADD for scatter-add, None for scatter
    arg: int | None = None
    strides: tuple[int, ...] = ()
    offset: int = 0
    index: Any = None  # scatter: integer expression
    axis_stride: int = 0
    axis_size: int = 0
    site: int = 0  # scatter: 1 + position of its node in the graph, reported when out of range

    def reindexed(self, fix: Callable[[tuple], tuple], padded: bool = True) -> Stage:
        """This stage over another loop space (see `reindex`); a store's or scatter's own
        strides are mapped too (reduce and row stages have none)."""
        index = reindex(self.index, fix, padded) if self.index is not None else None
        strides = fix(self.strides) if self.kind in ("store", "scatter") else self.strides
        return dataclasses.replace(self, expr=reindex(self.expr, fix, padded), index=index,
                                   strides=strides)

    def map_exprs(self, leaf: Callable[[Any], Any], **changes: Any) -> Stage:
        """This stage with map_expr(..., leaf) applied to its expression and index (and any
        other fields replaced by `changes`)."""
        index = map_expr(self.index, leaf) if self.index is not None else None
        return dataclasses.replace(self, expr=map_expr(self.expr, leaf), index=index, **changes)


@dataclass(frozen=True)
class Arg:
    """A kernel argument: the buffer of graph value `value` (a value id, not a plan buffer
    index: lowering maps one to the other) and how the kernel uses it."""

    value: int
    dtype: DType
    writes: bool


@dataclass
class Kernel:
    name: str
    args: list[Arg]
    outer: tuple[int, ...]
    inner: tuple[int, ...]
    stages: list[Stage]
    nodes: list[int] = field(default_factory=list)  # graph value ids computed here
    serial: bool = False
    lanes: int = 0  # > 0: outer indices in blocks of this many, lanes innermost
    grain: int = 0  # > 0: outer indices per chunk of the thread pool (the schedule sets it)

    @property
    def space(self) -> tuple[int, ...]:
        return self.outer + self.inner

    @property
    def n_outer(self) -> int:
        return math.prod(self.outer)

    def __str__(self) -> str:
        return format_kernel(self)


IDENTITY = {Op.SUM: 0, Op.PROD: 1, Op.MAX: -math.inf}


def format_expr(e: Any) -> str:
    if isinstance(e, Load):
        return f"a{e.arg}[{e.offset}+{_strides(e.strides)}]"
    if isinstance(e, Const):
        return repr(e.value)
    if isinstance(e, Iota):
        return f"iota({e.offset}+{_strides(e.strides)})"
    if isinstance(e, Apply):
        extra = "".join(f", {k}={getattr(v, 'short', v)}" for k, v in e.attrs)
        return f"{e.op.value}({', '.join(format_expr(a) for a in e.args)}{extra})"
    if isinstance(e, Rand):
        return f"rand(a{e.state}, +{e.offset}, {_strides(e.lin)})"
    if isinstance(e, Gather):
        return (f"a{e.arg}[{e.offset}+{_strides(e.strides)} + {format_expr(e.index)}"
                f"*{e.axis_stride}]")
    if isinstance(e, Padded):
        return f"pad(a{e.arg}[{e.offset}+{_strides(e.strides)}], lo={e.lows}, value={e.value})"
    if isinstance(e, Row):
        return f"r{e.stage}"
    return repr(e)


def _strides(s: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, s)) + ")"


def format_kernel(k: Kernel) -> str:
    """A few readable lines: signature, space, one line per stage."""
    args = ", ".join(f"{'out' if a.writes else 'in'} a{i}: {a.dtype.short} buf{a.value}"
                     for i, a in enumerate(k.args))
    lines = [f"kernel {k.name}({args})  space outer={list(k.outer)} inner={list(k.inner)}"
             + ("  serial" if k.serial else "") + (f"  lanes={k.lanes}" if k.lanes else "")]
    for i, s in enumerate(k.stages):
        if s.kind == "reduce":
            lines.append(f"  r{i} = {s.op.value}(over inner) {format_expr(s.expr)}")
        elif s.kind == "row":
            lines.append(f"  r{i} = {format_expr(s.expr)}")
        elif s.kind == "store":
            lines.append(f"  a{s.arg}[{s.offset}+{_strides(s.strides)}] = {format_expr(s.expr)}")
        else:
            verb = "+=" if s.op is Op.ADD else "="
            lines.append(f"  a{s.arg}[{s.offset}+{_strides(s.strides)} + "
                         f"{format_expr(s.index)}*{s.axis_stride}] {verb} {format_expr(s.expr)}")
    return "\n".join(lines)


# --- the other step of a fused program ----------------------------------------------------------


@dataclass
class Gemm:
    """out[b] = alpha * a[b] @ b[b] (+ c[b] when `c` is set) on views of realized buffers
    (batched when `batch` > 1); `c` is a contiguous buffer of out's size."""

    name: str
    a: int
    b: int
    out: int
    a_view: View  # [batch, m, k]
    b_view: View  # [batch, k, n]
    nodes: list[int] = field(default_factory=list)
    c: int | None = None
    alpha: float = 1.0

    def reads(self) -> set[int]:
        return {self.a, self.b} | ({self.c} if self.c is not None else set())

    def __str__(self) -> str:
        scale = "" if self.alpha == 1 else f"{self.alpha:g} * "
        acc = "" if self.c is None else f" + buf{self.c}"
        return (f"gemm {self.name}: buf{self.out} = {scale}buf{self.a}{list(self.a_view.shape)} @ "
                f"buf{self.b}{list(self.b_view.shape)}{acc}")


def kernel_reads(k: Kernel) -> set[int]:
    """The buffers a kernel reads (loads, gathers, RNG states, scatter-add targets)."""
    out = set()
    for s in k.stages:
        for e in list(walk(s.expr)) + (list(walk(s.index)) if s.index is not None else []):
            if isinstance(e, (Load, Gather, Padded)):
                out.add(k.args[e.arg].value)
            elif isinstance(e, Rand):
                out.add(k.args[e.state].value)
        if s.kind == "scatter" and s.op is not None:
            out.add(k.args[s.arg].value)
    return out


def checked(k: Kernel) -> bool:
    """Whether the kernel checks its data: gather and scatter indices, integer divisors. Such a
    kernel takes one more argument after `args`, the plan's error flag (an int64[2]), and sets
    flag[0] to the failing check's code (see compiler/lower.py and codegen/llvm_cpu.py)."""
    for s in k.stages:
        if s.kind == "scatter":
            return True
        for e in list(walk(s.expr)) + (list(walk(s.index)) if s.index is not None else []):
            if isinstance(e, Gather):
                return True
            if isinstance(e, Apply) and e.op in (Op.FLOORDIV, Op.REMAINDER) and \
                    not e.args[0].dtype.is_floating:
                return True
    return False
