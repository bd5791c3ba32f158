#include "hybrid/executor.h"

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>

#include "hybrid/checked.h"
#include "hybrid/fork.h"
#include "hybrid/gemm.h"
#include "hybrid/thread_pool.h"

namespace hybrid {

namespace {

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

bool is_io(BufferKind kind) { return kind == BufferKind::kInput || kind == BufferKind::kOutput; }

// Constants are packed into one block, each at a 64-byte-aligned offset.
std::size_t align_up(std::size_t n) {
  return checked_add(n, kArenaAlignment - 1, "constant size") / kArenaAlignment * kArenaAlignment;
}

// validate_plan, then the checks that need what comes with the plan: the constants and BLAS.
const PlanDesc& checked(const PlanDesc& plan, const std::vector<ConstantData>& constants,
                        const BlasLibrary& blas) {
  validate_plan(plan);
  if (constants.size() != plan.constants.size()) {
    throw std::invalid_argument("the plan declares " + std::to_string(plan.constants.size()) +
                                " constants, " + std::to_string(constants.size()) + " given");
  }
  for (std::size_t i = 0; i < constants.size(); ++i) {
    const ConstantSig& sig = plan.constants[i];
    std::size_t nbytes = dtype_itemsize(sig.dtype);
    for (int64_t d : sig.shape) nbytes = checked_mul(nbytes, static_cast<std::size_t>(d), "constant");
    if (constants[i].nbytes != nbytes) {
      throw std::invalid_argument("constant " + std::to_string(i) + " has " +
                                  std::to_string(constants[i].nbytes) + " bytes, its declared " +
                                  dtype_name(sig.dtype) + " shape needs " +
                                  std::to_string(nbytes));
    }
  }
  for (std::size_t i = 0; i < plan.steps.size(); ++i) {
    if (std::holds_alternative<GemmStep>(plan.steps[i]) && !blas.loaded()) {
      throw std::invalid_argument("step " + std::to_string(i) +
                                  " is a GEMM and no BLAS library is loaded");
    }
  }
  return plan;
}

std::size_t constants_bytes(const std::vector<ConstantData>& constants) {
  std::size_t total = 0;
  for (const ConstantData& c : constants) {
    total = checked_add(total, align_up(c.nbytes), "constants block size");
  }
  return total;
}

// Every live Executor, for fork() handling and memory_stats.
struct Registry {
  std::mutex mu;
  std::unordered_set<Executor*> live;
};

Registry& registry() {
  // NOTE: never destroyed: executors may be freed during interpreter shutdown.
  static Registry* r = new Registry();
  return *r;
}

}  // namespace

Executor::Executor(PlanDesc plan, const std::vector<ConstantData>& constants, BlasLibrary blas)
    : plan_(std::move(plan)),
      blas_(std::move(blas)),
      arena_(static_cast<std::size_t>(checked(plan_, constants, blas_).arena_bytes)),
      constants_(constants_bytes(constants)) {
  // Constants: one aligned copy each.
  std::vector<std::byte*> constant_base;
  constant_base.reserve(constants.size());
  std::size_t offset = 0;
  for (const ConstantData& c : constants) {
    std::byte* dst = constants_.data() + offset;
    if (c.nbytes > 0) std::memcpy(dst, c.data, c.nbytes);
    constant_base.push_back(dst);
    offset += align_up(c.nbytes);
  }

  // Base pointer of every buffer; inputs and outputs are filled in by run().
  base_.assign(plan_.buffers.size(), nullptr);
  for (std::size_t i = 0; i < plan_.buffers.size(); ++i) {
    const BufferDesc& buf = plan_.buffers[i];
    switch (buf.kind) {
      case BufferKind::kArena:
        base_[i] = arena_.data() + buf.offset;
        break;
      case BufferKind::kConstant:
        base_[i] = constant_base[buf.index];
        break;
      case BufferKind::kInput:
      case BufferKind::kOutput:
        io_buffers_.push_back(static_cast<int64_t>(i));
        break;
    }
  }

  // Kernel argument tables: fixed pointers now, input/output slots patched per run.
  table_start_.assign(plan_.steps.size(), 0);
  for (std::size_t i = 0; i < plan_.steps.size(); ++i) {
    if (const auto* kernel = std::get_if<KernelStep>(&plan_.steps[i])) {
      table_start_[i] = tables_.size();
      for (int64_t id : kernel->args) {
        if (is_io(plan_.buffers[id].kind)) patches_.push_back({tables_.size(), id});
        tables_.push_back(base_[id]);
      }
    }
  }

  // NOTE: registered last, so that a constructor that throws leaves nothing behind.
  install_fork_handlers();
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.live.insert(this);
}

Executor::~Executor() {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.live.erase(this);
}

Executor::LiveTotals Executor::live_totals() {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  LiveTotals totals;
  for (const Executor* e : reg.live) {
    totals.count += 1;
    totals.bytes += e->owned_bytes();
  }
  return totals;
}

// NOTE: the registry lock is held from prepare to parent/child, so the set cannot change in
// between, and every executor's lock is taken in the set's (fixed) iteration order. A call in
// flight on another thread finishes its run (it needs no lock the forking thread holds: the
// GIL is released while a plan runs) and then lets go of its executor's lock.
void Executor::fork_prepare() {
  Registry& reg = registry();
  reg.mu.lock();
  for (Executor* e : reg.live) e->mu_.lock();
}

void Executor::fork_parent() {
  Registry& reg = registry();
  for (Executor* e : reg.live) e->mu_.unlock();
  reg.mu.unlock();
}

void Executor::fork_child() {
  // NOTE: the child's only thread is the one that forked, which holds every lock taken in
  // prepare; unlocking them is well defined. No plan was mid-run, so every arena is consistent.
  Registry& reg = registry();
  for (Executor* e : reg.live) e->mu_.unlock();
  reg.mu.unlock();
}

void Executor::bind_io(void* const* inputs, void* const* outputs) {
  for (int64_t id : io_buffers_) {
    const BufferDesc& buf = plan_.buffers[id];
    void* const* source = buf.kind == BufferKind::kInput ? inputs : outputs;
    base_[id] = static_cast<std::byte*>(source[buf.index]);
  }
  for (const Patch& patch : patches_) tables_[patch.slot] = base_[patch.buffer];
}

void Executor::run(void* const* inputs, void* const* outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  bind_io(inputs, outputs);
  for (std::size_t i = 0; i < plan_.steps.size(); ++i) run_step(i);
}

void Executor::run_timed(void* const* inputs, void* const* outputs,
                         std::vector<double>& seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  seconds.resize(plan_.steps.size(), 0.0);
  bind_io(inputs, outputs);
  for (std::size_t i = 0; i < plan_.steps.size(); ++i) {
    const auto start = std::chrono::steady_clock::now();
    run_step(i);
    seconds[i] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
}

void Executor::run_step(std::size_t i) {
  void** table = tables_.data() + table_start_[i];
  std::visit(
      Overloaded{
          [&](const KernelStep& s) {
            auto fn = reinterpret_cast<KernelFn>(s.fn);
            if (!s.parallel) {
              if (s.n > 0) fn(0, s.n, table);
              return;
            }
            // NOTE: the lambda captures two pointers, small enough for std::function's
            // inline storage: no allocation per step.
            parallel_for(0, s.n, s.grain,
                         [fn, table](int64_t start, int64_t end) { fn(start, end, table); });
          },
          [&](const GemmStep& s) {
            const std::uintptr_t blas = s.dtype == DType::kFloat32 ? blas_.sgemm : blas_.dgemm;
            if (blas_.serial) {
              gemm_row_major_parallel(blas, blas_.threads_local, s, base_[s.a], base_[s.b],
                                      base_[s.c]);
            } else {
              gemm_row_major(blas, s, base_[s.a], base_[s.b], base_[s.c]);
            }
          },
          [&](const CopyStep& s) {
            if (s.nbytes == 0) return;
            // NOTE: memmove, not memcpy: a plan may copy within one buffer.
            std::memmove(base_[s.dst] + s.dst_offset, base_[s.src] + s.src_offset,
                         static_cast<std::size_t>(s.nbytes));
          },
      },
      plan_.steps[i]);
}

}  // namespace hybrid
