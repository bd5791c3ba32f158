"""hybrid_runtime.Executor: real llvmlite kernels, BLAS GEMMs and copies, checked against numpy."""

import json
import threading
from dataclasses import dataclass, field

import hybrid_runtime
import llvmlite.binding as llvm
import numpy as np
import pytest

from compiler.blas import blas_library
from compiler.ir.types import DType
from compiler.plan import PLAN_VERSION, Buffer, CopyStep, GemmStep, KernelStep, Plan, PlanError

F32, F64 = DType.float32, DType.float64
LL_TYPE = {F32: "float", F64: "double"}


# ---- kernels, written as LLVM IR by hand ------------------------------------------------


def elementwise_ir(name: str, dtype: DType, num_args: int, body: str) -> str:
    """`void name(i64 start, i64 end, ptr args)`: for i in [start, end): args[-1][i] = body.

    `body` is IR computing `%r` from the loaded values `%x0`, `%x1`, ... (one per argument but
    the last, which is the output)."""
    ty = LL_TYPE[dtype]
    lines = [f"define void @{name}(i64 %start, i64 %end, ptr %args) {{", "entry:"]
    for j in range(num_args):
        lines += [f"  %pp{j} = getelementptr ptr, ptr %args, i64 {j}",
                  f"  %p{j} = load ptr, ptr %pp{j}"]
    lines += ["  %empty = icmp sge i64 %start, %end",
              "  br i1 %empty, label %exit, label %loop",
              "loop:",
              "  %i = phi i64 [ %start, %entry ], [ %next, %loop ]"]
    for j in range(num_args - 1):
        lines += [f"  %a{j} = getelementptr {ty}, ptr %p{j}, i64 %i",
                  f"  %x{j} = load {ty}, ptr %a{j}"]
    out = num_args - 1
    lines += [body,
              f"  %a{out} = getelementptr {ty}, ptr %p{out}, i64 %i",
              f"  store {ty} %r, ptr %a{out}",
              "  %next = add i64 %i, 1",
              "  %done = icmp eq i64 %next, %end",
              "  br i1 %done, label %exit, label %loop",
              "exit:",
              "  ret void",
              "}"]
    return "\n".join(lines)


KERNELS = [
    elementwise_ir("add_f32", F32, 3, "  %r = fadd float %x0, %x1"),
    elementwise_ir("mul_f32", F32, 3, "  %r = fmul float %x0, %x1"),
    elementwise_ir("double_f32", F32, 2, "  %r = fmul float %x0, 2.0"),
    elementwise_ir("add_f64", F64, 3, "  %r = fadd double %x0, %x1"),
    # p = p - 0.5 * g, args (p, g, p): updates p in place
    elementwise_ir("sgd_f32", F32, 3, "  %h = fmul float %x1, 0.5\n  %r = fsub float %x0, %h"),
]


@dataclass
class Jit:
    engine: object
    addresses: dict


@pytest.fixture(scope="module")
def jit() -> Jit:
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly("\n\n".join(KERNELS))
    module.verify()
    tm = llvm.Target.from_default_triple().create_target_machine(opt=2)
    engine = llvm.create_mcjit_compiler(module, tm)
    engine.finalize_object()
    names = [k.split("@", 1)[1].split("(", 1)[0] for k in KERNELS]
    return Jit(engine, {n: engine.get_function_address(n) for n in names})


def executor(plan: Plan, jit: Jit) -> hybrid_runtime.Executor:
    return hybrid_runtime.Executor(plan.to_bytes(), jit.addresses, plan.constants,
                                   blas=blas_library(), keepalive=jit.engine)


def buf(kind, index, shape, dtype=F32, offset=0):
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return Buffer(kind, index, offset, nbytes, dtype, tuple(shape))


# ---- kernel steps -------------------------------------------------------------------------


def chain_plan(n: int, grain: int = 0) -> Plan:
    """y = 2 * (a + b) * a, through two arena intermediates."""
    nbytes = 4 * n
    return Plan(
        arena_bytes=2 * nbytes + 64,
        buffers=[buf("input", 0, (n,)), buf("input", 1, (n,)),
                 buf("arena", 0, (n,), offset=0), buf("arena", 0, (n,), offset=nbytes + 64),
                 buf("output", 0, (n,))],
        steps=[KernelStep("add_f32", n, (0, 1, 2), grain=grain),
               KernelStep("mul_f32", n, (2, 0, 3), grain=grain),
               KernelStep("double_f32", n, (3, 4), grain=grain)],
        inputs=[0, 1],
        outputs=[4],
    )


@pytest.mark.parametrize("num_threads", [1, 2])
@pytest.mark.parametrize("n, grain", [(16, 0), (100_003, 1000), (7, 1)])
def test_kernel_chain_matches_numpy(jit, threads, rng, num_threads, n, grain):
    threads(num_threads)
    ex = executor(chain_plan(n, grain), jit)
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    for _ in range(3):  # the arena and pointer tables are reused across calls
        (y,) = ex.run([a, b])
        np.testing.assert_allclose(y, 2 * (a + b) * a, rtol=1e-6)
        assert y.dtype == np.float32 and y.shape == (n,) and y.flags.c_contiguous
    assert (ex.num_inputs, ex.num_outputs, ex.num_steps) == (2, 1, 3)
    assert "3 steps" in repr(ex)


def test_profile_times_every_step_and_runs_the_plan(jit, threads, rng):
    threads(2)
    n = 100_003
    ex = executor(chain_plan(n, 1000), jit)
    a = rng.standard_normal(n).astype(np.float32)
    seconds = ex.profile([a, a], repeats=3)
    assert len(seconds) == 3 and all(np.isfinite(s) and s > 0 for s in seconds)  # no speed limit
    with pytest.raises(ValueError, match="repeats"):
        ex.profile([a, a], repeats=0)
    with pytest.raises(ValueError, match="expected 2 inputs"):
        ex.profile([a], repeats=1)
    # an in-place plan is updated once per repeat, as by run()
    plan = Plan(0, [buf("input", 0, (n,)), buf("input", 1, (n,))],
                [KernelStep("sgd_f32", n, (0, 1, 0), grain=1024)], [0, 1], [0])
    p = np.ones(n, np.float32)
    executor(plan, jit).profile([p, np.full(n, 0.5, np.float32)], repeats=4)
    np.testing.assert_array_equal(p, 0.0)


def test_serial_kernel_step_and_f64(jit, threads, rng):
    threads(2)
    plan = Plan(0, [buf("input", 0, (50,), F64), buf("input", 1, (50,), F64),
                    buf("output", 0, (50,), F64)],
                [KernelStep("add_f64", 50, (0, 1, 2), parallel=False)], [0, 1], [2])
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    (y,) = executor(plan, jit).run([a, b])
    np.testing.assert_array_equal(y, a + b)


def test_empty_kernel_range(jit):
    plan = Plan(0, [buf("input", 0, (0,)), buf("output", 0, (0,))],
                [KernelStep("double_f32", 0, (0, 1))], [0], [1])
    (y,) = executor(plan, jit).run([np.zeros(0, np.float32)])
    assert y.shape == (0,)


# ---- GEMM steps ---------------------------------------------------------------------------


def stored(x: np.ndarray, trans: bool) -> np.ndarray:
    """How an operand op(X) = x is stored: x itself, or its transpose when trans is set."""
    return np.ascontiguousarray(x.T if trans else x)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_numpy(jit, rng, dtype, trans_a, trans_b):
    m, n, k = 5, 7, 3
    a = rng.standard_normal((m, k)).astype(dtype.np)
    b = rng.standard_normal((k, n)).astype(dtype.np)
    sa, sb = stored(a, trans_a), stored(b, trans_b)
    plan = Plan(
        0,
        [buf("input", 0, sa.shape, dtype), buf("input", 1, sb.shape, dtype),
         buf("output", 0, (m, n), dtype)],
        [GemmStep(dtype, trans_a, trans_b, m, n, k, 0, 1, 2, 0, 0, 0,
                  lda=sa.shape[1], ldb=sb.shape[1], ldc=n, alpha=1.5)],
        [0, 1], [2])
    (c,) = executor(plan, jit).run([sa, sb])
    tol = 1e-5 if dtype is F32 else 1e-12
    np.testing.assert_allclose(c, 1.5 * a @ b, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
def test_batched_gemm_with_offsets_strides_padding_and_beta(jit, rng, dtype, trans_a, trans_b):
    """C[i] = 0.5 * op(A[i]) @ op(B[i]) + 2 * C[i] in place, on padded, offset matrices."""
    batch, m, n, k = 3, 4, 6, 5
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    lda, ldb, ldc = a_cols + 2, b_cols + 1, n + 3  # padded rows
    off_a, off_b, off_c = 3, 1, 5
    stride_a, stride_b, stride_c = a_rows * lda + 4, b_rows * ldb, m * ldc + 2
    size_a = off_a + batch * stride_a
    size_b = off_b + batch * stride_b
    size_c = off_c + batch * stride_c
    A = rng.standard_normal(size_a).astype(dtype.np)
    B = rng.standard_normal(size_b).astype(dtype.np)
    C = rng.standard_normal(size_c).astype(dtype.np)

    def view(x, off, stride, rows, cols, ld, i):
        start = off + i * stride
        return x[start:start + rows * ld].reshape(rows, ld)[:, :cols]

    expected = C.copy()
    for i in range(batch):
        a = view(A, off_a, stride_a, a_rows, a_cols, lda, i)
        b = view(B, off_b, stride_b, b_rows, b_cols, ldb, i)
        c = view(expected, off_c, stride_c, m, n, ldc, i)
        c[...] = 0.5 * (a.T if trans_a else a) @ (b.T if trans_b else b) + 2.0 * c
    plan = Plan(
        0,
        [buf("input", 0, (size_a,), dtype), buf("input", 1, (size_b,), dtype),
         buf("input", 2, (size_c,), dtype)],
        [GemmStep(dtype, trans_a, trans_b, m, n, k, 0, 1, 2, off_a, off_b, off_c, lda, ldb, ldc,
                  batch=batch, stride_a=stride_a, stride_b=stride_b, stride_c=stride_c,
                  alpha=0.5, beta=2.0)],
        [0, 1, 2], [2])
    (out,) = executor(plan, jit).run([A, B, C])
    assert out is C  # an output aliasing an input is that very array, updated in place
    tol = 1e-5 if dtype is F32 else 1e-12
    np.testing.assert_allclose(C, expected, rtol=tol, atol=tol)


def test_gemm_into_arena_then_kernel(jit, rng, threads):
    """A bigger product (BLAS threads) feeding a kernel through the arena: y = 2 * (x @ w)."""
    threads(2)
    m, n, k = 64, 80, 96
    w = rng.standard_normal((k, n)).astype(np.float32)
    plan = Plan(
        4 * m * n,
        [buf("input", 0, (m, k)), buf("constant", 0, (k, n)), buf("arena", 0, (m, n)),
         buf("output", 0, (m, n))],
        [GemmStep(F32, False, False, m, n, k, 0, 1, 2, 0, 0, 0, k, n, n),
         KernelStep("double_f32", m * n, (2, 3), grain=512)],
        [0], [3], [w])
    x = rng.standard_normal((m, k)).astype(np.float32)
    (y,) = executor(plan, jit).run([x])
    np.testing.assert_allclose(y, 2 * (x @ w), rtol=1e-4, atol=1e-4)


def test_gemm_with_k_zero_scales_c(jit):
    plan = Plan(0, [buf("input", 0, (1,)), buf("input", 1, (1,)), buf("input", 2, (2, 3))],
                [GemmStep(F32, False, False, 2, 3, 0, 0, 1, 2, 0, 0, 0, 1, 3, 3, beta=3.0)],
                [0, 1, 2], [2])
    c = np.ones((2, 3), np.float32)
    executor(plan, jit).run([np.zeros(1, np.float32), np.zeros(1, np.float32), c])
    np.testing.assert_array_equal(c, 3.0)


# ---- copies, aliasing, constants ----------------------------------------------------------


def test_copy_steps(jit, rng):
    """Copy the middle of x into the arena, then back out twice, one overlapping in place."""
    x = rng.standard_normal(10).astype(np.float32)
    plan = Plan(
        64,
        [buf("input", 0, (10,)), buf("arena", 0, (6,), offset=32), buf("output", 0, (6,)),
         buf("output", 1, (10,))],
        [CopyStep(0, 1, 8, 0, 24),      # arena = x[2:8]
         CopyStep(1, 2, 0, 0, 24),      # y = arena
         CopyStep(0, 3, 0, 0, 40),      # z = x
         CopyStep(3, 3, 0, 4, 36)],     # z[1:] = z[:-1] (overlapping: memmove)
        [0], [2, 3])
    y, z = executor(plan, jit).run([x])
    np.testing.assert_array_equal(y, x[2:8])
    np.testing.assert_array_equal(z, np.concatenate([x[:1], x[:9]]))


def test_in_place_update_returns_the_input(jit, threads):
    threads(2)
    n = 40_000
    plan = Plan(0, [buf("input", 0, (n,)), buf("input", 1, (n,))],
                [KernelStep("sgd_f32", n, (0, 1, 0), grain=1024)], [0, 1], [0])
    ex = executor(plan, jit)
    p = np.ones(n, np.float32)
    g = np.full(n, 0.5, np.float32)
    for _ in range(2):
        (out,) = ex.run([p, g])
        assert out is p
    np.testing.assert_array_equal(p, 0.5)


def test_in_place_input_sharing_memory_with_another_input_is_refused(jit):
    n = 1000
    plan = Plan(0, [buf("input", 0, (n,)), buf("input", 1, (n,))],
                [KernelStep("sgd_f32", n, (0, 1, 0))], [0, 1], [0])
    ex = executor(plan, jit)
    p = np.ones(2 * n, np.float32)
    with pytest.raises(ValueError, match="input 1 shares memory with input 0"):
        ex.run([p[:n], p[n // 2:n // 2 + n]])
    ex.run([p[:n], p[n:]])  # neighbours, not overlapping
    np.testing.assert_array_equal(p[:n], 0.5)


def test_repeated_output_is_the_same_array(jit):
    plan = Plan(0, [buf("input", 0, (4,)), buf("output", 0, (4,))],
                [KernelStep("double_f32", 4, (0, 1))], [0], [1, 1, 0])
    x = np.arange(4, dtype=np.float32)
    y1, y2, x_out = executor(plan, jit).run([x])
    assert y1 is y2 and x_out is x
    np.testing.assert_array_equal(y1, 2 * x)
    # fresh outputs per call
    y3, _, _ = executor(plan, jit).run([x])
    assert y3 is not y1


def test_constants_are_copied_at_construction(jit):
    c = np.arange(8, dtype=np.float32)
    plan = Plan(0, [buf("input", 0, (8,)), buf("constant", 0, (8,)), buf("output", 0, (8,))],
                [KernelStep("add_f32", 8, (0, 1, 2))], [0], [2], [c])
    ex = executor(plan, jit)
    c += 100  # the executor owns its own copy
    (y,) = ex.run([np.ones(8, np.float32)])
    np.testing.assert_array_equal(y, np.arange(8) + 1)


def test_concurrent_runs_of_one_executor(jit, rng):
    n = 50_000
    ex = executor(chain_plan(n, 4096), jit)
    inputs = [[rng.standard_normal(n).astype(np.float32) for _ in range(2)] for _ in range(4)]
    errors = []

    def work(a, b):
        for _ in range(20):
            (y,) = ex.run([a, b])
            if not np.allclose(y, 2 * (a + b) * a, rtol=1e-6):
                errors.append("mismatch")

    ts = [threading.Thread(target=work, args=pair) for pair in inputs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []


# ---- errors -------------------------------------------------------------------------------


@pytest.fixture
def add_executor(jit):
    plan = Plan(0, [buf("input", 0, (2, 3)), buf("input", 1, (2, 3)), buf("output", 0, (2, 3))],
                [KernelStep("add_f32", 6, (0, 1, 2))], [0, 1], [2])
    return executor(plan, jit)


@pytest.mark.parametrize(
    "second, message",
    [
        (np.zeros((2, 3)), (r"input 1: expected a float32\[2,3\] C-contiguous numpy array, "
                            r"got float64\[2,3\]")),
        (np.zeros((3, 2), np.float32), r"input 1: .* got float32\[3,2\]"),
        (np.zeros(6, np.float32), r"input 1: .* got float32\[6\]"),
        (np.zeros((3, 2), np.float32).T, r"input 1: .* got a non-C-contiguous float32\[2,3\]"),
        ([[0.0] * 3] * 2, r"input 1: expected a float32\[2,3\] .* got list"),
        (np.frombuffer(bytearray(25), np.float32, 6, offset=1).reshape(2, 3),
         r"input 1: .* got a misaligned float32\[2,3\]"),
    ],
)
def test_input_validation_names_the_input(add_executor, second, message):
    with pytest.raises(ValueError, match=message):
        add_executor.run([np.zeros((2, 3), np.float32), second])


def test_wrong_input_count(add_executor):
    with pytest.raises(ValueError, match="expected 2 inputs, got 1"):
        add_executor.run([np.zeros((2, 3), np.float32)])


def test_read_only_in_place_input_is_rejected(jit):
    plan = Plan(0, [buf("input", 0, (4,)), buf("input", 1, (4,))],
                [KernelStep("sgd_f32", 4, (0, 1, 0))], [0, 1], [0])
    p = np.zeros(4, np.float32)
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"input 0: .* got a read-only float32\[4\]"):
        executor(plan, jit).run([p, np.zeros(4, np.float32)])


def test_malformed_plans_fail_before_reaching_cpp(jit):
    bad_id = Plan(0, [buf("input", 0, (4,)), buf("output", 0, (4,))],
                  [KernelStep("double_f32", 4, (0, 5))], [0], [1])
    with pytest.raises(PlanError, match=r"args\[1\]: buffer id 5 out of range"):
        executor(bad_id, jit)
    overflow = Plan(16, [buf("input", 0, (4,)), buf("arena", 0, (4,), offset=8),
                         buf("output", 0, (4,))],
                    [KernelStep("double_f32", 4, (0, 1)), KernelStep("double_f32", 4, (1, 2))],
                    [0], [2])
    with pytest.raises(PlanError, match="overflows the arena of 16 bytes"):
        executor(overflow, jit)


@dataclass
class Desc:
    """What an Executor is built from, as plain data a test can spoil: the plan's JSON object
    (written to bytes by build()), the kernel symbols, the constants and the BLAS."""

    plan: dict
    symbols: dict
    constants: list = field(default_factory=list)
    blas: object = None

    def build(self, raw: bytes | None = None) -> hybrid_runtime.Executor:
        data = json.dumps(self.plan).encode() if raw is None else raw
        return hybrid_runtime.Executor(data, self.symbols, self.constants, blas=self.blas)


def good_desc(jit) -> Desc:
    plan = Plan(32, [buf("input", 0, (4,)), buf("arena", 0, (4,)), buf("output", 0, (4,)),
                     buf("output", 1, (2, 2))],
                [KernelStep("double_f32", 4, (0, 1)), CopyStep(1, 2, 0, 0, 16),
                 GemmStep(F32, False, False, 2, 2, 2, 0, 0, 3, 0, 0, 0, 2, 2, 2)],
                [0], [2, 3])
    return Desc(plan.validate().to_dict(), dict(jit.addresses), [], blas_library())


def _no_blas(d: Desc) -> None:
    d.blas = None


def _no_symbols(d: Desc) -> None:
    d.symbols = {}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.plan["steps"][0].update(args=[0, 9]), r"step 0: buffer id 9 out of range"),
        (lambda d: d.plan["buffers"][1].update(offset=32), r"b1: \[32, 48\) overflows the arena"),
        (lambda d: d.plan.update(arena_bytes=8), r"overflows the arena of 8 bytes"),
        (lambda d: d.plan["steps"][1].update(nbytes=20), r"step 1: copy range overflows"),
        (lambda d: d.plan["steps"][2].update(m=3), r"step 2: A \(b0\) is accessed up to element 6"),
        (lambda d: d.plan["steps"][2].update(ldc=1), r"step 2: C: leading dimension too small"),
        (_no_blas, r"step 2 is a GEMM and no BLAS library is loaded"),
        (_no_symbols, r"step 0: no address for kernel symbol 'double_f32'"),
        (lambda d: d.symbols.update(double_f32="x"), r"no address for kernel symbol"),
        (lambda d: d.plan["buffers"][0].update(dtype="f128"), r"unknown dtype 'f128'"),
        (lambda d: d.plan["buffers"][0].update(kind="weird"), r"unknown buffer kind 'weird'"),
        (lambda d: d.plan["steps"][0].pop("n"), r"step 0: missing 'n'"),
        (lambda d: d.plan["steps"][0].update(n="four"), r"step 0: 'n' must be an integer"),
        (lambda d: d.plan["steps"][0].update(n=4.0), r"step 0: 'n' must be an integer"),
        (lambda d: d.plan["steps"][0].update(parallel=1), r"'parallel' must be true or false"),
        (lambda d: d.plan["steps"][0].update(args=[0, "1"]), r"'args'\[1\] must be an integer"),
        (lambda d: d.plan["steps"][0].update(fn=1234), r"step 0: unknown field 'fn'"),
        (lambda d: d.plan.update(sgemm=1234), r"plan: unknown field 'sgemm'"),
        (lambda d: d.plan["steps"][1].update(op="jump"), r"step 1: unknown op 'jump'"),
        (lambda d: d.plan["steps"].append(7), r"step 3: must be an object, got number"),
        (lambda d: d.plan.update(inputs=[1]), r"inputs\[0\] = b1 must be an input buffer"),
        (lambda d: d.plan.update(outputs=[2]), r"output buffer b3 is not listed in outputs"),
        (lambda d: d.plan["buffers"][2].update(nbytes=12), r"b2: nbytes 12 does not match"),
        (lambda d: d.plan.update(version=PLAN_VERSION + 1),
         rf"version {PLAN_VERSION + 1} is not supported: this runtime reads plan version "
         rf"{PLAN_VERSION}"),
        (lambda d: d.plan["buffers"][1].update(space="device"),
         r"buffer b1: memory space 'device' is not one this runtime has \(host\)"),
        (lambda d: d.plan["buffers"][1].pop("space"), r"buffer b1: missing 'space'"),
        (lambda d: d.plan.pop("version"), r"plan: missing 'version'"),
        (lambda d: d.plan["steps"][0].update(touches=[16, 17]),
         r"kernel 'double_f32' may reach byte 17 of arg 1 \(b1, 16 bytes\)"),
        (lambda d: d.plan["steps"][0].update(touches=[16]), r"has 1 touches for 2 args"),
        (lambda d: d.plan.update(error_flag=2), r"error_flag b2 must be the last input"),
        (lambda d: d.plan.update(error_flag=7), r"error_flag: buffer id 7 out of range"),
        # writes only into outputs, the arena and donated inputs (read-only inputs segfaulted)
        (lambda d: d.plan["steps"][1].update(dst=0),
         r"step 1: destination b0 is an input the plan does not return"),
        (lambda d: d.plan["steps"][2].update(c=0), r"step 2: C b0 is an input the plan does not"),
        (lambda d: d.plan["steps"][2].update(alpha=float("inf")), r"not valid JSON.*invalid literal"),
    ],
)
def test_native_guard_rejects_malformed_plans(jit, mutate, message):
    """Plan bytes that bypass Plan.validate still give a ValueError from the runtime's own
    parser and checks, never a crash."""
    desc = good_desc(jit)
    desc.build()  # the unmodified plan is fine
    mutate(desc)
    with pytest.raises(ValueError, match=message):
        desc.build()


@pytest.mark.parametrize("raw, message", [
    (b"", r"plan: not valid JSON"), (b"{\"version\": 1", r"plan: not valid JSON"),
    (b"[1, 2]", r"plan: must be an object, got array"), (b"\xff\xfe", r"not valid JSON"),
    (b"{\"version\": 2, \"arena_bytes\": 1e400}", r"plan: not valid JSON: .*number overflow"),
    (b"{}\x00 garbage {{{", r"plan: not valid JSON: a NUL byte"),
    (b"{\"version\": %d, \"version\": %d}" % (PLAN_VERSION, PLAN_VERSION),
     r"plan: missing 'arena_bytes'"),
])
def test_native_guard_rejects_bytes_that_are_not_a_plan(jit, raw, message):
    with pytest.raises(ValueError, match=message):
        good_desc(jit).build(raw)


def test_runtime_checks_what_comes_with_a_plan(jit):
    """Declared constants are checked even when no buffer uses them; `blas` must be a
    BlasLibrary; a BLAS needs a library path."""
    desc = good_desc(jit)
    desc.plan["constants"] = [{"dtype": "f32", "shape": [-5]}]
    with pytest.raises(ValueError, match=r"constant 0: negative dimension"):
        hybrid_runtime.check_plan(json.dumps(desc.plan).encode(), desc.symbols)
    desc.plan["constants"] = [{"dtype": "f32", "shape": [2**40, 2**40]}]
    with pytest.raises(ValueError, match=r"constant 0: size overflows int64"):
        hybrid_runtime.check_plan(json.dumps(desc.plan).encode(), desc.symbols)
    desc = good_desc(jit)
    desc.blas = "openblas"
    with pytest.raises(TypeError, match=r"blas must be a hybrid_runtime.BlasLibrary"):
        desc.build()
    with pytest.raises(RuntimeError, match=r"no library path given"):
        hybrid_runtime.load_blas("scipy", "")


def test_plan_bytes_are_the_format_the_runtime_reads(jit):
    """The Python writer and the C++ reader agree on the version and every field: a plan
    round-trips through its bytes and runs."""
    assert hybrid_runtime.PLAN_VERSION == PLAN_VERSION
    plan = Plan(0, [buf("input", 0, (4,)), buf("output", 0, (4,))],
                [KernelStep("double_f32", 4, (0, 1), grain=2, parallel=False, touches=(16, 16))],
                [0], [1])
    hybrid_runtime.check_plan(plan.to_bytes(), jit.addresses)
    assert Plan.from_json(plan.to_bytes().decode()) == plan
    x = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(executor(plan, jit).run([x])[0], 2 * x)


def test_native_guard_checks_constants(jit):
    plan = Plan(0, [buf("constant", 0, (4,)), buf("output", 0, (4,))],
                [KernelStep("double_f32", 4, (0, 1))], [], [1], [np.ones(4, np.float32)])
    desc = Desc(plan.to_dict(), dict(jit.addresses), [np.ones(4)])
    with pytest.raises(ValueError, match=r"constant 0: expected float32\[4\], got float64\[4\]"):
        desc.build()
    desc.constants = [[1.0, 2.0, 3.0, 4.0]]
    with pytest.raises(ValueError, match=r"constant 0: not a numpy array"):
        desc.build()
    desc.constants = []
    with pytest.raises(ValueError, match=r"the plan declares 1 constants, 0 given"):
        desc.build()
    desc.constants = [np.ones(4, np.float32), np.ones(2, np.float32)]
    with pytest.raises(ValueError, match=r"the plan declares 1 constants, 2 given"):
        desc.build()
    desc.plan["constants"] = []  # the buffer names a constant the plan does not declare
    with pytest.raises(ValueError, match=r"constant index 0 out of range \(0 constants\)"):
        desc.build()
    desc.plan["constants"] = [{"dtype": "f32", "shape": [2, 2]}]
    desc.constants = [np.ones((2, 2), np.float32)]
    with pytest.raises(ValueError, match=r"b0: constant 0 is declared f32\[2,2\], the buffer is "
                                         r"f32\[4\]"):
        desc.build()


# ---- large outputs come from a pool that reuses freed blocks ------------------------------


def test_large_outputs_reuse_freed_blocks(jit):
    import gc

    n = 1 << 16  # 256 KiB of float32: pooled
    plan = Plan(0, [buf("input", 0, (n,)), buf("output", 0, (n,))],
                [KernelStep("double_f32", n, (0, 1), grain=4096)], [0], [1])
    ex = executor(plan, jit)
    x = np.arange(n, dtype=np.float32)
    (y,) = ex.run([x])
    first = y.ctypes.data
    assert y.flags.c_contiguous and y.flags.writeable and y.flags.aligned and first % 64 == 0
    np.testing.assert_array_equal(y, 2 * x)
    del y
    gc.collect()
    assert hybrid_runtime.idle_output_memory() >= 4 * n
    (y2,) = ex.run([x])
    assert y2.ctypes.data == first  # the freed block came back
    np.testing.assert_array_equal(y2, 2 * x)
    view = y2[::2]
    del y2, ex  # a view keeps the block alive, the executor is not needed for it
    gc.collect()
    np.testing.assert_array_equal(view, 2 * x[::2])
    del view
    gc.collect()
    assert hybrid_runtime.release_output_memory() >= 4 * n
    assert hybrid_runtime.idle_output_memory() == 0


def test_small_outputs_are_numpy_arrays_of_their_own(jit):
    plan = Plan(0, [buf("input", 0, (8,)), buf("output", 0, (8,))],
                [KernelStep("double_f32", 8, (0, 1))], [0], [1])
    (y,) = executor(plan, jit).run([np.ones(8, np.float32)])
    assert y.base is None and y.flags.owndata
