// fork() safety: one set of pthread_atfork handlers for every native lock, in a fixed order.
#pragma once

namespace hybrid {

// Installs the handlers once per process (idempotent, cheap after the first call). Called by
// every object that owns a process-wide lock before it is first used:
//   prepare: executors' registry, every executor's run lock (waits for calls in flight to
//            finish), the output pool, the thread pool's global lock -- always in this order;
//   parent:  releases them in reverse order;
//   child:   releases/reinitializes them; the thread pool and the output pool's trimmer thread
//            do not exist in the child and are recreated on first use.
void install_fork_handlers();

namespace detail {
// The thread pool's part (thread_pool.cc).
void pool_fork_prepare();
void pool_fork_parent();
void pool_fork_child();
}  // namespace detail

}  // namespace hybrid
