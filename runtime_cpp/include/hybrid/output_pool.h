// Memory for the large arrays a compiled call returns, reused across calls.
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace hybrid {

// A block freed by its array (when Python drops the output) comes back here, and the next call
// that returns an output of the same size takes it again: its pages are mapped and likely
// cached, where a fresh allocation of a few MiB is fresh pages from the kernel on every call
// (glibc serves it with mmap and returns it with munmap), which cost as much as the kernel
// that writes them (a 16 MiB output: 0.6 ms of faults for a 0.57 ms kernel).
class OutputPool {
 public:
  // Outputs smaller than this come from numpy's own allocator (which caches small blocks).
  static constexpr std::size_t kMinBytes = std::size_t{128} << 10;
  static constexpr std::size_t kMaxPerSize = 4;                   // idle blocks kept per size
  static constexpr std::size_t kMaxIdleBytes = std::size_t{1} << 30;  // idle bytes kept in all

  static OutputPool& global();

  // A 64-byte-aligned block of `nbytes` (nbytes >= kMinBytes); std::bad_alloc if none.
  void* take(std::size_t nbytes);
  // Returns a block from take(nbytes): kept for reuse, or freed when the pool is full.
  void give(void* block, std::size_t nbytes) noexcept;
  // Frees every idle block; returns the bytes freed.
  std::size_t release();
  std::size_t idle_bytes();

 private:
  std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> idle_;
  std::size_t idle_bytes_ = 0;
};

}  // namespace hybrid
