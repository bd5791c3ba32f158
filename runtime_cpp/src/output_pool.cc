#include "hybrid/output_pool.h"

#include <cstdlib>
#include <new>

#include "hybrid/arena.h"

namespace hybrid {

OutputPool& OutputPool::global() {
  // NOTE: never destroyed: arrays may give blocks back during interpreter shutdown.
  static OutputPool* pool = new OutputPool();
  return *pool;
}

void* OutputPool::take(std::size_t nbytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = idle_.find(nbytes);
    if (it != idle_.end() && !it->second.empty()) {
      void* block = it->second.back();
      it->second.pop_back();
      idle_bytes_ -= nbytes;
      return block;
    }
  }
  const std::size_t rounded = (nbytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
  void* block = std::aligned_alloc(kArenaAlignment, rounded);
  if (block == nullptr) throw std::bad_alloc();
  return block;
}

void OutputPool::give(void* block, std::size_t nbytes) noexcept {
  {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      std::vector<void*>& same = idle_[nbytes];
      if (same.size() < kMaxPerSize && idle_bytes_ + nbytes <= kMaxIdleBytes) {
        same.push_back(block);
        idle_bytes_ += nbytes;
        return;
      }
    } catch (...) {  // no memory for the list itself: free the block below
    }
  }
  std::free(block);
}

std::size_t OutputPool::release() {
  std::unordered_map<std::size_t, std::vector<void*>> idle;
  std::size_t freed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle.swap(idle_);
    freed = idle_bytes_;
    idle_bytes_ = 0;
  }
  for (auto& [nbytes, blocks] : idle) {
    for (void* block : blocks) std::free(block);
  }
  return freed;
}

std::size_t OutputPool::idle_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_bytes_;
}

}  // namespace hybrid
