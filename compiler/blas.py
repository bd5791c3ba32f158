"""Addresses of a real BLAS `sgemm` / `dgemm` for the runtime's GEMM steps.

These are Fortran-ABI (column-major, every argument by pointer, 32-bit ints):
`sgemm(char* transa, char* transb, int* m, int* n, int* k, float* alpha, float* a, int* lda,
float* b, int* ldb, float* beta, float* c, int* ldc)`. The runtime maps row-major GEMMs onto
them (runtime_cpp/src/gemm.cc).

Where they come from (`HYBRID_BLAS`, default `auto`: the first that loads):
  * `mkl`: Intel's oneMKL, when the `mkl` wheel is installed (`pip install hybrid[mkl]`): the
    same splitting, each block with MKL set to one thread for the calling thread only
    (MKL_Set_Num_Threads_Local), so other MKL users in the process keep their threads. On the
    MLP's GEMMs, 35-40% faster than OpenBLAS here (x86-64).
  * `openblas`: a private copy of OpenBLAS from the scipy-openblas32 wheel, set to one thread.
    The runtime splits each GEMM over its own thread pool, one single-threaded BLAS call per
    block: no second set of threads spinning beside hybrid's, and measured 5-30% faster than
    OpenBLAS's own threading on the MLP's GEMMs. Loaded RTLD_LOCAL, so its thread setting never
    reaches SciPy's or NumPy's copies.
  * `scipy`: SciPy's own BLAS (its Cython capsules), with that library's own threading.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import importlib.util
import os
import site
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BlasAddresses:
    """Function addresses of the Fortran-ABI sgemm and dgemm; `serial`: the library runs on its
    calling thread only (the runtime then splits GEMMs over its pool)."""

    sgemm: int
    dgemm: int
    serial: bool = False
    name: str = ""
    threads_local: int = 0  # int f(int): the calling thread's BLAS threads (0: none)


_KEEP: list = []  # libraries whose functions the runtime calls stay loaded


def _private_openblas() -> BlasAddresses:
    """OpenBLAS from the scipy-openblas32 wheel, loaded privately and set to one thread."""
    # NOTE: not `import scipy_openblas32`: its get_openblas_config() loads the library
    # RTLD_GLOBAL, where its symbols could take the place of SciPy's copy's.
    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or spec.origin is None:
        raise ImportError("scipy-openblas32 is not installed")
    folder = os.path.join(os.path.dirname(spec.origin), "lib")
    names = sorted(f for f in os.listdir(folder) if f.startswith("libscipy_openblas")
                   and f.endswith((".so", ".dylib", ".dll")))
    if not names:
        raise OSError(f"no libscipy_openblas in {folder}")
    lib = ctypes.CDLL(os.path.join(folder, names[0]), mode=os.RTLD_LOCAL)
    lib.scipy_openblas_set_num_threads.argtypes = [ctypes.c_int]
    lib.scipy_openblas_set_num_threads(1)
    lib.scipy_openblas_get_config.restype = ctypes.c_char_p
    _KEEP.append(lib)
    config = lib.scipy_openblas_get_config().decode(errors="replace").split()
    return BlasAddresses(_address(lib.scipy_sgemm_), _address(lib.scipy_dgemm_), serial=True,
                         name=f"{' '.join(config[:2])} (scipy-openblas32, 1 thread per call)")


def _address(f: Any) -> int:
    return int(ctypes.cast(f, ctypes.c_void_p).value)


def _mkl() -> BlasAddresses:
    """oneMKL's runtime library from the `mkl` wheel (installed into <prefix>/lib)."""
    # NOTE: looked up by path, not through importlib.metadata, whose import alone costs 30 ms
    # of every first call that loads a compiled function from the disk cache.
    folders = [os.path.join(p, "lib") for p in dict.fromkeys((sys.prefix, site.USER_BASE or ""))
               if p]
    paths = sorted(os.path.join(f, n) for f in folders if os.path.isdir(f)
                   for n in os.listdir(f) if n.startswith("libmkl_rt.so"))
    if not paths:
        raise ImportError("the mkl wheel is not installed (pip install hybrid[mkl])")
    if "ILP64" in os.environ.get("MKL_INTERFACE_LAYER", "").upper():
        # the calls here pass 32-bit integers; the process asked mkl_rt for 64-bit ones
        raise ImportError("MKL_INTERFACE_LAYER asks for ILP64; hybrid calls MKL with LP64")
    lib = ctypes.CDLL(paths[0], mode=os.RTLD_LOCAL)
    version = ctypes.create_string_buffer(256)
    lib.MKL_Get_Version_String(version, 256)
    _KEEP.append(lib)
    words = version.value.decode(errors="replace").split(" for ")[0].replace("(R)", "").split()
    name = " ".join(words)
    return BlasAddresses(_address(lib.sgemm_), _address(lib.dgemm_), serial=True,
                         name=f"{name} (1 thread per call)",
                         threads_local=_address(lib.MKL_Set_Num_Threads_Local))


def _scipy_blas() -> BlasAddresses:
    capi = _cython_blas().__pyx_capi__
    return BlasAddresses(sgemm=_capsule_pointer(capi["sgemm"]),
                         dgemm=_capsule_pointer(capi["dgemm"]), serial=False,
                         name="SciPy's BLAS (its own threads)")


_PROVIDERS = {"mkl": _mkl, "openblas": _private_openblas, "scipy": _scipy_blas}


def _capsule_pointer(capsule: object) -> int:
    """The pointer stored in a PyCapsule (looked up under the capsule's own name)."""
    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype = ctypes.c_char_p
    api.PyCapsule_GetName.argtypes = [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    name = api.PyCapsule_GetName(capsule)
    address = api.PyCapsule_GetPointer(capsule, name)
    if not address:
        raise RuntimeError(f"PyCapsule {capsule!r} holds a null pointer")
    return int(address)


def _cython_blas() -> object:
    """scipy.linalg.cython_blas, loaded without running scipy.linalg's __init__ (which imports
    all of scipy.linalg: a few hundred ms that a cached compiled function should not pay)."""
    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return sys.modules[name]
    try:
        spec = importlib.util.find_spec("scipy")
        folder = os.path.join(os.path.dirname(spec.origin), "linalg")
        files = sorted(f for f in os.listdir(folder)
                       if f.startswith("cython_blas.") and f.endswith((".so", ".pyd")))
        loader = importlib.machinery.ExtensionFileLoader(name, os.path.join(folder, files[0]))
        module = importlib.util.module_from_spec(
            importlib.util.spec_from_file_location(name, loader.path, loader=loader))
        loader.exec_module(module)
        sys.modules[name] = module
        return module
    except (ImportError, OSError, IndexError, AttributeError):
        from scipy.linalg import cython_blas

        return cython_blas


@functools.cache
def blas_addresses() -> BlasAddresses:
    """sgemm/dgemm of the BLAS chosen by HYBRID_BLAS (see the module docstring); the library
    stays loaded, so the addresses stay valid."""
    choice = os.environ.get("HYBRID_BLAS", "auto").strip().lower() or "auto"
    if choice != "auto" and choice not in _PROVIDERS:
        raise ValueError(f"HYBRID_BLAS must be auto, {', '.join(_PROVIDERS)}; got {choice!r}")
    failures = []
    for name in (_PROVIDERS if choice == "auto" else [choice]):
        try:
            return _PROVIDERS[name]()
        except (ImportError, OSError, AttributeError) as e:
            failures.append(f"{name}: {e}")
    raise RuntimeError("no BLAS for matmul could be loaded (" + "; ".join(failures) + "); "
                       "reinstall hybrid (pip install hybrid) to get scipy-openblas32 and scipy")
