#include "hybrid/gemm.h"

namespace hybrid {

namespace {

// Fortran ABI: everything by pointer, 32-bit ints (LP64), column-major. The hidden string
// length arguments of `transa`/`transb` are omitted, as SciPy's own callers do.
template <typename T>
using FortranGemm = void (*)(const char* transa, const char* transb, const int* m, const int* n,
                             const int* k, const T* alpha, const T* a, const int* lda,
                             const T* b, const int* ldb, const T* beta, T* c, const int* ldc);

template <typename T>
void gemm_typed(std::uintptr_t blas_fn, const GemmStep& s, std::byte* a_base, std::byte* b_base,
                std::byte* c_base) {
  if (s.m == 0 || s.n == 0) return;
  auto gemm = reinterpret_cast<FortranGemm<T>>(blas_fn);
  // NOTE: a row-major matrix is the column-major view of its transpose, so row-major
  // C = op(A) @ op(B) is column-major C^T = op(B)^T @ op(A)^T: call BLAS with the operands
  // swapped, m and n swapped, and each operand keeping its own trans flag and leading dim.
  const char trans_first = s.trans_b ? 'T' : 'N';
  const char trans_second = s.trans_a ? 'T' : 'N';
  const int m = static_cast<int>(s.n);
  const int n = static_cast<int>(s.m);
  const int k = static_cast<int>(s.k);
  const int ld_first = static_cast<int>(s.ldb);
  const int ld_second = static_cast<int>(s.lda);
  const int ldc = static_cast<int>(s.ldc);
  const T alpha = static_cast<T>(s.alpha);
  const T beta = static_cast<T>(s.beta);
  const T* a = reinterpret_cast<const T*>(a_base) + s.a_offset;
  const T* b = reinterpret_cast<const T*>(b_base) + s.b_offset;
  T* c = reinterpret_cast<T*>(c_base) + s.c_offset;
  for (int64_t i = 0; i < s.batch; ++i) {
    gemm(&trans_first, &trans_second, &m, &n, &k, &alpha, b + i * s.stride_b, &ld_first,
         a + i * s.stride_a, &ld_second, &beta, c + i * s.stride_c, &ldc);
  }
}

}  // namespace

void gemm_row_major(std::uintptr_t blas_fn, const GemmStep& step, std::byte* a, std::byte* b,
                    std::byte* c) {
  if (step.dtype == DType::kFloat64) {
    gemm_typed<double>(blas_fn, step, a, b, c);
  } else {
    gemm_typed<float>(blas_fn, step, a, b, c);
  }
}

}  // namespace hybrid
