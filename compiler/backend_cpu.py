"""The native CPU backend: graph -> fusion -> plan -> LLVM kernels -> hybrid_runtime.Executor.

Compiled artifacts go to the on-disk cache (compiler/codegen/cache.py), keyed by the graph
(printed without source lines), the host CPU and its features, and the versions of the compiler,
llvmlite/LLVM and the plan format: a second process with the same graph loads the plan and the
object code instead of compiling."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import time
from typing import Any

import llvmlite
import llvmlite.binding as llvm
import numpy as np

from compiler.codegen import jit
from compiler.codegen.cache import DiskCache, key_of
from compiler.ir.graph import Graph
from compiler.ir.ops import Literal
from compiler.ir.printer import format_graph
from compiler.plan import PLAN_VERSION, GemmStep, KernelStep, Plan, PlanError

# NOTE: fusion, lowering and code generation are imported where a graph is compiled, not here:
# a process that finds its plans in the disk cache never needs them (10 ms of imports).

COMPILER_VERSION = "0.1.0"


def unsupported(graph: Graph) -> list[str]:
    """What in `graph` this backend cannot compile ("erf on int32", "dtype int8"), checked before
    fusion: empty when it can. Elementwise ops are looked up in the lowering registry
    (codegen/llvm_scalar.py); the other kinds are lowered by the kernel builder for every
    native dtype."""
    from compiler.codegen.llvm_scalar import supports
    from compiler.ir.control import bodies
    from compiler.ir.ops import ELEMENTWISE, Op
    from compiler.ir.types import NATIVE

    odd: set[str] = set()
    for v in list(graph.inputs) + [n.out for n in graph.nodes]:
        if v.type.dtype not in NATIVE:
            odd.add(f"dtype {v.type.dtype.name}")
    for n in graph.nodes:
        if n.op in ELEMENTWISE and n.op not in (Op.WHERE, Op.CAST):
            dt = n.inputs[0].type.dtype
            if dt in NATIVE and not supports(n.op, dt):
                odd.add(f"{n.op.value} on {dt.name}")
        for body in bodies(n):  # a scan/while/cond body runs on the same backend
            odd.update(unsupported(body))
    return sorted(odd)


@functools.cache
def compiler_fingerprint() -> str:
    """A hash of the compiler's own source, so a changed code generator never reuses entries
    that an older one wrote (the version number alone would not change between commits)."""
    root = os.path.dirname(os.path.abspath(__file__))
    h = hashlib.sha256(COMPILER_VERSION.encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(".py"):
                with open(os.path.join(dirpath, name), "rb") as f:
                    h.update(name.encode())
                    h.update(f.read())
    return h.hexdigest()[:16]


@functools.cache
def target_id() -> str:
    """What compiled code depends on besides the graph: CPU, features, tool versions."""
    return "|".join([llvm.get_process_triple(), llvm.get_host_cpu_name(),
                     jit.host_features(), llvmlite.__version__,
                     ".".join(map(str, llvm.llvm_version_info)), compiler_fingerprint(),
                     str(PLAN_VERSION)])


def graph_key(graph: Graph) -> str:
    """A hash of the graph's meaning (source lines and names left out)."""
    bare = graph.replace(nodes=[dataclasses.replace(n, loc="") for n in graph.nodes])
    bare.input_names = [""] * len(graph.inputs)
    bare.output_names = [""] * len(graph.outputs)
    bare.name = "g"
    return key_of(format_graph(bare), _literal_digest(graph), target_id())


def _literal_digest(graph: Graph) -> str:
    """A hash of the graph's constant arrays, which the printed graph abbreviates ("<7 values>"):
    two graphs that differ only in a constant must not share a cache entry."""
    h = hashlib.sha256()
    for i, node in enumerate(graph.nodes):
        for name in sorted(node.attrs):
            value = node.attrs[name]
            if isinstance(value, Literal):
                a = value.array
                h.update(f"{i}:{name}:{a.dtype.str}:{a.shape}\0".encode())
                h.update(a.tobytes())
    return h.hexdigest()


def _load_object(obj: bytes) -> Any:
    tm = jit.target_machine()
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return engine


def _executor(plan: Plan, engine: Any, plan_bytes: bytes | None = None) -> Any:
    """The runtime's executor of `plan` (its bytes, when already at hand), kernels from
    `engine`, the process's BLAS when the plan has GEMMs."""
    import hybrid_runtime

    from compiler.blas import blas_library

    symbols = {s.symbol for s in plan.steps if isinstance(s, KernelStep)}
    addresses = {name: engine.get_function_address(name) for name in symbols}
    blas = blas_library() if any(isinstance(s, GemmStep) for s in plan.steps) else None
    return hybrid_runtime.Executor(plan_bytes or plan.to_bytes(), addresses, plan.constants,
                                   blas=blas, keepalive=engine)


def _check_signature(plan: Plan, graph: Graph) -> None:
    """PlanError unless the plan's inputs and outputs have the graph's dtypes and shapes."""
    inputs = plan.inputs if plan.error_flag < 0 else plan.inputs[:-1]  # the flag is extra
    for what, ids, values in (("input", inputs, graph.inputs),
                              ("output", plan.outputs, graph.outputs)):
        if len(ids) != len(values):
            raise PlanError(f"the plan has {len(ids)} {what}s, the graph {len(values)}")
        for pos, (b, v) in enumerate(zip(ids, values)):
            buf = plan.buffers[b]
            if buf.dtype != v.dtype or tuple(buf.shape) != tuple(v.shape):
                raise PlanError(f"{what} {pos}: the plan's {buf} is not the graph's {v}")


def _load_entry(graph: Graph, plan_json: str, constants: list, obj: bytes) -> tuple:
    """(plan, engine, executor) of a cache entry, the plan validated against the graph it must
    implement and against what its kernels may touch."""
    plan = Plan.from_json(plan_json, constants)
    _check_signature(plan, graph)
    plan.check_kernel_ranges()
    unchecked = [s.symbol for s in plan.steps if isinstance(s, KernelStep) and not s.touches]
    if unchecked:  # this compiler records them for every kernel it writes
        raise PlanError(f"kernels {unchecked} do not say what they touch")
    engine = _load_object(obj)
    return plan, engine, _executor(plan, engine, plan_json.encode())


def _with_touches(plan: Plan, kernels: list) -> Plan:
    """The plan with each kernel step's `touches` (what its kernel may reach), so that
    validation, here and when the plan is loaded from the cache, checks every buffer fits."""
    from compiler.kernel_extent import arg_extents

    found = iter(kernels)
    steps = []
    for step in plan.steps:
        if isinstance(step, KernelStep):
            kernel = next(found)
            try:
                step = dataclasses.replace(step, touches=arg_extents(kernel, len(step.args)))
            except ValueError:  # NOTE: strides not one per loop dim: left unchecked
                pass
        steps.append(step)
    return dataclasses.replace(plan, steps=steps)


def _compile_object(ir_text: str) -> bytes:
    """Object code of `ir_text` (codegen/compile_worker.py: here, or in a helper process once
    this process has compiled a few graphs, so llvmlite's per-module leak stays bounded)."""
    from compiler.codegen.compile_worker import COMPILER

    return COMPILER.compile(ir_text)


class CpuExecutable:
    """A graph compiled for this CPU: call it with the input arrays, get the output arrays."""

    backend = "native"  # the name of its backend (compiler/backends/cpu.py)

    def __init__(self, graph: Graph, cache: DiskCache | None = None, use_cache: bool = True,
                 donate: dict[int, int] | None = None):
        t0 = time.perf_counter()
        self.graph = graph
        self.program = None
        self._memory = None
        cache = cache or DiskCache()
        donate = dict(donate or {})
        self._donate = donate
        key = key_of(graph_key(graph), repr(sorted(donate.items())))
        hit = cache.get(key) if use_cache else None
        executor = None
        if hit is not None:
            try:
                plan, engine, executor = _load_entry(graph, *hit)
            except Exception:  # NOTE: authentic, yet not what this compiler writes: rebuild it
                cache.discard(key)
        self.from_cache = executor is not None
        # (stage, seconds) of the native compile, in order (hybrid.compile: `fn.graphs`)
        self.timings: list[tuple[str, float]] = []
        if executor is None:
            from compiler.codegen.llvm_cpu import generate
            from compiler.lower import lower
            from compiler.passes.fuse import fuse

            self.program = fuse(graph)
            t = [time.perf_counter()]
            low = lower(self.program, donate)
            plan, self._memory = _with_touches(low.plan, low.kernels), low.memory
            t.append(time.perf_counter())
            ir_text = generate(low.kernels, module_name=graph.name, donated=low.donated)
            t.append(time.perf_counter())
            obj = _compile_object(ir_text)
            engine = _load_object(obj)
            if use_cache:
                cache.put(key, plan.to_json(), plan.constants, obj)
            executor = _executor(plan, engine)
            t.append(time.perf_counter())
            self.timings = self.program.timings + [
                ("lower and plan memory", t[1] - t[0]), ("LLVM IR", t[2] - t[1]),
                ("LLVM optimize and load", t[3] - t[2])]
        else:
            self.timings = [("from the disk cache", time.perf_counter() - t0)]
        self.plan = plan
        self._engine = engine
        self.executor = executor
        self._run = self.executor.run
        self.compile_seconds = time.perf_counter() - t0

    def __call__(self, arrays: list) -> list:
        if self.plan.error_flag >= 0:
            return self._checked_call(arrays)
        try:
            return self._run(arrays)
        except ValueError:
            return self._run(self._fixed(arrays))

    def _checked_call(self, arrays: list) -> list:
        """A run of a plan whose kernels check indices and divisors: they set the error flag
        (an extra last input, zeroed per call) and the error is raised after the run."""
        flag = np.zeros(2, np.int64)
        try:
            outs = self._run([*arrays, flag])
        except ValueError:
            outs = self._run([*self._fixed(arrays), flag])
        if flag[0]:
            self._raise_flagged(arrays, int(flag[0]))
        return outs

    def _raise_flagged(self, arrays: list, code: int) -> None:
        """The clear error of a run that set the error flag: the reference interpreter reruns
        the graph (the error path only) to name the op, the bad value and the user's line."""
        from compiler.errors import DIV_BY_ZERO_CODE, run_error
        from compiler.ir.interpret import interpret

        # NOTE: in-place outputs (parameter updates) are written while the kernels run, so they
        # are already applied when the flag is read: the error says so (eager raises first)
        note = "" if not self.executor.donated_inputs else (
            "; this call had already applied its in-place updates (parameters, optimizer "
            "state) when the error was found, eager mode raises before them")
        try:
            interpret(self.graph, arrays)
        except Exception as e:
            if hasattr(e, "run_kind"):
                raise run_error(e.run_kind, e.run_message + note, e.run_loc) from None
        # not reproduced (the run updated an input it reads in place): what the kernel saw
        if code == DIV_BY_ZERO_CODE:
            raise run_error("zero_division", f"{self.graph.name}: integer division or remainder "
                            f"by zero (PyTorch raises ZeroDivisionError too){note}")
        nodes = self.graph.nodes
        node = nodes[code - 1] if 0 < code <= len(nodes) else None
        if node is None:
            raise run_error("index", f"{self.graph.name}: an index is out of bounds{note}")
        axis = node.attrs.get("axis", 0)
        n = node.inputs[0].shape[axis]
        raise run_error("index", f"{node.op.value}: an index is out of bounds for dim {axis} "
                        f"with size {n} (valid: 0 <= index < {n}){note}", node.loc)

    def _fixed(self, arrays: list) -> list:
        """The arrays made C-contiguous, and copies of those that share memory with an array
        the plan updates in place (they must keep the values they had before the call)."""
        # NOTE: not np.ascontiguousarray, which turns 0-d arrays into 1-d ones
        fixed = [np.require(a, requirements="C") for a in arrays]
        written = self.executor.donated_inputs
        for j, a in enumerate(fixed):
            if any(i != j and np.may_share_memory(a, fixed[i]) for i in written):
                fixed[j] = a.copy()
        return fixed

    def profile(self, arrays: list, repeats: int = 10) -> str:
        """Every plan step with its median time over `repeats` runs on `arrays`, slowest
        marked. The runs write in-place outputs (parameter updates) as real calls do."""
        flag = [np.zeros(2, np.int64)] if self.plan.error_flag >= 0 else []
        seconds = self.executor.profile(self._fixed(arrays) + flag, repeats)
        total = sum(seconds) or 1.0
        lines = [f"{'step':>4}  {'us':>9}  {'share':>6}  {'GFLOP/s':>7}  what"]
        gemm_s = gemm_flops = 0.0
        for i, (step, s) in enumerate(zip(self.plan.steps, seconds)):
            flops = _gemm_flops(step)
            rate = f"{flops / s / 1e9:>7.1f}" if flops and s > 0 else " " * 7
            if flops:
                gemm_s, gemm_flops = gemm_s + s, gemm_flops + flops
            lines.append(f"{i:>4}  {s * 1e6:>9.1f}  {s / total:>6.1%}  {rate}  {step}")
        lines.append(f"{'all':>4}  {total * 1e6:>9.1f}  {1:>6.1%}")
        if gemm_flops:
            lines.append(f"gemm steps: {gemm_s * 1e3:.3f} ms of {total * 1e3:.3f} ms, "
                         f"{gemm_flops / 1e9:.4g} GFLOP at {gemm_flops / gemm_s / 1e9:.1f} GFLOP/s")
        return "\n".join(lines)

    @property
    def memory(self) -> Any:
        """The memory plan: arena size, peak, and what separate allocations would take."""
        if self._memory is None:
            from compiler.lower import lower
            from compiler.passes.fuse import fuse

            # NOTE: after a disk-cache hit the entry holds the plan, not the fused program or
            # the memory plan's report: both are rebuilt here, once, with the same donation
            self.program = self.program or fuse(self.graph)
            self._memory = lower(self.program, self._donate).memory
        return self._memory

    @property
    def kernel_count(self) -> int:
        return sum(1 for s in self.plan.steps if hasattr(s, "symbol"))

    def describe(self) -> str:
        """The fused program (graph annotated with kernels), the plan and the memory plan."""
        from compiler.passes.fuse import fuse

        self.program = self.program or fuse(self.graph)
        return "\n\n".join([str(self.program), self.plan.describe(), self.memory.describe()])


def _gemm_flops(step: Any) -> int:
    """2 m n k per product (times the batch) for a GEMM step, 0 for any other step."""
    if not all(hasattr(step, f) for f in ("m", "n", "k", "batch")):
        return 0
    return 2 * step.m * step.n * step.k * step.batch
