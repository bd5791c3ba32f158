// A Plan as the runtime sees it: buffer table + steps (kernel, GEMM, copy). No Python here;
// plan_format.h parses the bytes compiler/plan.py writes into a PlanDesc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace hybrid {

// Element types, named as the compiler's IR prints them (b8, i32, i64, f16, f32, f64).
enum class DType : int32_t { kBool, kInt32, kInt64, kFloat16, kFloat32, kFloat64 };

// Parses a short name ("f32"); std::invalid_argument listing the known names otherwise.
DType parse_dtype(const std::string& name);
const char* dtype_name(DType dtype);        // "f32"
const char* dtype_numpy_name(DType dtype);  // "float32"
std::size_t dtype_itemsize(DType dtype);

enum class BufferKind : int32_t { kInput, kOutput, kArena, kConstant };

// Parses "input" | "output" | "arena" | "constant"; std::invalid_argument otherwise.
BufferKind parse_buffer_kind(const std::string& name);
const char* buffer_kind_name(BufferKind kind);

struct BufferDesc {
  BufferKind kind = BufferKind::kArena;
  int64_t index = 0;   // input / output / constant number
  int64_t offset = 0;  // byte offset in the arena (arena buffers only)
  int64_t nbytes = 0;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  // NOTE: no memory space: this runtime has the host's only (plan_format.cc refuses others).
};

// Calls fn(start, end, args) over [0, n), split over the thread pool unless !parallel.
struct KernelStep {
  std::string symbol;
  std::uintptr_t fn = 0;
  int64_t n = 0;
  std::vector<int64_t> args;  // buffer ids
  int64_t grain = 0;
  bool parallel = true;
  std::vector<int64_t> touches;  // per arg: one past the last byte it may reach (or empty)
};

// Row-major C[m,n] = alpha * op(A) @ op(B) + beta * C, `batch` times; offsets, leading
// dimensions and strides in elements.
struct GemmStep {
  DType dtype = DType::kFloat32;
  bool trans_a = false;
  bool trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t a = 0, b = 0, c = 0;  // buffer ids
  int64_t a_offset = 0, b_offset = 0, c_offset = 0;
  int64_t lda = 1, ldb = 1, ldc = 1;
  int64_t batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  double alpha = 1.0;
  double beta = 0.0;
};

// memmove of `nbytes` from byte src_offset of buffer src to byte dst_offset of buffer dst.
struct CopyStep {
  int64_t src = 0, dst = 0;
  int64_t src_offset = 0, dst_offset = 0;
  int64_t nbytes = 0;
};

using Step = std::variant<KernelStep, GemmStep, CopyStep>;

// The dtype and shape a constant array must have.
struct ConstantSig {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
};

struct PlanDesc {
  int64_t arena_bytes = 0;
  std::vector<BufferDesc> buffers;
  std::vector<Step> steps;
  std::vector<int64_t> inputs;   // buffer ids in call order
  std::vector<int64_t> outputs;  // buffer ids in return order (may repeat, may be inputs)
  // The last input, an i64[2] the kernels' bounds checks write ([0]: set on a bad index),
  // or -1 (none).
  int64_t error_flag = -1;
  std::vector<ConstantSig> constants;  // what each constant array supplied with it must be
};

// Checks every id, bound and dtype of `plan` (the runtime's own guard behind the compiler's
// PlanError checks); std::invalid_argument naming the step or buffer otherwise.
void validate_plan(const PlanDesc& plan);

}  // namespace hybrid
