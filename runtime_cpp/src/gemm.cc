#include "hybrid/gemm.h"

#include <algorithm>

#include "hybrid/checked.h"
#include "hybrid/thread_pool.h"

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

// Below this many multiply-adds a GEMM is not split: waking a thread costs more.
constexpr int64_t kMinSplitMacs = int64_t{1} << 19;
// Blocks of C rows / columns are multiples of this (BLAS micro-kernels are 8-32 wide).
constexpr int64_t kBlockAlign = 16;

// The calling thread's BLAS runs single-threaded while one of these lives.
class OneBlasThread {
 public:
  explicit OneBlasThread(std::uintptr_t setter)
      : set_(reinterpret_cast<int (*)(int)>(setter)), previous_(set_ ? set_(1) : 0) {}
  ~OneBlasThread() {
    if (set_) set_(previous_);
  }
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;

 private:
  int (*set_)(int);
  int previous_;
};

}  // namespace

GemmStep gemm_block(const GemmStep& step, bool split_rows, int64_t r0, int64_t r1) {
  GemmStep part = step;
  if (split_rows) {  // rows of op(A) and C
    part.m = r1 - r0;
    part.a_offset += step.trans_a ? r0 : r0 * step.lda;
    part.c_offset += r0 * step.ldc;
  } else {  // columns of op(B) and C
    part.n = r1 - r0;
    part.b_offset += step.trans_b ? r0 * step.ldb : r0;
    part.c_offset += r0;
  }
  return part;
}

void gemm_row_major_parallel(std::uintptr_t blas_fn, std::uintptr_t threads_local,
                             const GemmStep& step, std::byte* a, std::byte* b, std::byte* c) {
  const int64_t threads = get_num_threads();
  // NOTE: saturating: m, n, k < 2^31 each and any batch, so the product may not fit int64; it
  // only decides whether to split.
  const int64_t macs =
      saturating_mul(saturating_mul(saturating_mul(step.m, step.n), step.k), step.batch);
  // NOTE: blocks of rows only: each is an independent GEMM on a slice of op(A) and C. Blocks
  // of columns measured slower than one whole call (OpenBLAS 0.3.34, 128x512x512: 2 threads
  // 525 us, 1 thread 440 us, 2 blocks of rows 238 us).
  const bool split_rows = true;
  const int64_t extent = step.m;
  const bool by_batch = step.batch >= threads;
  const int64_t blocks = by_batch ? step.batch : std::min(threads, extent / kBlockAlign);
  if (threads == 1 || macs < kMinSplitMacs || blocks < 2) {
    OneBlasThread one(threads_local);
    gemm_row_major(blas_fn, step, a, b, c);
    return;
  }
  struct Split {  // NOTE: captured by one reference, so std::function does not allocate
    std::uintptr_t fn, threads_local;
    const GemmStep& step;
    std::byte *a, *b, *c;
    bool by_batch, split_rows;
    int64_t extent, blocks, per;
  };
  const int64_t per = (extent / blocks + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
  const Split ctx{blas_fn, threads_local, step, a, b, c, by_batch, split_rows, extent, blocks,
                  per};
  parallel_for(0, blocks, 1, [&ctx](int64_t p0, int64_t p1) {
    OneBlasThread one(ctx.threads_local);
    if (ctx.by_batch) {
      GemmStep part = ctx.step;
      part.batch = p1 - p0;
      part.a_offset += p0 * ctx.step.stride_a;
      part.b_offset += p0 * ctx.step.stride_b;
      part.c_offset += p0 * ctx.step.stride_c;
      gemm_row_major(ctx.fn, part, ctx.a, ctx.b, ctx.c);
      return;
    }
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t r0 = std::min(ctx.extent, p * ctx.per);
      const int64_t r1 = p + 1 == ctx.blocks ? ctx.extent : std::min(ctx.extent, r0 + ctx.per);
      if (r1 > r0) {
        gemm_row_major(ctx.fn, gemm_block(ctx.step, ctx.split_rows, r0, r1), ctx.a, ctx.b, ctx.c);
      }
    }
  });
}

void gemm_row_major(std::uintptr_t blas_fn, const GemmStep& step, std::byte* a, std::byte* b,
                    std::byte* c) {
  if (step.dtype == DType::kFloat64) {
    gemm_typed<double>(blas_fn, step, a, b, c);
  } else {
    gemm_typed<float>(blas_fn, step, a, b, c);
  }
}

}  // namespace hybrid
