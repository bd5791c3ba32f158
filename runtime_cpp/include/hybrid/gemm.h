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

}  // namespace hybrid
