#include "hybrid/fork.h"

#include <pthread.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "hybrid/executor.h"
#include "hybrid/output_pool.h"

namespace hybrid {

namespace {

// NOTE: one handler set, not one per component: pthread_atfork runs prepare handlers in reverse
// order of registration, which would make the lock order depend on which component happened to
// be used first. Executors come first because a run in flight holds its executor's lock while it
// takes the thread pool's.
void prepare() {
  Executor::fork_prepare();
  OutputPool::global().fork_prepare();
  detail::pool_fork_prepare();
}

void parent() {
  detail::pool_fork_parent();
  OutputPool::global().fork_parent();
  Executor::fork_parent();
}

void child() {
  detail::pool_fork_child();
  OutputPool::global().fork_child();
  Executor::fork_child();
}

}  // namespace

void install_fork_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (pthread_atfork(prepare, parent, child) != 0) {
      // NOTE: only ENOMEM; without the handlers a forked child may deadlock, so say so.
      std::fputs("hybrid_runtime: pthread_atfork failed; fork() is not safe\n", stderr);
    }
  });
}

}  // namespace hybrid
