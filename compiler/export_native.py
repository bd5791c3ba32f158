"""Ahead-of-time native code for an exported program: the plan and its kernels as a shared
object, linked by the system's C compiler driver (`cc`, or $CC).

The kernels are the ones `backend_cpu` JIT-compiles (same fusion, schedule, lowering and code
generator), emitted for the host CPU as position-independent object code and linked with
`cc -shared`. Loading needs no LLVM: the runtime opens the object (hybrid/export_format.py)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from compiler.ir.graph import Graph
from compiler.plan import Plan

# LLVM feature name -> the flag Linux's /proc/cpuinfo lists for it (x86's "flags" line,
# AArch64's "Features" line): the instruction-set extensions an artifact's code may use,
# checked on load (hybrid/export_format.py; runtime_cpp/src/artifact.cc has the same table).
CPUINFO_FLAGS = {
    "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "popcnt": "popcnt",
    "avx": "avx", "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2",
    "lzcnt": "abm", "movbe": "movbe", "avx512f": "avx512f", "avx512bw": "avx512bw",
    "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512cd": "avx512cd",
    "avx512vnni": "avx512_vnni", "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    # AArch64
    "neon": "asimd", "fullfp16": "asimdhp", "fp16fml": "asimdfhm", "dotprod": "asimddp",
    "rdm": "asimdrdm", "lse": "atomics", "crc": "crc32", "aes": "aes", "sha2": "sha2",
    "sve": "sve", "sve2": "sve2", "bf16": "bf16", "i8mm": "i8mm",
}


class LinkerMissing(RuntimeError):
    """No C compiler driver to link the shared object with."""


@dataclass
class NativeProgram:
    plan: Plan
    shared_object: bytes
    triple: str
    cpu: str
    features: list[str]  # the checked extensions the code was compiled with ("avx2", ...)
    machine: str


def build(graph: Graph) -> NativeProgram:
    """Fuse, schedule, lower and compile `graph` (its outputs distinct computed values, as
    compiler/outputs.py leaves them) to a plan and a linked shared object for this CPU."""
    import llvmlite.binding as llvm

    from compiler.backend_cpu import _with_touches
    from compiler.codegen import jit
    from compiler.codegen.llvm_cpu import generate
    from compiler.lower import lower
    from compiler.passes.fuse import fuse

    program = fuse(graph)
    low = lower(program, {})
    plan = _with_touches(low.plan, low.kernels)
    tm = jit.target_machine()
    text = generate(low.kernels, graph.name, donated=low.donated)
    obj = tm.emit_object(jit.optimize(jit.parse(text), tm))
    enabled = {f[1:] for f in jit.host_features().split(",") if f.startswith("+")}
    return NativeProgram(plan, link_shared(obj), llvm.get_process_triple(),
                         llvm.get_host_cpu_name(), sorted(enabled & CPUINFO_FLAGS.keys()),
                         platform.machine())


def link_shared(obj: bytes) -> bytes:
    """`obj` linked into a shared object by the system's `cc` ($CC), with libm."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise LinkerMissing("hybrid.export links the kernels into a shared object with the system "
                            "C compiler driver, and none was found (cc, gcc or clang on PATH, or "
                            "$CC): install one (apt install gcc) and export again; loading an "
                            "exported program needs no compiler")
    with tempfile.TemporaryDirectory(prefix="hybrid-export-") as d:
        src, out = os.path.join(d, "kernels.o"), os.path.join(d, "kernels.so")
        with open(src, "wb") as f:
            f.write(obj)
        done = subprocess.run([cc, "-shared", "-o", out, src, "-lm"], capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise LinkerMissing(f"linking the exported kernels with {cc} failed: "
                                f"{done.stderr.strip()[:2000]}")
        with open(out, "rb") as f:
            return f.read()
