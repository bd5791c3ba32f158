"""Host target machine, the O3 pipeline and MCJIT compilation for LLVM IR generated with llvmlite.

Every generated kernel goes through here, so the target (host CPU name and features, never a
hard-coded AVX-512 assumption) and the optimization pipeline are set in one place.
"""

from __future__ import annotations

import functools

import llvmlite
import llvmlite.binding as llvm

_LLVMLITE_VERSION = tuple(int(p) for p in llvmlite.__version__.split(".")[:2])


@functools.cache
def _init_llvm() -> None:
    """Initialize the native target once (llvmlite < 0.45 needs it; newer versions do it alone)."""
    if _LLVMLITE_VERSION < (0, 45):
        llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def host_features() -> str:
    """The host CPU's features as LLVM detects them, plus the tuning hybrid compiles with.

    NOTE: LLVM tunes AVX-512 CPUs (Skylake-X through Sapphire Rapids) to prefer 256-bit vectors,
    which guards against the clock drop of occasional 512-bit code in mixed programs. Kernels
    here are long vector loops, where 512 bits measured 1.3-1.4x faster (GELU, softmax), so the
    preference is turned off when the host has AVX-512."""
    _init_llvm()
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features.split(","):
        features += ",-prefer-256-bit"
    return features


def target_machine(cpu: str | None = None, features: str | None = None) -> llvm.TargetMachine:
    """Create a target machine for the host CPU (its name and `host_features()`).

    `cpu`/`features` override the host's, e.g. ("x86-64", "") for the baseline SSE2 target.
    """
    _init_llvm()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=llvm.get_host_cpu_name() if cpu is None else cpu,
        features=host_features() if features is None else features,
        opt=3,
        reloc="pic",
        codemodel="jitdefault",
    )


def parse(ir_text: str) -> llvm.ModuleRef:
    """Parse and verify LLVM IR text; the module gets the host triple and data layout."""
    _init_llvm()
    mod = llvm.parse_assembly(ir_text)
    mod.verify()
    return mod


def optimize(module_ref: llvm.ModuleRef, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    """Run the O3 module pipeline, with loop and SLP vectorization, on `module_ref` in place."""
    module_ref.triple = tm.triple
    module_ref.data_layout = str(tm.target_data)
    # NOTE: llvmlite 0.45-0.50 leaks ~50-90 KiB of native memory here per call: its
    # LLVMPY_CreatePassBuilder allocates a PassInstrumentationCallbacks that nothing frees, and
    # each run registers instrumentation callbacks into it. One shared PassBuilder is no way
    # out: the callbacks of earlier runs point to instrumentation objects already destroyed.
    # So past a process's first compiles this runs in a helper process that is replaced now
    # and then (codegen/compile_worker.py); tests/runtime/test_compiled_memory.py checks it.
    if hasattr(llvm, "create_pass_builder"):  # llvmlite >= 0.45: the new pass manager
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        # NOTE: no separate unrolling pass: the vectorizer interleaves already, and unrolling
        # roughly doubled compile time of a training step for no measurable speed-up.
        pto.loop_unrolling = False
        pass_builder = llvm.create_pass_builder(tm, pto)
        pass_builder.getModulePassManager().run(module_ref, pass_builder)
    else:  # llvmlite 0.43/0.44: the legacy pass manager builder
        pmb = llvm.create_pass_manager_builder()
        pmb.opt_level = 3
        pmb.loop_vectorize = True
        pmb.slp_vectorize = True
        pm = llvm.create_module_pass_manager()
        tm.add_analysis_passes(pm)
        pmb.populate(pm)
        pm.run(module_ref)
    return module_ref


def compile_module(
    ir_text: str, cpu: str | None = None, features: str | None = None
) -> tuple[llvm.ExecutionEngine, dict[str, int]]:
    """Parse, optimize (O3) and JIT `ir_text`; return the engine and {defined function: address}.

    Keep the engine alive as long as the addresses are used: the code is freed with it.
    `cpu`/`features` are as in `target_machine` (host by default).
    """
    # NOTE: the MCJIT engine takes ownership of its target machine, so each engine gets a fresh
    # one; a caller's target machine must never be handed to create_mcjit_compiler twice.
    tm = target_machine(cpu, features)
    mod = optimize(parse(ir_text), tm)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    addresses = {
        fn.name: engine.get_function_address(fn.name)
        for fn in mod.functions
        if not fn.is_declaration
    }
    return engine, addresses
