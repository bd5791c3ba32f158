"""Native memory of compiled functions: the output pool and the executors' arenas.

Large outputs (>= 128 KiB) of compiled calls come from a pool that takes back the blocks of
freed arrays, so that a loop does not page-fault fresh memory on every call. A block idle for
`idle_seconds` (2 s by default) is given back to the system, as are all idle blocks on
`empty_cache()` -- the counterparts of `torch.cuda.empty_cache()` / `torch.cuda.memory_stats()`.
"""

from __future__ import annotations

from hybrid import errors
from hybrid._native import runtime

__all__ = ["empty_cache", "memory_stats", "reset_peak_memory_stats", "set_pool_limits"]


def empty_cache() -> int:
    """Frees every idle block of the output pool (memory of dropped outputs); returns its bytes.

    Arrays still alive keep their memory; so do compiled functions (their arenas): drop those,
    or call `CompiledFunction.clear_cache()`, to free it."""
    return int(runtime.release_output_memory())


def memory_stats() -> dict[str, int | float]:
    """Counters of native memory, in bytes unless named otherwise.

    pool_idle_bytes / pool_idle_blocks: freed outputs kept for reuse;
    pool_in_use_bytes / pool_in_use_blocks: pooled outputs held by live arrays;
    pool_peak_in_use_bytes, pool_peak_bytes (in use + idle): highs since start or
    `reset_peak_memory_stats()`; pool_allocations (fresh blocks), pool_reuses (calls served
    from idle blocks), pool_trimmed_bytes (given back after idling or over the limits),
    pool_released_bytes (by `empty_cache()`); pool_idle_seconds, pool_max_idle_bytes (the
    limits); executors (live compiled plans) and executor_bytes (their arenas and constants)."""
    return dict(runtime.memory_stats())


def reset_peak_memory_stats() -> None:
    """Restarts the peak counters of `memory_stats()` from the current usage."""
    runtime.reset_peak_memory_stats()


def set_pool_limits(idle_seconds: float = 2.0, max_idle_bytes: int = 1 << 30) -> None:
    """Idle output blocks are freed after `idle_seconds` unused (> 0); at most
    `max_idle_bytes` are kept idle (0 disables reuse: every large output is fresh memory)."""
    if isinstance(max_idle_bytes, bool) or not isinstance(max_idle_bytes, int) or max_idle_bytes < 0:
        raise errors.error(ValueError, "set_pool_limits: max_idle_bytes must be an int >= 0, "
                           f"got {max_idle_bytes!r}")
    if isinstance(idle_seconds, bool) or not isinstance(idle_seconds, (int, float)) or not (
        0 < idle_seconds <= 1e9
    ):
        raise errors.error(ValueError, "set_pool_limits: idle_seconds must be a number in "
                           f"(0, 1e9], got {idle_seconds!r}")
    runtime.set_output_pool_limits(float(idle_seconds), max_idle_bytes)
