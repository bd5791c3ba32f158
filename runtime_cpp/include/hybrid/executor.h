// Runs a PlanDesc: owns the arena, the constants and a precomputed kernel pointer table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "hybrid/arena.h"
#include "hybrid/blas.h"
#include "hybrid/plan.h"

namespace hybrid {

// Bytes of one constant array, copied by the Executor at construction.
struct ConstantData {
  const void* data = nullptr;
  std::size_t nbytes = 0;
};

// Built once per plan (validates it, copies the constants into a 64-byte-aligned block,
// precomputes every kernel's argument table); then `run` many times with no allocation.
class Executor {
 public:
  // std::invalid_argument if the plan is malformed, the constants are not the ones it
  // declares (count, bytes), or it has GEMM steps and `blas` is not loaded.
  Executor(PlanDesc plan, const std::vector<ConstantData>& constants, BlasLibrary blas = {});
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  const PlanDesc& plan() const { return plan_; }
  const BlasLibrary& blas() const { return blas_; }
  std::size_t num_inputs() const { return plan_.inputs.size(); }
  std::size_t num_outputs() const { return plan_.outputs.size(); }

  // Runs every step in order. `inputs[i]` is the data of input i; `outputs[j]` that of the
  // output buffer with index j (slots of outputs that repeat an earlier output or alias an
  // input are not read). The caller guarantees sizes and contiguity. Calls on one Executor
  // are serialized (they share the arena); exceptions from steps propagate.
  void run(void* const* inputs, void* const* outputs);

  // As run(), also adding each step's wall time in seconds to seconds[i] (one entry per step).
  void run_timed(void* const* inputs, void* const* outputs, std::vector<double>& seconds);

  // Bytes owned by this executor: its arena plus its constants block.
  std::size_t owned_bytes() const { return arena_.nbytes() + constants_.nbytes(); }

  // Live executors and the bytes they own (arenas and constants), over the whole process.
  struct LiveTotals {
    std::size_t count = 0;
    std::size_t bytes = 0;
  };
  static LiveTotals live_totals();

  // fork() handlers (see hybrid/fork.h): prepare takes the registry lock, then every live
  // executor's run lock, so no plan is mid-run when the process forks.
  static void fork_prepare();
  static void fork_parent();
  static void fork_child();

 private:
  struct Patch {  // kernel-table slot whose pointer is an input's or output's base
    std::size_t slot;
    int64_t buffer;
  };

  void bind_io(void* const* inputs, void* const* outputs);
  void run_step(std::size_t i);

  PlanDesc plan_;
  BlasLibrary blas_;
  Arena arena_;
  Arena constants_;
  std::vector<std::byte*> base_;            // per buffer; inputs/outputs filled per run
  std::vector<int64_t> io_buffers_;         // ids of input and output buffers
  std::vector<void*> tables_;               // every kernel's argument table, concatenated
  std::vector<std::size_t> table_start_;    // per step: its table's first slot in tables_
  std::vector<Patch> patches_;
  std::mutex mu_;
};

}  // namespace hybrid
