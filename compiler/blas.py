"""Which BLAS library the runtime's GEMM steps call, and where it is on disk.

The runtime opens the library and resolves its Fortran-ABI `sgemm` / `dgemm` itself
(runtime_cpp/src/blas.cc, `hybrid_runtime.load_blas(provider, path)`); this module only picks
the provider and finds the file. The runtime maps row-major GEMMs onto the column-major
calls (runtime_cpp/src/gemm.cc).

Where they come from (`HYBRID_BLAS`, default `auto`: the first that loads):
  * `mkl`: Intel's oneMKL, when the `mkl` wheel is installed (`pip install hybrid[mkl]`): the
    same splitting, each block with MKL set to one thread for the calling thread only
    (MKL_Set_Num_Threads_Local), so other MKL users in the process keep their threads. On the
    MLP's GEMMs, 35-40% faster than OpenBLAS here (x86-64).
  * `openblas`: a private copy of OpenBLAS from the scipy-openblas32 wheel, set to one thread.
    The runtime splits each GEMM over its own thread pool, one single-threaded BLAS call per
    block: no second set of threads spinning beside hybrid's, and measured 5-30% faster than
    OpenBLAS's own threading on the MLP's GEMMs. Opened RTLD_LOCAL, so its thread setting never
    reaches SciPy's or NumPy's copies.
  * `scipy`: the OpenBLAS bundled with SciPy's wheel, with that library's own threading.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import site
import sys
from collections.abc import Callable

import hybrid_runtime


def _library_in(folder: str, prefix: str) -> str:
    names = sorted(f for f in os.listdir(folder) if f.startswith(prefix)
                   and (f.endswith((".so", ".dylib", ".dll")) or ".so." in f))
    if not names:
        raise OSError(f"no {prefix}* library in {folder}")
    return os.path.join(folder, names[0])


def _openblas_path() -> str:
    """OpenBLAS of the scipy-openblas32 wheel."""
    # NOTE: not `import scipy_openblas32`: its get_openblas_config() loads the library
    # RTLD_GLOBAL, where its symbols could take the place of SciPy's copy's.
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or spec.origin is None:
        raise ImportError("scipy-openblas32 is not installed")
    return _library_in(os.path.join(os.path.dirname(spec.origin), "lib"), "libscipy_openblas")


def _mkl_path() -> str:
    """oneMKL's runtime library from the `mkl` wheel (installed into <prefix>/lib)."""
    # NOTE: looked up by path, not through importlib.metadata, whose import alone costs 30 ms
    # of every first call that loads a compiled function from the disk cache.
    folders = [os.path.join(p, "lib") for p in dict.fromkeys((sys.prefix, site.USER_BASE or ""))
               if p]
    paths = sorted(os.path.join(f, n) for f in folders if os.path.isdir(f)
                   for n in os.listdir(f) if n.startswith("libmkl_rt.so"))
    if not paths:
        raise ImportError("the mkl wheel is not installed (pip install hybrid[mkl])")
    return paths[0]


def _scipy_path() -> str:
    """The OpenBLAS SciPy's wheel bundles (scipy.libs beside the package)."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or spec.origin is None:
        raise ImportError("scipy is not installed")
    folder = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), "scipy.libs")
    if not os.path.isdir(folder):
        raise OSError(f"SciPy here bundles no BLAS in {folder}")
    return _library_in(folder, "libscipy_openblas")


def _provider(name: str, path: Callable[[], str]) -> Callable[[], hybrid_runtime.BlasLibrary]:
    return lambda: hybrid_runtime.load_blas(name, path())


_PROVIDERS = {"mkl": _provider("mkl", _mkl_path),
              "openblas": _provider("openblas", _openblas_path),
              "scipy": _provider("scipy", _scipy_path)}


@functools.cache
def blas_library() -> hybrid_runtime.BlasLibrary:
    """The BLAS chosen by HYBRID_BLAS (see the module docstring), opened by the runtime; the
    library stays loaded for the life of the process."""
    choice = os.environ.get("HYBRID_BLAS", "auto").strip().lower() or "auto"
    if choice != "auto" and choice not in _PROVIDERS:
        raise ValueError(f"HYBRID_BLAS must be auto, {', '.join(_PROVIDERS)}; got {choice!r}")
    failures = []
    for name in (_PROVIDERS if choice == "auto" else [choice]):
        try:
            return _PROVIDERS[name]()
        except (ImportError, OSError, RuntimeError) as e:
            failures.append(f"{name}: {e}")
    raise RuntimeError("no BLAS for matmul could be loaded (" + "; ".join(failures) + "); "
                       "reinstall hybrid (pip install hybrid) to get scipy-openblas32 and scipy")
