#include "hybrid/output_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>

#include "hybrid/checked.h"
#include "hybrid/fork.h"

namespace hybrid {

namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::size_t mapped_size(std::size_t nbytes) {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return checked_add(nbytes, page - 1, "output size") / page * page;
}

}  // namespace

OutputPool& OutputPool::global() {
  // NOTE: never destroyed: arrays may give blocks back during interpreter shutdown.
  static OutputPool* pool = [] {
    install_fork_handlers();
    return new OutputPool();
  }();
  return *pool;
}

void* OutputPool::take(std::size_t nbytes) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // NOTE: the most recently returned block of this size first: its pages are the likeliest
    // to be cached. At most kMaxIdleBlocks entries to scan.
    for (auto it = idle_.rbegin(); it != idle_.rend(); ++it) {
      if (it->nbytes != nbytes) continue;
      void* block = it->block;
      idle_.erase(std::next(it).base());
      stats_.idle_bytes -= nbytes;
      stats_.idle_blocks -= 1;
      stats_.in_use_bytes += nbytes;
      stats_.in_use_blocks += 1;
      stats_.reuses += 1;
      stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
      return block;
    }
  }
  void* block = mmap(nullptr, mapped_size(nbytes), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block == MAP_FAILED) throw std::bad_alloc();
  std::lock_guard<std::mutex> lock(mu_);
  stats_.in_use_bytes += nbytes;
  stats_.in_use_blocks += 1;
  stats_.allocations += 1;
  stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
  stats_.peak_total_bytes =
      std::max(stats_.peak_total_bytes, stats_.in_use_bytes + stats_.idle_bytes);
  return block;
}

void OutputPool::give(void* block, std::size_t nbytes) noexcept {
  Batch unmapped;
  const int64_t now = now_ns();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.in_use_bytes -= nbytes;
    stats_.in_use_blocks -= 1;
    expire_locked(now, unmapped);
    const auto same = std::count_if(idle_.begin(), idle_.end(),
                                    [&](const Idle& i) { return i.nbytes == nbytes; });
    if (static_cast<std::size_t>(same) >= kMaxPerSize || nbytes > max_idle_bytes_) {
      unmapped.push({block, nbytes, now});
    } else {
      // Room for the block: the oldest idle blocks go first.
      std::size_t drop = 0;
      std::size_t bytes = stats_.idle_bytes;
      while (drop < idle_.size() &&
             (bytes + nbytes > max_idle_bytes_ || idle_.size() - drop >= kMaxIdleBlocks)) {
        bytes -= idle_[drop].nbytes;
        unmapped.push(idle_[drop++]);
      }
      idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(drop));
      stats_.idle_blocks -= drop;
      // NOTE: idle_ never exceeds kMaxIdleBlocks and reserves that once, so this does not
      // allocate after the first block; a failure to reserve unmaps the block instead.
      try {
        idle_.reserve(kMaxIdleBlocks);
        idle_.push_back({block, nbytes, now});
        stats_.idle_blocks += 1;
        stats_.idle_bytes = bytes + nbytes;
        start_trimmer_locked();
      } catch (...) {
        stats_.idle_bytes = bytes;
        unmapped.push({block, nbytes, now});
      }
    }
    for (std::size_t i = 0; i < unmapped.n; ++i) {
      if (unmapped.items[i].block != block) stats_.trimmed_bytes += unmapped.items[i].nbytes;
    }
  }
  unmap(unmapped);
}

void OutputPool::expire_locked(int64_t now, Batch& out) {
  std::size_t n = 0;
  while (n < idle_.size() && now - idle_[n].since_ns >= idle_ns_) {
    stats_.idle_bytes -= idle_[n].nbytes;
    out.push(idle_[n++]);
  }
  idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(n));
  stats_.idle_blocks -= n;
}

void OutputPool::unmap(const Batch& blocks) noexcept {
  for (std::size_t i = 0; i < blocks.n; ++i) {
    munmap(blocks.items[i].block, mapped_size(blocks.items[i].nbytes));
  }
}

void OutputPool::start_trimmer_locked() noexcept {
  if (trimmer_running_) return;
  try {
    std::thread([this] { trim_loop(); }).detach();
    trimmer_running_ = true;
  } catch (...) {  // no thread: blocks still expire on give() and with release()
  }
}

// NOTE: polls every idle_seconds instead of being woken by give(): a wake-up per call (idle
// going from empty to non-empty in a loop) would cost a context switch per compiled call.
// A block is therefore unmapped between idle_seconds and twice that after its last use.
void OutputPool::trim_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const int64_t now = now_ns();
    Batch expired;
    const std::size_t before = stats_.idle_bytes;
    expire_locked(now, expired);
    stats_.trimmed_bytes += before - stats_.idle_bytes;
    if (expired.n > 0) {
      lock.unlock();
      unmap(expired);
      lock.lock();
      continue;
    }
    const int64_t wait = idle_.empty() ? idle_ns_ : idle_.front().since_ns + idle_ns_ - now;
    cv_.wait_for(lock, std::chrono::nanoseconds(std::max<int64_t>(wait, 1000000)));
  }
}

std::size_t OutputPool::release() {
  std::vector<Idle> idle;
  std::size_t freed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle.swap(idle_);
    freed = stats_.idle_bytes;
    stats_.idle_bytes = 0;
    stats_.idle_blocks = 0;
    stats_.released_bytes += freed;
  }
  for (const Idle& i : idle) munmap(i.block, mapped_size(i.nbytes));
  return freed;
}

std::size_t OutputPool::idle_bytes() {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_.idle_bytes;
}

OutputPool::Stats OutputPool::stats() {
  std::lock_guard<std::mutex> lock(mu_);
  Stats out = stats_;
  out.idle_seconds = static_cast<double>(idle_ns_) / 1e9;
  out.max_idle_bytes = max_idle_bytes_;
  return out;
}

void OutputPool::reset_peak() {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.peak_in_use_bytes = stats_.in_use_bytes;
  stats_.peak_total_bytes = stats_.in_use_bytes + stats_.idle_bytes;
}

void OutputPool::set_limits(double idle_seconds, std::size_t max_idle_bytes) {
  if (!(idle_seconds > 0) || idle_seconds > 1e9) {
    throw std::invalid_argument("set_output_pool_limits: idle_seconds must be > 0, got " +
                                std::to_string(idle_seconds));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_ns_ = static_cast<int64_t>(idle_seconds * 1e9);
    max_idle_bytes_ = max_idle_bytes;
  }
  cv_.notify_all();
}

void OutputPool::fork_prepare() { mu_.lock(); }
void OutputPool::fork_parent() { mu_.unlock(); }
void OutputPool::fork_child() {
  // NOTE: the trimmer thread does not exist in the child: its condition variable may still
  // count it as a waiter, so it is rebuilt, and the next idle block starts a new trimmer.
  new (&cv_) std::condition_variable();
  trimmer_running_ = false;
  mu_.unlock();
}

}  // namespace hybrid
