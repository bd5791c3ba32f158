"""Impossible sizes in a plan are clear ValueErrors (MemoryError for an arena that
cannot be allocated), never undefined behaviour: huge kernel ranges, overflowing strides,
offsets past the arena or the int64 range, shapes whose size overflows, and the thread pool's
range split next to INT64_MAX."""

import hybrid_runtime
import pytest
from test_executor import good_desc, jit  # noqa: F401  (jit: the fixture good_desc needs)

INT64_MAX = 2**63 - 1


@pytest.mark.parametrize(
    "mutate, message",
    [
        # a kernel range longer than every argument: it could only read/write out of bounds
        (lambda d: d.plan["steps"][0].update(n=2**40),
         (r"step 0: kernel 'double_f32' range n=1099511627776 is longer than its largest "
          r"argument \(4 elements\)")),
        (lambda d: d.plan["steps"][0].update(n=INT64_MAX, grain=2**62), r"range n=9223372036854775807"),
        (lambda d: d.plan["steps"][0].update(n=5), r"range n=5 is longer"),
        # GEMM sizes, strides and offsets whose products or sums overflow int64
        (lambda d: d.plan["steps"][2].update(batch=2**40, stride_a=2**40),
         r"step 2: A: size overflows int64"),
        (lambda d: d.plan["steps"][2].update(batch=4, stride_c=2**62), r"step 2: C: size overflows int64"),
        (lambda d: d.plan["steps"][2].update(a_offset=INT64_MAX), r"step 2: A: size overflows int64"),
        (lambda d: d.plan["steps"][2].update(batch=2**40, stride_b=1),
         r"step 2: B \(b0\) is accessed up to element 1099511627779"),
        (lambda d: d.plan["steps"][2].update(m=2**31), r"m, n, k and leading dims must be in \[0, 2\^31\)"),
        (lambda d: d.plan["steps"][2].update(lda=2**40), r"leading dims must be in \[0, 2\^31\)"),
        (lambda d: d.plan["steps"][2].update(stride_a=-1), r"offsets and strides must be >= 0"),
        # arena buffers past the arena, or past int64
        (lambda d: d.plan["buffers"][1].update(offset=2**62),
         r"b1: \[4611686018427387904, 4611686018427387920\) overflows the arena of 32 bytes"),
        (lambda d: d.plan["buffers"][1].update(offset=INT64_MAX - 7), r"buffer b1: size overflows int64"),
        (lambda d: d.plan["buffers"][1].update(offset=-16), r"buffer b1: negative field"),
        # shapes whose element count or byte size overflows
        (lambda d: d.plan["buffers"][1].update(shape=[2**32, 2**32]), r"buffer b1: size overflows int64"),
        (lambda d: d.plan["buffers"][1].update(shape=[2**61], nbytes=2**63 - 1),
         r"buffer b1: size overflows int64"),
        # copies past int64 or past their buffers
        (lambda d: d.plan["steps"][1].update(src_offset=INT64_MAX), r"step 1: size overflows int64"),
        (lambda d: d.plan["steps"][1].update(dst_offset=2**62), r"step 1: copy range overflows"),
        # integers that do not fit int64 at all
        (lambda d: d.plan["steps"][0].update(n=2**64), r"step 0: 'n' must be an integer"),
        (lambda d: d.plan.update(arena_bytes=2**70), r"plan: 'arena_bytes' must be an integer"),
    ],
)
def test_impossible_sizes_are_clear_errors(jit, mutate, message):  # noqa: F811
    desc = good_desc(jit)
    desc.build()  # the unmodified plan is fine
    mutate(desc)
    with pytest.raises(ValueError, match=message):
        desc.build()


def test_arena_too_large_to_allocate_is_a_memory_error(jit):  # noqa: F811
    desc = good_desc(jit)
    desc.plan["arena_bytes"] = 2**62  # valid as a plan, impossible to allocate
    with pytest.raises(MemoryError):
        desc.build()


def test_run_kernel_rejects_negative_ranges():
    with pytest.raises(ValueError, match="n must be >= 0"):
        hybrid_runtime.run_kernel(1, -1, [])


@pytest.mark.parametrize("num_threads", [2, 3, 4, 7])
def test_range_split_next_to_int64_max(threads, num_threads):
    """Chunks of [0, INT64_MAX) cover it exactly: the last chunk ends at INT64_MAX (its end was
    computed as start + chunk, which overflowed, and the chunk holding k never ran)."""
    threads(num_threads)
    k = INT64_MAX - 1
    with pytest.raises(RuntimeError, match=rf"\) failed at index {k}") as err:
        hybrid_runtime._parallel_for_raise_at(INT64_MAX, k)
    assert str(err.value).endswith(f", {INT64_MAX}) failed at index {k}")
