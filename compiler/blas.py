"""Addresses of a real BLAS `sgemm` / `dgemm`, taken from SciPy's Cython BLAS capsules.

These are Fortran-ABI (column-major, every argument by pointer, 32-bit ints):
`sgemm(char* transa, char* transb, int* m, int* n, int* k, float* alpha, float* a, int* lda,
float* b, int* ldb, float* beta, float* c, int* ldc)`. The runtime maps row-major GEMMs onto
them (runtime_cpp/src/gemm.cc).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.machinery
import importlib.util
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class BlasAddresses:
    """Function addresses of the Fortran-ABI sgemm and dgemm."""

    sgemm: int
    dgemm: int


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
    """sgemm/dgemm of the BLAS SciPy links (its module stays imported, so they stay valid)."""
    capi = _cython_blas().__pyx_capi__
    return BlasAddresses(sgemm=_capsule_pointer(capi["sgemm"]),
                         dgemm=_capsule_pointer(capi["dgemm"]))
