// The BLAS library GEMM steps call: opened and resolved by the runtime itself (dlopen), so a
// plan runs without Python telling it addresses. Fortran ABI (column-major, arguments by
// pointer, 32-bit ints); gemm.cc maps row-major GEMMs onto it.
#pragma once

#include <cstdint>
#include <string>

namespace hybrid {

struct BlasLibrary {
  std::string provider;  // "openblas" | "mkl" | "scipy"
  std::string path;      // the shared library it came from
  std::string name;      // what the library says it is (version, configuration)
  std::uintptr_t sgemm = 0;
  std::uintptr_t dgemm = 0;
  // The library runs on its calling thread only: the executor splits GEMMs over its pool.
  bool serial = false;
  // int f(int n): sets the calling thread's BLAS threads to n, returns the previous setting;
  // called around each GEMM block (0: none).
  std::uintptr_t threads_local = 0;

  bool loaded() const { return sgemm != 0 && dgemm != 0; }
};

// Opens `path` (RTLD_LOCAL: its symbols never take the place of another copy's) and resolves
// the provider's entry points:
//   openblas: scipy_sgemm_/scipy_dgemm_ of scipy-openblas32's library, set to one thread;
//   mkl:      sgemm_/dgemm_ and MKL_Set_Num_Threads_Local of libmkl_rt (LP64 only);
//   scipy:    scipy_sgemm_/scipy_dgemm_ (or sgemm_/dgemm_) of SciPy's bundled BLAS, with the
//             library's own threading.
// The library stays loaded for the life of the process. std::runtime_error naming the
// provider, the path and what is missing otherwise.
BlasLibrary load_blas(const std::string& provider, const std::string& path);

}  // namespace hybrid
