#include "hybrid/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "hybrid/fork.h"

namespace hybrid {

namespace {

// True while the current thread runs a chunk; parallel_for then runs serially.
thread_local bool t_in_parallel = false;

class InParallelGuard {
 public:
  InParallelGuard() : previous_(t_in_parallel) { t_in_parallel = true; }
  ~InParallelGuard() { t_in_parallel = previous_; }
  InParallelGuard(const InParallelGuard&) = delete;
  InParallelGuard& operator=(const InParallelGuard&) = delete;

 private:
  bool previous_;
};

int64_t ceil_div(int64_t a, int64_t b) { return a / b + (a % b != 0); }

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or ThreadPool::kSpinMicros pass; returns done().
template <class Done>
bool spin_until(Done done) {
  const auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::microseconds(ThreadPool::kSpinMicros);
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) return done();
  }
}

}  // namespace

// One parallel_for call: chunks are claimed by index from an atomic counter.
struct ThreadPool::Job {
  const ChunkFn* fn = nullptr;  // owned by the caller, which outlives every chunk
  int64_t begin = 0;
  int64_t end = 0;
  int64_t chunk = 1;
  int64_t num_chunks = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;  // guards error; pairs with cv for the caller's wait
  std::condition_variable cv;
  std::exception_ptr error;
};

ThreadPool::ThreadPool(int num_threads) : num_threads_(num_threads) {
  if (num_threads < 1) {
    throw std::invalid_argument("ThreadPool: num_threads must be >= 1, got " +
                                std::to_string(num_threads));
  }
  workers_.reserve(static_cast<std::size_t>(num_threads - 1));
  try {
    for (int i = 1; i < num_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  } catch (...) {  // e.g. std::system_error: stop and join the workers already started
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& worker : workers_) worker.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    spin_until([&] { return stop_.load() || generation_.load() != seen; });
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_.load() || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
      job = job_;
    }
    // NOTE: a worker that wakes late may find the job finished (or already dropped);
    // run_chunks then claims nothing, and the shared_ptr keeps the counters alive.
    if (job) run_chunks(*job);
  }
}

void ThreadPool::run_chunks(Job& job) {
  InParallelGuard guard;
  for (;;) {
    const int64_t i = job.next.fetch_add(1);
    if (i >= job.num_chunks) return;
    if (!job.failed.load()) {
      const int64_t start = job.begin + i * job.chunk;  // < end: i * chunk < end - begin
      // NOTE: not start + chunk, which overflows when end is near INT64_MAX.
      const int64_t stop = start + std::min(job.chunk, job.end - start);
      try {
        (*job.fn)(start, stop);
      } catch (...) {
        std::lock_guard<std::mutex> lock(job.mu);
        if (!job.error) job.error = std::current_exception();
        job.failed.store(true);
      }
    }
    if (job.done.fetch_add(1) + 1 == job.num_chunks) {
      std::lock_guard<std::mutex> lock(job.mu);
      job.cv.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t begin, int64_t end, int64_t grain, const ChunkFn& fn) {
  if (end <= begin) return;
  int64_t n = 0;
  if (__builtin_sub_overflow(end, begin, &n)) {
    throw std::invalid_argument("parallel_for: range [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") is longer than INT64_MAX");
  }
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunk = std::max(grain, ceil_div(n, num_threads_));
  const int64_t num_chunks = ceil_div(n, chunk);
  if (t_in_parallel || num_chunks == 1) {
    fn(begin, end);
    return;
  }

  std::lock_guard<std::mutex> run_lock(run_mu_);
  std::shared_ptr<Job> job = take_job();
  job->fn = &fn;
  job->begin = begin;
  job->end = end;
  job->chunk = chunk;
  job->num_chunks = num_chunks;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = job;
    generation_.fetch_add(1);
  }
  cv_.notify_all();

  run_chunks(*job);  // the calling thread takes part
  if (!spin_until([&] { return job->done.load() == job->num_chunks; })) {
    std::unique_lock<std::mutex> lock(job->mu);
    job->cv.wait(lock, [&] { return job->done.load() == job->num_chunks; });
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_.reset();
  }
  if (job->error) std::rethrow_exception(job->error);
  spare_ = std::move(job);
}

std::shared_ptr<ThreadPool::Job> ThreadPool::take_job() {
  // NOTE: reusing the previous Job keeps parallel_for free of allocations. It is safe once
  // no worker holds it: job_ no longer points to it, so no new copies can appear, and the
  // acquire fence pairs with the release in the last holder's reference drop.
  if (spare_ && spare_.use_count() == 1) {
    std::atomic_thread_fence(std::memory_order_acquire);
    std::shared_ptr<Job> job = std::move(spare_);
    job->next.store(0);
    job->done.store(0);
    job->failed.store(false);
    job->error = nullptr;
    return job;
  }
  return std::make_shared<Job>();
}

// ---- process-wide pool -------------------------------------------------------------------

int default_num_threads() {
  if (const char* env = std::getenv("HYBRID_NUM_THREADS"); env != nullptr && *env != '\0') {
    char* tail = nullptr;
    const long value = std::strtol(env, &tail, 10);
    if (*tail != '\0' || value < 1 || value > INT_MAX) {
      throw std::invalid_argument(std::string("HYBRID_NUM_THREADS must be a positive integer, got '") + env +
                                  "'");
    }
    return static_cast<int>(value);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

namespace {

// NOTE: workers are started on the first parallel call, not at import, so that importing
// the runtime (or calling get_num_threads) never makes the process multi-threaded.
struct GlobalPool {
  GlobalPool() { install_fork_handlers(); }
  std::mutex mu;
  int num_threads = 0;  // 0: not yet read from the environment
  std::shared_ptr<ThreadPool> pool;
};

GlobalPool& global() {
  static GlobalPool g;
  return g;
}

int num_threads_locked(GlobalPool& g) {
  if (g.num_threads == 0) g.num_threads = default_num_threads();
  return g.num_threads;
}

std::shared_ptr<ThreadPool> acquire_pool() {
  GlobalPool& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  if (!g.pool) g.pool = std::make_shared<ThreadPool>(num_threads_locked(g));
  return g.pool;
}

}  // namespace

namespace detail {

void pool_fork_prepare() { global().mu.lock(); }
void pool_fork_parent() { global().mu.unlock(); }
void pool_fork_child() {
  GlobalPool& g = global();
  if (g.pool) {
    // NOTE: the workers do not exist in a forked child, so the pool (its locks possibly held
    // by a parallel_for of the parent, its condition variable with waiters that are gone)
    // can be neither used nor joined; leak it on purpose and let the child start a fresh one
    // on first use.
    std::make_unique<std::shared_ptr<ThreadPool>>(std::move(g.pool)).release();
  }
  g.mu.unlock();
}

}  // namespace detail

int get_num_threads() {
  GlobalPool& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  return num_threads_locked(g);
}

void set_num_threads(int n) {
  if (n < 1) {
    throw std::invalid_argument("set_num_threads: n must be >= 1, got " + std::to_string(n));
  }
  std::shared_ptr<ThreadPool> old;  // joined outside the lock, once its last user is done
  GlobalPool& g = global();
  std::lock_guard<std::mutex> lock(g.mu);
  g.num_threads = n;
  if (g.pool && g.pool->num_threads() != n) old = std::move(g.pool);
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const ChunkFn& fn) {
  if (t_in_parallel) {
    if (begin < end) fn(begin, end);
    return;
  }
  acquire_pool()->parallel_for(begin, end, grain, fn);
}

}  // namespace hybrid
