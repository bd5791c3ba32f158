// A persistent pool of worker threads that splits a 1-D range into contiguous chunks.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace hybrid {

// Body of a parallel loop: handles the half-open range [start, end).
using ChunkFn = std::function<void(int64_t start, int64_t end)>;

// Calling convention of compiled kernels: process outer iterations [start, end) reading
// and writing the buffers in `args` (a table of base pointers fixed by the plan).
typedef void (*KernelFn)(int64_t start, int64_t end, void** args);

// `num_threads` threads in all: the calling thread plus num_threads - 1 persistent workers.
// Between calls a worker spins for kSpinMicros before it sleeps on a condition variable, and
// a caller spins as long for the last chunk before it sleeps: in a virtual machine, waking a
// sleeping (halted) vCPU costs tens to hundreds of microseconds, more than a small kernel.
class ThreadPool {
 public:
  static constexpr int64_t kSpinMicros = 200;

  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Splits [begin, end) into at most num_threads() contiguous chunks of at least `grain`
  // iterations (grain <= 0 means 1), runs them on the workers and the calling thread, and
  // returns when all are done. The first exception thrown by a chunk is rethrown here
  // (chunks not yet started are then skipped). A call made from inside a chunk runs
  // serially on the current thread, so nesting never deadlocks.
  void parallel_for(int64_t begin, int64_t end, int64_t grain, const ChunkFn& fn);

 private:
  struct Job;

  void worker_loop();
  std::shared_ptr<Job> take_job();
  static void run_chunks(Job& job);

  int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex run_mu_;  // serializes top-level parallel_for calls from different threads
  std::mutex mu_;      // guards job_ and the writes of generation_ and stop_
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  std::shared_ptr<Job> spare_;  // the last finished Job, reused when no worker holds it
  std::atomic<uint64_t> generation_{0};  // read without the lock while spinning
  std::atomic<bool> stop_{false};
};

// Default thread count: env HYBRID_NUM_THREADS if set (a positive integer, else
// std::invalid_argument), otherwise std::thread::hardware_concurrency().
int default_num_threads();

// The process-wide pool used by the runtime and the bindings, created on first use.
int get_num_threads();
// Replaces the process-wide pool with one of `n` threads; n < 1 throws std::invalid_argument.
void set_num_threads(int n);
// parallel_for on the process-wide pool.
void parallel_for(int64_t begin, int64_t end, int64_t grain, const ChunkFn& fn);

}  // namespace hybrid
