// Memory for the large arrays a compiled call returns, reused across calls, given back when idle.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace hybrid {

// A block freed by its array (when Python drops the output) comes back here, and the next call
// that returns an output of the same size takes it again: its pages are mapped and likely
// cached, where a fresh allocation of a few MiB is fresh pages from the kernel on every call,
// which cost as much as the kernel that writes them (a 16 MiB output: 0.6 ms of faults for a
// 0.57 ms kernel).
//
// Blocks are mmap'ed and munmap'ed directly (never glibc's heap, which may keep freed memory),
// and an idle block is unmapped once it has been idle for `idle_seconds` (a trimmer thread,
// started with the first idle block, checks every `idle_seconds`), when the pool is over its
// byte or block limits (oldest first), or by release() (hybrid.empty_cache()).
class OutputPool {
 public:
  // Outputs smaller than this come from numpy's own allocator (which caches small blocks).
  static constexpr std::size_t kMinBytes = std::size_t{128} << 10;
  static constexpr std::size_t kMaxPerSize = 4;      // idle blocks kept per size
  static constexpr std::size_t kMaxIdleBlocks = 32;  // idle blocks kept in all
  static constexpr std::size_t kDefaultMaxIdleBytes = std::size_t{1} << 30;
  static constexpr double kDefaultIdleSeconds = 2.0;

  struct Stats {
    std::size_t idle_bytes = 0, idle_blocks = 0;      // kept for reuse
    std::size_t in_use_bytes = 0, in_use_blocks = 0;  // held by live arrays
    std::size_t peak_in_use_bytes = 0;                // since start or reset_peak()
    std::size_t peak_total_bytes = 0;                 // in use + idle, same window
    std::size_t allocations = 0;                      // fresh blocks mapped
    std::size_t reuses = 0;                           // takes served from idle blocks
    std::size_t trimmed_bytes = 0;                    // unmapped by age or limits
    std::size_t released_bytes = 0;                   // unmapped by release()
    double idle_seconds = 0;
    std::size_t max_idle_bytes = 0;
  };

  static OutputPool& global();

  // A page-aligned block of `nbytes` (nbytes >= kMinBytes); std::bad_alloc if none.
  void* take(std::size_t nbytes);
  // Returns a block from take(nbytes): kept for reuse, or unmapped when the pool is full.
  void give(void* block, std::size_t nbytes) noexcept;
  // Unmaps every idle block; returns the bytes freed.
  std::size_t release();
  std::size_t idle_bytes();
  Stats stats();
  void reset_peak();
  // idle_seconds > 0 (std::invalid_argument otherwise); max_idle_bytes 0 keeps nothing idle.
  void set_limits(double idle_seconds, std::size_t max_idle_bytes);

  // fork() handlers (hybrid/fork.h).
  void fork_prepare();
  void fork_parent();
  void fork_child();

 private:
  struct Idle {
    void* block;
    std::size_t nbytes;
    int64_t since_ns;  // steady clock, when it was given back
  };
  struct Batch {  // blocks to unmap outside the lock; fixed size, so give() never allocates
    Idle items[kMaxIdleBlocks + 1];
    std::size_t n = 0;
    void push(const Idle& idle) { items[n++] = idle; }
  };

  OutputPool() = default;
  void trim_loop();
  // Moves the blocks idle since before now_ns - idle_seconds into `out`.
  void expire_locked(int64_t now_ns, Batch& out);
  void start_trimmer_locked() noexcept;
  static void unmap(const Batch& blocks) noexcept;

  std::mutex mu_;
  std::condition_variable cv_;  // wakes the trimmer when the limits change
  std::vector<Idle> idle_;      // oldest first (append on give)
  Stats stats_;
  int64_t idle_ns_ = static_cast<int64_t>(kDefaultIdleSeconds * 1e9);
  std::size_t max_idle_bytes_ = kDefaultMaxIdleBytes;
  bool trimmer_running_ = false;
};

}  // namespace hybrid
