"""The Plan: an arena of intermediate buffers plus a list of steps the native runtime executes.

A tiny instruction set of three step kinds — `KernelStep` (a compiled function over an outer
range, split over the thread pool), `GemmStep` (a row-major, optionally batched BLAS call) and
`CopyStep` (memcpy) — over a table of `Buffer`s: the call's inputs and outputs, views into
one arena, and constants. Plans serialize to versioned JSON (`to_json` / `from_json`; the
constant arrays travel separately) and are validated on load, so a malformed plan raises
`PlanError` here, never crashes the runtime. `to_bytes` is what `hybrid_runtime.Executor`
parses (runtime_cpp/src/plan_format.cc, the C++ reader of the same format; kPlanVersion there
must equal PLAN_VERSION here).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.ir.types import DType

PLAN_VERSION = 2  # 2: buffers have a memory space

BUFFER_KINDS = ("input", "output", "arena", "constant")
MEMORY_SPACES = ("host",)  # a GPU runtime adds "device"
GEMM_DTYPES = (DType.float32, DType.float64)
_BLAS_INT_MAX = 2**31 - 1  # BLAS (LP64) takes 32-bit ints
# NOTE: sizes, offsets and element counts must fit the runtime's int64 arithmetic with room
# to add two of them: a plan asking for more is impossible, not a crash.
SIZE_MAX = 2**62


class PlanError(ValueError):
    """A plan is malformed: bad ids, out-of-bounds views, unknown dtypes, wrong version."""


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


@dataclass(frozen=True)
class Buffer:
    """A typed view: an input/output/constant (by `index`) or bytes [offset, offset+nbytes) of
    the arena. An 'input' buffer listed in `Plan.outputs` is returned as that very input array
    (in-place updates). `space`: the memory it lives in; the CPU runtime has "host" only."""

    kind: str
    index: int
    offset: int
    nbytes: int
    dtype: DType
    shape: tuple
    space: str = "host"

    def __str__(self) -> str:
        where = f"{self.kind}[{self.index}]" if self.kind != "arena" else "arena"
        text = f"{where} {self.dtype.short}[{','.join(map(str, self.shape))}] {self.nbytes} B"
        if self.kind == "arena":
            text += f" @ [{self.offset}, {self.offset + self.nbytes})"
        return text


@dataclass(frozen=True)
class KernelStep:
    """Call `void symbol(int64_t start, int64_t end, void** args)` over [0, n), chunked over the
    thread pool (chunks of at least `grain` iterations; serially when `parallel` is False).
    `touches` (when known): for each argument, one past the last byte the kernel may reach
    (compiler/kernel_extent.py); validation checks each argument's buffer is that large."""

    symbol: str
    n: int
    args: tuple[int, ...]
    grain: int = 0
    parallel: bool = True
    touches: tuple[int, ...] = ()

    def __str__(self) -> str:
        args = ", ".join(f"b{a}" for a in self.args)
        mode = f"grain={self.grain}" if self.parallel else "serial"
        return f"kernel {self.symbol}({args}) n={self.n} {mode}"


@dataclass(frozen=True)
class GemmStep:
    """Row-major C[m,n] = alpha * op(A) @ op(B) + beta * C, `batch` times (offsets, leading dims
    and strides in elements; op transposes when the flag is set)."""

    dtype: DType
    trans_a: bool
    trans_b: bool
    m: int
    n: int
    k: int
    a: int
    b: int
    c: int
    a_offset: int
    b_offset: int
    c_offset: int
    lda: int
    ldb: int
    ldc: int
    batch: int = 1
    stride_a: int = 0
    stride_b: int = 0
    stride_c: int = 0
    alpha: float = 1.0
    beta: float = 0.0

    def __str__(self) -> str:
        ta = ".T" if self.trans_a else ""
        tb = ".T" if self.trans_b else ""
        text = (
            f"gemm {self.dtype.short} b{self.c}+{self.c_offset} = {self.alpha:g} * "
            f"b{self.a}+{self.a_offset}{ta} @ b{self.b}+{self.b_offset}{tb} + {self.beta:g} * C"
            f"  m={self.m} n={self.n} k={self.k} ld=({self.lda},{self.ldb},{self.ldc})"
        )
        if self.batch != 1:
            text += (
                f" batch={self.batch} strides=({self.stride_a},{self.stride_b},{self.stride_c})"
            )
        return text


@dataclass(frozen=True)
class CopyStep:
    """memcpy `nbytes` from byte `src_offset` of buffer `src` to byte `dst_offset` of `dst`."""

    src: int
    dst: int
    src_offset: int
    dst_offset: int
    nbytes: int

    def __str__(self) -> str:
        return (
            f"copy b{self.src}[{self.src_offset}:{self.src_offset + self.nbytes}] -> "
            f"b{self.dst}[{self.dst_offset}:{self.dst_offset + self.nbytes}]"
        )


Step = KernelStep | GemmStep | CopyStep
_STEP_OPS: dict[str, type] = {"kernel": KernelStep, "gemm": GemmStep, "copy": CopyStep}
_OP_OF_STEP = {cls: op for op, cls in _STEP_OPS.items()}
_DTYPES = {d.short: d for d in DType}


@dataclass
class Plan:
    """Arena size, buffer table, steps, and which buffers are the call's inputs and outputs."""

    arena_bytes: int
    buffers: list[Buffer]
    steps: list[Step]
    inputs: list[int]
    outputs: list[int]
    constants: list[np.ndarray] = field(default_factory=list)
    # the last input when >= 0: an int64[2] error flag that checking kernels set (bad index,
    # integer division by zero); the caller passes it zeroed and raises when it is not
    error_flag: int = -1

    # ---- validation -------------------------------------------------------------------

    def validate(self) -> Plan:
        """Check ids, bounds, dtypes and the signature (PlanError names the culprit)."""
        if not (_is_int(self.arena_bytes) and 0 <= self.arena_bytes <= SIZE_MAX):
            raise PlanError(f"arena_bytes must be an int >= 0 and <= 2**62, "
                            f"got {self.arena_bytes!r}")
        for i, buf in enumerate(self.buffers):
            self._validate_buffer(i, buf)
        self._validate_signature()
        self._validate_flag()
        for i, step in enumerate(self.steps):
            if type(step) not in _OP_OF_STEP:
                raise PlanError(f"step {i}: unknown step {step!r}")
            try:
                {KernelStep: self._validate_kernel, GemmStep: self._validate_gemm,
                 CopyStep: self._validate_copy}[type(step)](step)
            except PlanError as err:
                raise PlanError(f"step {i} ({_OP_OF_STEP[type(step)]}): {err}") from None
        return self

    def _validate_buffer(self, i: int, buf: Buffer) -> None:
        where = f"buffer b{i}"
        if not isinstance(buf, Buffer):
            raise PlanError(f"{where}: not a Buffer: {buf!r}")
        if buf.kind not in BUFFER_KINDS:
            raise PlanError(f"{where}: kind must be one of {BUFFER_KINDS}, got {buf.kind!r}")
        if buf.space not in MEMORY_SPACES:
            raise PlanError(f"{where}: memory space {buf.space!r} is not one this runtime has "
                            f"({', '.join(MEMORY_SPACES)})")
        if not isinstance(buf.dtype, DType):
            raise PlanError(f"{where}: unknown dtype {buf.dtype!r}")
        if not (isinstance(buf.shape, tuple)
                and all(_is_int(d) and 0 <= d <= SIZE_MAX for d in buf.shape)):
            raise PlanError(f"{where}: shape must be a tuple of ints >= 0 and <= 2**62, "
                            f"got {buf.shape!r}")
        for name in ("index", "offset", "nbytes"):
            value = getattr(buf, name)
            if not (_is_int(value) and 0 <= value <= SIZE_MAX):
                raise PlanError(f"{where}: {name} must be an int >= 0 and <= 2**62, got {value!r}")
        numel = math.prod(int(d) for d in buf.shape)  # NOTE: Python ints: np.prod wraps around
        if buf.nbytes != numel * buf.dtype.itemsize:
            raise PlanError(
                f"{where}: nbytes {buf.nbytes} != {buf.dtype.short}"
                f"[{','.join(map(str, buf.shape))}] = {numel * buf.dtype.itemsize} bytes"
            )
        if buf.kind == "arena":
            if buf.offset + buf.nbytes > self.arena_bytes:
                raise PlanError(f"{where}: [{buf.offset}, {buf.offset + buf.nbytes}) overflows the "
                                f"arena of {self.arena_bytes} bytes")
            if buf.offset % buf.dtype.itemsize != 0:
                raise PlanError(f"{where}: offset {buf.offset} is not aligned to "
                                f"{buf.dtype.itemsize} bytes ({buf.dtype.short})")
        elif buf.offset != 0:
            raise PlanError(f"{where}: offset must be 0 for a(n) {buf.kind} buffer, "
                            f"got {buf.offset}")
        if buf.kind == "constant":
            if buf.index >= len(self.constants):
                raise PlanError(f"{where}: constant index {buf.index} out of range "
                                f"({len(self.constants)} constants)")
            array = self.constants[buf.index]
            same = (isinstance(array, np.ndarray) and array.dtype == buf.dtype.np
                    and tuple(array.shape) == tuple(buf.shape))
            if not same:
                raise PlanError(f"{where}: constant {buf.index} must be a {buf.dtype.short}"
                                f"{list(buf.shape)} numpy array, got {_describe_array(array)}")

    def _validate_signature(self) -> None:
        self._check_ids("inputs", self.inputs)
        self._check_ids("outputs", self.outputs)
        if len(set(self.inputs)) != len(self.inputs):
            raise PlanError(f"inputs list a buffer twice: {self.inputs}")
        for pos, b in enumerate(self.inputs):
            buf = self.buffers[b]
            if not (buf.kind == "input" and buf.index == pos):
                raise PlanError(f"inputs[{pos}] = b{b} must be an input buffer with index {pos}, "
                                f"got {buf.kind}[{buf.index}]")
        for pos, b in enumerate(self.outputs):
            buf = self.buffers[b]
            if buf.kind not in ("input", "output"):
                raise PlanError(f"outputs[{pos}] = b{b} must be an output or input buffer, "
                                f"got {buf.kind}")
            if buf.kind == "output":
                first = self.outputs.index(b)
                if buf.index != first:
                    raise PlanError(f"outputs[{pos}] = b{b}: an output buffer's index must be its "
                                    f"first position in outputs ({first}), got {buf.index}")
        for i, buf in enumerate(self.buffers):
            if buf.kind == "input" and i not in self.inputs:
                    raise PlanError(f"input buffer b{i} is not listed in inputs")
            if buf.kind == "output" and i not in self.outputs:
                    raise PlanError(f"output buffer b{i} is not listed in outputs")

    def _validate_flag(self) -> None:
        f = self.error_flag
        if not (_is_int(f) and f >= -1):
            raise PlanError(f"error_flag must be a buffer id or -1, got {f!r}")
        if f == -1:
            return
        buf = self.buffers[f] if f < len(self.buffers) else None
        if not (self.inputs and self.inputs[-1] == f and buf is not None
                and buf.dtype is DType.int64 and tuple(buf.shape) == (2,)):
            raise PlanError(f"error_flag b{f} must be the last input, an i64[2] buffer")

    def _check_ids(self, what: str, ids: Sequence[int]) -> None:
        for pos, b in enumerate(ids):
            if not (_is_int(b) and 0 <= b < len(self.buffers)):
                raise PlanError(f"{what}[{pos}]: buffer id {b!r} out of range "
                                f"({len(self.buffers)} buffers)")

    def _validate_kernel(self, step: KernelStep) -> None:
        if not (isinstance(step.symbol, str) and step.symbol != ""):
            raise PlanError(f"symbol must be a non-empty string, got {step.symbol!r}")
        if not (_is_int(step.n) and 0 <= step.n <= SIZE_MAX):
            raise PlanError(f"n must be an int >= 0 and <= 2**62, got {step.n!r}")
        if not (_is_int(step.grain) and step.grain >= 0):
            raise PlanError(f"grain must be an int >= 0, got {step.grain!r}")
        if not isinstance(step.parallel, bool):
            raise PlanError(f"parallel must be a bool, got {step.parallel!r}")
        self._check_ids("args", step.args)
        if step.touches == ():
            return
        if not (isinstance(step.touches, tuple) and len(step.touches) == len(step.args)
                and all(_is_int(t) and 0 <= t <= SIZE_MAX for t in step.touches)):
            raise PlanError(f"touches must be one int >= 0 per argument, got {step.touches!r}")
        for j, (b, need) in enumerate(zip(step.args, step.touches)):
            if need > self.buffers[b].nbytes:
                raise PlanError(f"argument {j} (b{b}, {self.buffers[b].nbytes} bytes) is reached "
                                f"up to byte {need} by the kernel")

    def _validate_gemm(self, s: GemmStep) -> None:
        if s.dtype not in GEMM_DTYPES:
            raise PlanError(f"dtype must be f32 or f64, got {getattr(s.dtype, 'short', s.dtype)!r}")
        self._check_ids("operands", (s.a, s.b, s.c))
        self._check_writable(s.c, "C")
        for name in ("m", "n", "k", "lda", "ldb", "ldc"):
            value = getattr(s, name)
            if not (_is_int(value) and 0 <= value <= _BLAS_INT_MAX):
                raise PlanError(f"{name} must be an int in [0, 2**31), got {value!r}")
        for name in ("a_offset", "b_offset", "c_offset", "stride_a", "stride_b", "stride_c"):
            value = getattr(s, name)
            if not (_is_int(value) and 0 <= value <= SIZE_MAX):
                raise PlanError(f"{name} must be an int >= 0 and <= 2**62, got {value!r}")
        if not (_is_int(s.batch) and 1 <= s.batch <= SIZE_MAX):
            raise PlanError(f"batch must be >= 1 and <= 2**62, got {s.batch!r}")
        if s.m * s.n * max(s.k, 1) * s.batch > SIZE_MAX:
            raise PlanError(f"m*n*k*batch = {s.m}*{s.n}*{s.k}*{s.batch} overflows int64")
        if s.batch > 1 and s.m * s.n > 0 and s.stride_c < (s.m - 1) * s.ldc + s.n:
            raise PlanError(f"stride_c={s.stride_c}: the {s.batch} outputs C [{s.m},{s.n}] "
                            f"(ldc {s.ldc}) of the batch overlap")
        for name in ("alpha", "beta"):
            value = getattr(s, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)):
                raise PlanError(f"{name} must be a number, got {value!r}")
        # (operand, rows, cols, ld, offset, stride) as stored, row-major
        a_rc = (s.k, s.m) if s.trans_a else (s.m, s.k)
        b_rc = (s.n, s.k) if s.trans_b else (s.k, s.n)
        operands = [("A", s.a, a_rc, s.lda, s.a_offset, s.stride_a),
                    ("B", s.b, b_rc, s.ldb, s.b_offset, s.stride_b),
                    ("C", s.c, (s.m, s.n), s.ldc, s.c_offset, s.stride_c)]
        for name, b, (rows, cols), ld, offset, stride in operands:
            buf = self.buffers[b]
            if buf.dtype != s.dtype:
                raise PlanError(f"{name} (b{b}) is {buf.dtype.short}, the gemm is {s.dtype.short}")
            if ld < max(1, cols):
                raise PlanError(f"ld{name.lower()}={ld} must be >= max(1, {cols}) (the row length "
                                f"of the stored {name} [{rows},{cols}])")
            if s.m == 0 or s.n == 0 or (name != "C" and s.k == 0):
                continue  # BLAS touches nothing of this operand
            last = offset + (s.batch - 1) * stride + (rows - 1) * ld + cols  # one past the end
            numel = buf.nbytes // buf.dtype.itemsize
            if last > numel:
                raise PlanError(
                    f"{name} (b{b}, {numel} elements) is read up to element {last} "
                    f"(offset {offset}, [{rows},{cols}] ld {ld}, batch {s.batch} stride {stride})"
                )

    def check_kernel_ranges(self) -> Plan:
        """PlanError unless every kernel's range is no longer than its largest argument (each
        outer index writes an element of an output or reads one of an input): the check a plan
        from a file gets before its kernels run (lowering never makes longer ranges)."""
        for i, s in enumerate(self.steps):
            if isinstance(s, KernelStep) and s.n > 0:
                longest = max((math.prod(self.buffers[b].shape) for b in s.args), default=0)
                if s.n > longest:
                    raise PlanError(f"step {i} (kernel {s.symbol}): range n={s.n} is longer than "
                                    f"its largest argument ({longest} elements)")
        return self

    def _check_writable(self, b: int, what: str) -> None:
        """A copy's destination and a GEMM's C are written: an output, the arena, or an input
        the plan returns (donated); never a constant or another input."""
        buf = self.buffers[b]
        if buf.kind == "constant" or (buf.kind == "input" and b not in self.outputs):
            kind = "a constant" if buf.kind == "constant" else "an input the plan does not return"
            raise PlanError(f"{what} b{b} is {kind}: only outputs, arena buffers and donated "
                            f"inputs are written")

    def _validate_copy(self, s: CopyStep) -> None:
        self._check_ids("buffers", (s.src, s.dst))
        self._check_writable(s.dst, "destination")
        for name in ("src_offset", "dst_offset", "nbytes"):
            value = getattr(s, name)
            if not (_is_int(value) and 0 <= value <= SIZE_MAX):
                raise PlanError(f"{name} must be an int >= 0 and <= 2**62, got {value!r}")
        for name, b, offset in (("source", s.src, s.src_offset), ("destination", s.dst,
                                                                   s.dst_offset)):
            size = self.buffers[b].nbytes
            if offset + s.nbytes > size:
                raise PlanError(f"{name} b{b} [{offset}, {offset + s.nbytes}) overflows its "
                                f"{size} bytes")

    # ---- serialization ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form (constants as dtype/shape only)."""
        return {
            "version": PLAN_VERSION,
            "arena_bytes": self.arena_bytes,
            "buffers": [_buffer_to_dict(b) for b in self.buffers],
            "steps": [_step_to_dict(s) for s in self.steps],
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "error_flag": self.error_flag,
            "constants": [{"dtype": DType.from_np(c.dtype).short, "shape": list(c.shape)}
                          for c in self.constants],
        }

    def to_json(self) -> str:
        """Versioned JSON of everything but the constants' data (stored separately, by index)."""
        return json.dumps(self.to_dict())

    @staticmethod
    def from_json(s: str, constants: Sequence[np.ndarray] = ()) -> Plan:
        """Load and validate a plan written by `to_json`; PlanError on any malformation."""
        try:
            data = json.loads(s)
        except (json.JSONDecodeError, TypeError) as err:
            raise PlanError(f"plan is not valid JSON: {err}") from None
        return Plan.from_dict(data, constants)

    @staticmethod
    def from_dict(data: Any, constants: Sequence[np.ndarray] = ()) -> Plan:
        """Inverse of `to_dict`; checks the version, the constants' signature and validates."""
        if not isinstance(data, dict):
            raise PlanError(f"plan must be a JSON object, got {type(data)}")
        version = data.get("version")
        if version != PLAN_VERSION:
            raise PlanError(f"plan version {version!r} is not supported: this runtime reads plan "
                            f"version {PLAN_VERSION}; re-compile the function")
        try:
            buffers = [_buffer_from_dict(b) for b in data["buffers"]]
            steps = [_step_from_dict(s) for s in data["steps"]]
            plan = Plan(arena_bytes=data["arena_bytes"], buffers=buffers, steps=steps,
                        inputs=list(data["inputs"]), outputs=list(data["outputs"]),
                        constants=list(constants), error_flag=data.get("error_flag", -1))
            declared = list(data.get("constants", []))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, PlanError):
                raise
            raise PlanError(f"malformed plan: {type(err).__name__}: {err}") from None
        if len(declared) != len(plan.constants):
            raise PlanError(f"plan declares {len(declared)} constants, {len(plan.constants)} given")
        for i, (decl, array) in enumerate(zip(declared, plan.constants, strict=True)):
            ok = (isinstance(array, np.ndarray) and isinstance(decl, dict)
                  and decl.get("dtype") in _DTYPES and array.dtype == _DTYPES[decl["dtype"]].np
                  and list(array.shape) == list(decl.get("shape", ())))
            if not ok:
                raise PlanError(f"constant {i}: plan declares {decl}, got {_describe_array(array)}")
        return plan.validate()

    # ---- native executor --------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Validate, then the plan's bytes as the runtime reads them: `to_json`, UTF-8.

        `hybrid_runtime.Executor(plan.to_bytes(), symbols, plan.constants, blas, keepalive)`
        parses and validates them again in C++ (runtime_cpp/src/plan_format.cc), resolving each
        kernel step's symbol in `symbols`; an exported artifact holds the same bytes.
        """
        self.validate()
        return self.to_json().encode()

    # ---- printing ---------------------------------------------------------------------

    def describe(self) -> str:
        """A readable listing: signature, buffers (with arena ranges) and steps in order."""
        ins = ", ".join(f"b{b}" for b in self.inputs)
        outs = ", ".join(f"b{b}" for b in self.outputs)
        lines = [
            (f"plan v{PLAN_VERSION}: arena {self.arena_bytes} B, {len(self.buffers)} buffers, "
             f"{len(self.steps)} steps, {len(self.constants)} constants"),
            f"  ({ins}) -> ({outs})",
            "buffers:",
        ]
        lines += [f"  b{i}: {b}" for i, b in enumerate(self.buffers)]
        lines.append("steps:")
        lines += [f"  {i}: {s}" for i, s in enumerate(self.steps)]
        return "\n".join(lines)


def _describe_array(x: object) -> str:
    if isinstance(x, np.ndarray):
        return f"{x.dtype}{list(x.shape)}"
    return type(x).__name__


def _buffer_to_dict(b: Buffer) -> dict[str, Any]:
    return {"kind": b.kind, "index": b.index, "offset": b.offset, "nbytes": b.nbytes,
            "dtype": b.dtype.short, "shape": list(b.shape), "space": b.space}


def _buffer_from_dict(d: dict[str, Any]) -> Buffer:
    dtype = d["dtype"]
    if dtype not in _DTYPES:
        raise PlanError(f"unknown dtype {dtype!r}; known: {sorted(_DTYPES)}")
    extra = set(d) - {f.name for f in dataclasses.fields(Buffer)}
    if extra:
        raise PlanError(f"buffer has unknown fields {sorted(extra)}")
    return Buffer(kind=d["kind"], index=d["index"], offset=d["offset"], nbytes=d["nbytes"],
                  dtype=_DTYPES[dtype], shape=tuple(d["shape"]), space=d["space"])


def _step_to_dict(step: Step) -> dict[str, Any]:
    d: dict[str, Any] = {"op": _OP_OF_STEP[type(step)]}
    for f in dataclasses.fields(step):
        value = getattr(step, f.name)
        if isinstance(value, DType):
            value = value.short
        elif isinstance(value, tuple):
            value = list(value)
        d[f.name] = value
    return d


def _step_from_dict(d: dict[str, Any]) -> Step:
    op = d.get("op")
    if op not in _STEP_OPS:
        raise PlanError(f"unknown step op {op!r}; known: {sorted(_STEP_OPS)}")
    cls = _STEP_OPS[op]
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(d) - names - {"op"}
    if extra:
        raise PlanError(f"{op} step has unknown fields {sorted(extra)}")
    kwargs = {k: v for k, v in d.items() if k != "op"}
    for name in ("args", "touches"):
        if name in kwargs:
            kwargs[name] = tuple(kwargs[name])
    if "dtype" in kwargs:
        dtype = kwargs["dtype"]
        if dtype not in _DTYPES:
            raise PlanError(f"unknown dtype {dtype!r}; known: {sorted(_DTYPES)}")
        kwargs["dtype"] = _DTYPES[dtype]
    return cls(**kwargs)
