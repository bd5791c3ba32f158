"""GEMMs split over hybrid's thread pool (a BLAS that runs on its calling thread: OpenBLAS from
scipy-openblas32, oneMKL when installed): blocks of rows and whole batch items give numpy's
result for every transpose, offset, padding, alpha and beta; the BLAS choice and its thread
settings stay private to hybrid."""

from __future__ import annotations

import ctypes
import os

import hybrid_runtime
import numpy as np
import pytest

from compiler import blas as blas_mod
from compiler.ir.types import DType
from compiler.plan import Buffer, GemmStep, Plan

F32, F64 = DType.float32, DType.float64


def _provider(name: str):
    try:
        return blas_mod._PROVIDERS[name]()
    except (ImportError, OSError, RuntimeError) as e:
        if name == "mkl" and os.environ.get("TESTS_REQUIRE_MKL"):
            pytest.fail(f"HYBRID_TEST_REQUIRE_MKL=1 but MKL does not load: {e}")
        pytest.skip(f"{name} is not available here: {e}")


def flat(kind: str, index: int, n: int, dtype: DType) -> Buffer:
    return Buffer(kind, index, 0, n * dtype.itemsize, dtype, (n,))


# (batch, m, n, k): row blocks with a ragged last block; whole batch items; too small to split
SHAPES = [(1, 100, 70, 90), (3, 40, 50, 100), (5, 8, 9, 10)]


@pytest.mark.parametrize("provider", ["openblas", "mkl", "scipy"])
@pytest.mark.parametrize("num_threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans_a, trans_b", [(False, False), (True, False), (False, True),
                                              (True, True)])
def test_split_gemm_matches_numpy(provider, num_threads, shape, trans_a, trans_b, threads, rng):
    blas = _provider(provider)
    threads(num_threads)
    dtype = F32 if (shape[1] + num_threads) % 2 else F64
    batch, m, n, k = shape
    a_rows, a_cols = (k, m) if trans_a else (m, k)
    b_rows, b_cols = (n, k) if trans_b else (k, n)
    lda, ldb, ldc = a_cols + 3, b_cols + 1, n + 2
    off_a, off_b, off_c = 2, 5, 1
    stride_a, stride_b, stride_c = a_rows * lda + 1, b_rows * ldb + 2, m * ldc + 3
    sizes = [off_a + batch * stride_a, off_b + batch * stride_b, off_c + batch * stride_c]
    A, B, C = (rng.standard_normal(s).astype(dtype.np) for s in sizes)

    def view(x, off, stride, rows, cols, ld, i):
        start = off + i * stride
        return x[start:start + rows * ld].reshape(rows, ld)[:, :cols]

    want = C.copy()
    for i in range(batch):
        a = view(A, off_a, stride_a, a_rows, a_cols, lda, i)
        b = view(B, off_b, stride_b, b_rows, b_cols, ldb, i)
        c = view(want, off_c, stride_c, m, n, ldc, i)
        c[...] = -0.5 * (a.T if trans_a else a) @ (b.T if trans_b else b) + c
    plan = Plan(0, [flat("input", j, s, dtype) for j, s in enumerate(sizes)],
                [GemmStep(dtype, trans_a, trans_b, m, n, k, 0, 1, 2, off_a, off_b, off_c, lda,
                          ldb, ldc, batch=batch, stride_a=stride_a, stride_b=stride_b,
                          stride_c=stride_c, alpha=-0.5, beta=1.0)],
                [0, 1, 2], [2])
    ex = hybrid_runtime.Executor(plan.to_bytes(), {}, [], blas=blas)
    (out,) = ex.run([A, B, C])
    assert out is C
    tol = 1e-4 if dtype is F32 else 1e-11
    np.testing.assert_allclose(C, want, rtol=tol, atol=tol)


def test_blas_choice_follows_hybrid_blas(monkeypatch):
    blas_mod.blas_library.cache_clear()
    try:
        monkeypatch.setenv("HYBRID_BLAS", "scipy")
        assert not blas_mod.blas_library().serial
        blas_mod.blas_library.cache_clear()
        monkeypatch.setenv("HYBRID_BLAS", "openblas")
        chosen = blas_mod.blas_library()
        assert chosen.serial and "OpenBLAS" in chosen.name
        blas_mod.blas_library.cache_clear()
        monkeypatch.setenv("HYBRID_BLAS", "atlas")
        with pytest.raises(ValueError, match="HYBRID_BLAS must be"):
            blas_mod.blas_library()
    finally:
        blas_mod.blas_library.cache_clear()


def test_private_openblas_leaves_other_copies_threaded():
    """hybrid's copy runs one thread per call; SciPy's and NumPy's keep their own setting."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    _provider("openblas")
    info = [i for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]
    ours = [i for i in info if "scipy_openblas32" in i["filepath"]]
    others = [i for i in info if "scipy_openblas32" not in i["filepath"]]
    assert ours and all(i["num_threads"] == 1 for i in ours), info
    limited = any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
    if (os.cpu_count() or 1) > 1 and not limited:
        assert others and all(i["num_threads"] > 1 for i in others), info


def test_mkl_blocks_restore_the_callers_thread_setting(threads, rng):
    blas = _provider("mkl")
    threads(2)
    set_local = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(blas.threads_local)
    set_local(3)  # this thread's own MKL setting, which a GEMM block must not leave changed
    n = 96
    plan = Plan(0, [flat("input", 0, n * n, F32), flat("input", 1, n * n, F32),
                    flat("output", 0, n * n, F32)],
                [GemmStep(F32, False, False, n, n, n, 0, 1, 2, 0, 0, 0, n, n, n)], [0, 1], [2])
    a, b = (rng.standard_normal(n * n).astype(np.float32) for _ in range(2))
    (c,) = hybrid_runtime.Executor(plan.to_bytes(), {}, [], blas=blas).run([a, b])
    np.testing.assert_allclose(c.reshape(n, n), a.reshape(n, n) @ b.reshape(n, n), rtol=1e-4,
                               atol=1e-4)
    assert set_local(0) == 3


def test_no_loadable_blas_is_a_clear_error(monkeypatch):
    def missing():
        raise ImportError("not here")

    monkeypatch.setattr(blas_mod, "_PROVIDERS", {"openblas": missing, "scipy": missing})
    blas_mod.blas_library.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="no BLAS for matmul.*openblas: not here"):
            blas_mod.blas_library()
    finally:
        blas_mod.blas_library.cache_clear()


def test_mkl_is_not_used_when_the_process_asks_it_for_ilp64(monkeypatch):
    _provider("mkl")
    monkeypatch.setenv("MKL_INTERFACE_LAYER", "ILP64")
    with pytest.raises(RuntimeError, match="MKL_INTERFACE_LAYER asks for ILP64"):
        blas_mod._PROVIDERS["mkl"]()


@pytest.mark.parametrize("provider, path, error, message", [
    ("atlas", "libm.so.6", ValueError, r"unknown BLAS provider 'atlas'; known: openblas, mkl"),
    ("scipy", "/nonexistent/libblas.so", RuntimeError, r"from /nonexistent/libblas.so: cannot be "
                                                       r"opened"),
    ("scipy", "libm.so.6", RuntimeError, r"BLAS 'scipy' from libm.so.6: exports no sgemm_/dgemm_"),
    ("openblas", "libm.so.6", RuntimeError, r"no scipy_openblas_set_num_threads"),
    ("mkl", "libm.so.6", RuntimeError, r"no MKL_Set_Num_Threads_Local"),
    ("scipy", "", RuntimeError, r"no library path given"),
])
def test_the_runtime_names_what_a_blas_library_lacks(provider, path, error, message):
    """The runtime opens the BLAS itself: a wrong provider, a missing file or a library without
    the entry points is a clear error naming the provider and the path, never a crash."""
    if path == "libm.so.6" and not os.path.exists("/lib/x86_64-linux-gnu/libm.so.6") and \
            not os.path.exists("/usr/lib64/libm.so.6"):
        pytest.skip("no glibc libm.so.6 here")
    with pytest.raises(error, match=message):
        hybrid_runtime.load_blas(provider, path)
