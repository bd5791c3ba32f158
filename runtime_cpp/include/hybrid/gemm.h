// Row-major GEMM on a Fortran-ABI (column-major) BLAS sgemm / dgemm.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hybrid/plan.h"

namespace hybrid {

// Runs `step` (row-major, batched) through the BLAS function at `blas_fn` (sgemm for f32,
// dgemm for f64). `a`, `b`, `c` are the base pointers of the step's three buffers; the
// step's element offsets and strides are applied here. The step must have been validated.
void gemm_row_major(std::uintptr_t blas_fn, const GemmStep& step, std::byte* a, std::byte* b,
                    std::byte* c);

// As gemm_row_major, with the work split over the thread pool: whole batch items when there
// are enough, else blocks of rows of C, each one BLAS call. For a BLAS that runs
// on its calling thread only; products below a few hundred thousand multiply-adds run whole.
// `threads_local` (0: none) is an `int f(int)` that sets the calling thread's BLAS threads:
// each block runs with 1, restored afterwards.
void gemm_row_major_parallel(std::uintptr_t blas_fn, std::uintptr_t threads_local,
                             const GemmStep& step, std::byte* a, std::byte* b, std::byte* c);

// The sub-GEMM of `step` for rows [r0, r1) (split_rows) or columns [r0, r1) of each C.
GemmStep gemm_block(const GemmStep& step, bool split_rows, int64_t r0, int64_t r1);

}  // namespace hybrid
