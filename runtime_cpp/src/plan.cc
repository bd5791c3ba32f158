#include "hybrid/plan.h"

#include <algorithm>
#include <array>
#include <stdexcept>
#include <string>

namespace hybrid {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  const char* numpy_name;
  std::size_t itemsize;
};

constexpr std::array<DTypeInfo, 6> kDTypes = {{
    {DType::kBool, "b8", "bool", 1},
    {DType::kInt32, "i32", "int32", 4},
    {DType::kInt64, "i64", "int64", 8},
    {DType::kFloat16, "f16", "float16", 2},
    {DType::kFloat32, "f32", "float32", 4},
    {DType::kFloat64, "f64", "float64", 8},
}};

constexpr std::array<const char*, 4> kKindNames = {"input", "output", "arena", "constant"};

constexpr int64_t kBlasIntMax = 2147483647;  // BLAS (LP64) takes 32-bit ints

const DTypeInfo& info(DType dtype) { return kDTypes.at(static_cast<std::size_t>(dtype)); }

[[noreturn]] void fail(const std::string& message) {
  throw std::invalid_argument("malformed plan: " + message);
}

std::string b(int64_t id) { return "b" + std::to_string(id); }

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

// NOTE: every bound is computed with overflow checks so that hostile values cannot wrap
// around into a pass.
int64_t mul(int64_t x, int64_t y, const std::string& where) {
  int64_t out = 0;
  if (__builtin_mul_overflow(x, y, &out)) fail(where + ": size overflows int64");
  return out;
}

int64_t add(int64_t x, int64_t y, const std::string& where) {
  int64_t out = 0;
  if (__builtin_add_overflow(x, y, &out)) fail(where + ": size overflows int64");
  return out;
}

void check_id(const PlanDesc& plan, int64_t id, const std::string& where) {
  if (id < 0 || id >= static_cast<int64_t>(plan.buffers.size())) {
    fail(where + ": buffer id " + std::to_string(id) + " out of range (" +
         std::to_string(plan.buffers.size()) + " buffers)");
  }
}

void validate_buffer(const PlanDesc& plan, std::size_t i) {
  const std::size_t num_constants = plan.constants.size();
  const BufferDesc& buf = plan.buffers[i];
  const std::string where = "buffer " + b(static_cast<int64_t>(i));
  if (buf.index < 0 || buf.offset < 0 || buf.nbytes < 0) fail(where + ": negative field");
  int64_t numel = 1;
  for (int64_t d : buf.shape) {
    if (d < 0) fail(where + ": negative dimension");
    numel = mul(numel, d, where);
  }
  const int64_t itemsize = static_cast<int64_t>(dtype_itemsize(buf.dtype));
  if (mul(numel, itemsize, where) != buf.nbytes) {
    fail(where + ": nbytes " + std::to_string(buf.nbytes) + " does not match its shape");
  }
  if (buf.kind == BufferKind::kArena) {
    if (add(buf.offset, buf.nbytes, where) > plan.arena_bytes) {
      fail(where + ": [" + std::to_string(buf.offset) + ", " +
           std::to_string(buf.offset + buf.nbytes) + ") overflows the arena of " +
           std::to_string(plan.arena_bytes) + " bytes");
    }
    if (buf.offset % itemsize != 0) fail(where + ": misaligned arena offset");
  } else if (buf.offset != 0) {
    fail(where + ": offset must be 0 for a non-arena buffer");
  }
  if (buf.kind == BufferKind::kConstant && buf.index >= static_cast<int64_t>(num_constants)) {
    fail(where + ": constant index " + std::to_string(buf.index) + " out of range (" +
         std::to_string(num_constants) + " constants)");
  }
  if (buf.kind == BufferKind::kConstant) {
    const ConstantSig& sig = plan.constants[buf.index];
    if (sig.dtype != buf.dtype || sig.shape != buf.shape) {
      fail(where + ": constant " + std::to_string(buf.index) + " is declared " +
           dtype_name(sig.dtype) + shape_str(sig.shape) + ", the buffer is " +
           dtype_name(buf.dtype) + shape_str(buf.shape));
    }
  }
}

void validate_constants(const PlanDesc& plan) {
  for (std::size_t i = 0; i < plan.constants.size(); ++i) {
    const std::string where = "constant " + std::to_string(i);
    int64_t numel = 1;
    for (int64_t d : plan.constants[i].shape) {
      if (d < 0) fail(where + ": negative dimension");
      numel = mul(numel, d, where);
    }
    mul(numel, static_cast<int64_t>(dtype_itemsize(plan.constants[i].dtype)), where);
  }
}

void validate_error_flag(const PlanDesc& plan) {
  const int64_t f = plan.error_flag;
  if (f == -1) return;
  check_id(plan, f, "error_flag");
  const BufferDesc& buf = plan.buffers[f];
  if (plan.inputs.empty() || plan.inputs.back() != f || buf.dtype != DType::kInt64 ||
      buf.shape != std::vector<int64_t>{2}) {
    fail("error_flag " + b(f) + " must be the last input, an i64[2] buffer");
  }
}

void validate_signature(const PlanDesc& plan) {
  const auto& ins = plan.inputs;
  const auto& outs = plan.outputs;
  for (std::size_t pos = 0; pos < ins.size(); ++pos) {
    check_id(plan, ins[pos], "inputs[" + std::to_string(pos) + "]");
    const BufferDesc& buf = plan.buffers[ins[pos]];
    if (buf.kind != BufferKind::kInput || buf.index != static_cast<int64_t>(pos)) {
      fail("inputs[" + std::to_string(pos) + "] = " + b(ins[pos]) +
           " must be an input buffer with that index");
    }
  }
  for (std::size_t pos = 0; pos < outs.size(); ++pos) {
    check_id(plan, outs[pos], "outputs[" + std::to_string(pos) + "]");
    const BufferDesc& buf = plan.buffers[outs[pos]];
    if (buf.kind == BufferKind::kOutput) {
      const auto first = std::find(outs.begin(), outs.end(), outs[pos]) - outs.begin();
      if (buf.index != first) {
        fail("outputs[" + std::to_string(pos) + "] = " + b(outs[pos]) +
             ": an output buffer's index must be its first position in outputs");
      }
    } else if (buf.kind != BufferKind::kInput) {
      fail("outputs[" + std::to_string(pos) + "] = " + b(outs[pos]) +
           " must be an output or input buffer");
    }
  }
  for (std::size_t i = 0; i < plan.buffers.size(); ++i) {
    const auto id = static_cast<int64_t>(i);
    const BufferKind kind = plan.buffers[i].kind;
    if (kind == BufferKind::kInput && std::find(ins.begin(), ins.end(), id) == ins.end()) {
      fail("input buffer " + b(id) + " is not listed in inputs");
    }
    if (kind == BufferKind::kOutput && std::find(outs.begin(), outs.end(), id) == outs.end()) {
      fail("output buffer " + b(id) + " is not listed in outputs");
    }
  }
}

// A copy's destination and a GEMM's C are written: an output, the arena, or an input the plan
// returns (donated); never a constant or another input (which may be read-only memory).
void check_writable(const PlanDesc& plan, int64_t id, const std::string& where) {
  const BufferDesc& buf = plan.buffers[id];
  const bool returned =
      std::find(plan.outputs.begin(), plan.outputs.end(), id) != plan.outputs.end();
  if (buf.kind == BufferKind::kConstant || (buf.kind == BufferKind::kInput && !returned)) {
    fail(where + " " + b(id) + " is " +
         (buf.kind == BufferKind::kConstant ? "a constant" : "an input the plan does not return") +
         ": only outputs, arena buffers and donated inputs are written");
  }
}

void validate_step(const PlanDesc& plan, const KernelStep& s, const std::string& where) {
  if (s.fn == 0) fail(where + ": kernel '" + s.symbol + "' has a null address");
  if (s.n < 0 || s.grain < 0) fail(where + ": n and grain must be >= 0");
  if (!s.touches.empty() && s.touches.size() != s.args.size()) {
    fail(where + ": kernel '" + s.symbol + "' has " + std::to_string(s.touches.size()) +
         " touches for " + std::to_string(s.args.size()) + " args");
  }
  int64_t longest = 0;
  for (int64_t id : s.args) {
    check_id(plan, id, where);
    const BufferDesc& buf = plan.buffers[id];
    longest = std::max(longest, buf.nbytes / static_cast<int64_t>(dtype_itemsize(buf.dtype)));
  }
  // NOTE: `touches` is what the compiler proved each argument's kernel may reach
  // (compiler/kernel_extent.py): a buffer smaller than that would be read or written past its end.
  for (std::size_t j = 0; j < s.touches.size(); ++j) {
    const BufferDesc& buf = plan.buffers[s.args[j]];
    if (s.touches[j] < 0 || s.touches[j] > buf.nbytes) {
      fail(where + ": kernel '" + s.symbol + "' may reach byte " + std::to_string(s.touches[j]) +
           " of arg " + std::to_string(j) + " (" + b(s.args[j]) + ", " +
           std::to_string(buf.nbytes) + " bytes)");
    }
  }
  // NOTE: each outer index of a kernel writes an element of an output or reads one of an
  // input, so a range longer than its largest argument can only read or write out of bounds
  // (compiler/plan.py's check_kernel_ranges is the same rule).
  if (s.n > longest) {
    fail(where + ": kernel '" + s.symbol + "' range n=" + std::to_string(s.n) +
         " is longer than its largest argument (" + std::to_string(longest) + " elements)");
  }
}

void validate_step(const PlanDesc& plan, const GemmStep& s, const std::string& where) {
  if (s.dtype != DType::kFloat32 && s.dtype != DType::kFloat64) fail(where + ": dtype not f32/f64");
  for (int64_t v : {s.m, s.n, s.k, s.lda, s.ldb, s.ldc}) {
    if (v < 0 || v > kBlasIntMax) fail(where + ": m, n, k and leading dims must be in [0, 2^31)");
  }
  for (int64_t v : {s.a_offset, s.b_offset, s.c_offset, s.stride_a, s.stride_b, s.stride_c}) {
    if (v < 0) fail(where + ": offsets and strides must be >= 0");
  }
  if (s.batch < 1) fail(where + ": batch must be >= 1");
  struct Operand {
    const char* name;
    int64_t id, rows, cols, ld, offset, stride;
  };
  const Operand operands[] = {
      {"A", s.a, s.trans_a ? s.k : s.m, s.trans_a ? s.m : s.k, s.lda, s.a_offset, s.stride_a},
      {"B", s.b, s.trans_b ? s.n : s.k, s.trans_b ? s.k : s.n, s.ldb, s.b_offset, s.stride_b},
      {"C", s.c, s.m, s.n, s.ldc, s.c_offset, s.stride_c},
  };
  for (const Operand& op : operands) {
    const std::string at = where + ": " + op.name;
    check_id(plan, op.id, at);
    if (op.name[0] == 'C') check_writable(plan, op.id, at);
    const BufferDesc& buf = plan.buffers[op.id];
    if (buf.dtype != s.dtype) fail(at + " has dtype " + dtype_name(buf.dtype));
    if (op.ld < std::max<int64_t>(1, op.cols)) fail(at + ": leading dimension too small");
    const bool touched = s.m > 0 && s.n > 0 && (op.name[0] == 'C' || s.k > 0);
    if (!touched) continue;
    int64_t end = add(op.offset, mul(s.batch - 1, op.stride, at), at);
    end = add(end, add(mul(op.rows - 1, op.ld, at), op.cols, at), at);
    const int64_t numel = buf.nbytes / static_cast<int64_t>(dtype_itemsize(buf.dtype));
    if (end > numel) {
      fail(at + " (" + b(op.id) + ") is accessed up to element " + std::to_string(end) +
           " of " + std::to_string(numel));
    }
  }
}

void validate_step(const PlanDesc& plan, const CopyStep& s, const std::string& where) {
  check_id(plan, s.src, where);
  check_id(plan, s.dst, where);
  check_writable(plan, s.dst, where + ": destination");
  if (s.src_offset < 0 || s.dst_offset < 0 || s.nbytes < 0) fail(where + ": negative field");
  if (add(s.src_offset, s.nbytes, where) > plan.buffers[s.src].nbytes ||
      add(s.dst_offset, s.nbytes, where) > plan.buffers[s.dst].nbytes) {
    fail(where + ": copy range overflows its buffer");
  }
}

}  // namespace

DType parse_dtype(const std::string& name) {
  for (const DTypeInfo& d : kDTypes) {
    if (name == d.name) return d.dtype;
  }
  throw std::invalid_argument("unknown dtype '" + name + "'; known: b8, i32, i64, f16, f32, f64");
}

const char* dtype_name(DType dtype) { return info(dtype).name; }
const char* dtype_numpy_name(DType dtype) { return info(dtype).numpy_name; }
std::size_t dtype_itemsize(DType dtype) { return info(dtype).itemsize; }

BufferKind parse_buffer_kind(const std::string& name) {
  for (std::size_t i = 0; i < kKindNames.size(); ++i) {
    if (name == kKindNames[i]) return static_cast<BufferKind>(i);
  }
  throw std::invalid_argument("unknown buffer kind '" + name +
                              "'; known: input, output, arena, constant");
}

const char* buffer_kind_name(BufferKind kind) {
  return kKindNames.at(static_cast<std::size_t>(kind));
}

void validate_plan(const PlanDesc& plan) {
  if (plan.arena_bytes < 0) fail("arena_bytes must be >= 0");
  validate_constants(plan);
  for (std::size_t i = 0; i < plan.buffers.size(); ++i) validate_buffer(plan, i);
  validate_signature(plan);
  validate_error_flag(plan);
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    const std::string where = "step " + std::to_string(i);
    std::visit([&](const auto& step) { validate_step(plan, step, where); }, plan.steps[i]);
  }
}

}  // namespace hybrid
