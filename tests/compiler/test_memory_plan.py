"""Memory planner: hand-made layouts, in-place rules, bounds and determinism on random programs."""

from __future__ import annotations

import random

import pytest

from compiler.passes.memory_plan import (
    BufferUse,
    InplaceCandidate,
    MemoryPlan,
    check_plan,
    plan_memory,
)


def chain(n: int, nbytes: int = 256) -> list[BufferUse]:
    """b0 -> b1 -> ... : step i reads b(i-1) and writes b(i)."""
    return [BufferUse(i, nbytes, i, i + 1) for i in range(n)]


def plan_and_check(buffers, inplace=(), alignment=64) -> MemoryPlan:
    plan = plan_memory(buffers, inplace, alignment)
    check_plan(buffers, plan)
    assert plan.peak_bytes <= plan.arena_bytes <= plan.naive_bytes
    assert all(off % alignment == 0 for off in plan.offsets.values())
    return plan


def test_chain_ping_pongs_between_two_slots():
    plan = plan_and_check(chain(4))
    assert plan.offsets == {0: 0, 1: 256, 2: 0, 3: 256}
    assert (plan.arena_bytes, plan.peak_bytes, plan.naive_bytes) == (512, 512, 1024)
    assert plan.inplace == []


def test_equal_chain_arena_equals_peak():
    for n in range(1, 12):
        plan = plan_and_check(chain(n, 1000))
        assert plan.arena_bytes == plan.peak_bytes == min(n, 2) * 1024


def test_largest_buffer_is_placed_first():
    bufs = [BufferUse(0, 64, 0, 0), BufferUse(1, 1024, 0, 2), BufferUse(2, 64, 2, 2)]
    plan = plan_and_check(bufs)
    assert plan.offsets == {0: 1024, 1: 0, 2: 1024}
    assert plan.arena_bytes == plan.peak_bytes == 1088


def test_reuses_space_below_a_live_buffer():
    # b0 dies after step 1; b2 (live at steps 2..3) then fits below b1, which still occupies 512+.
    bufs = [BufferUse(0, 512, 0, 1), BufferUse(1, 256, 0, 3), BufferUse(2, 256, 2, 3)]
    plan = plan_and_check(bufs)
    assert plan.offsets == {0: 0, 1: 512, 2: 0}
    assert plan.arena_bytes == plan.peak_bytes == 768


def test_inplace_chain_shares_one_slot():
    bufs = chain(4)
    cands = [InplaceCandidate(out=i, inp=i - 1, step=i) for i in range(1, 4)]
    plan = plan_and_check(bufs, cands)
    assert plan.inplace == [(1, 0), (2, 1), (3, 2)]
    assert plan.offsets == {0: 0, 1: 0, 2: 0, 3: 0}
    assert plan.arena_bytes == plan.peak_bytes == 256  # merged intervals count once in the peak
    assert plan.naive_bytes == 1024


def test_inplace_refused_when_input_is_read_later():
    # step 1 computes b1 = relu(b0), but step 3 reads b0 again: b0 must survive step 1.
    bufs = [BufferUse(0, 256, 0, 3), BufferUse(1, 256, 1, 2), BufferUse(2, 256, 2, 3)]
    plan = plan_and_check(bufs, [InplaceCandidate(out=1, inp=0, step=1)])
    assert plan.inplace == []
    assert plan.offsets[0] != plan.offsets[1]


@pytest.mark.parametrize(
    "bufs, cand",
    [
        ([BufferUse(0, 256, 0, 1), BufferUse(1, 128, 1, 2)], InplaceCandidate(1, 0, 1)),  # size
        ([BufferUse(0, 256, 0, 1), BufferUse(1, 256, 2, 3)], InplaceCandidate(1, 0, 1)),  # step
        ([BufferUse(0, 256, 0, 1), BufferUse(1, 256, 1, 2)], InplaceCandidate(1, 0, 0)),  # step
        ([BufferUse(0, 0, 0, 1), BufferUse(1, 0, 1, 2)], InplaceCandidate(1, 0, 1)),  # empty
        ([BufferUse(0, 256, 0, 1)], InplaceCandidate(0, 0, 1)),  # itself
    ],
)
def test_illegal_inplace_candidates_are_ignored(bufs, cand):
    assert plan_and_check(bufs, [cand]).inplace == []


def test_input_is_taken_over_at_most_once():
    # step 1 writes b1 and b2 from b0 (b0 dies there): only the first candidate can take b0.
    bufs = [BufferUse(0, 256, 0, 1), BufferUse(1, 256, 1, 2), BufferUse(2, 256, 1, 2)]
    cands = [InplaceCandidate(1, 0, 1), InplaceCandidate(2, 0, 1)]
    plan = plan_and_check(bufs, cands)
    assert plan.inplace == [(1, 0)]
    assert plan.offsets[1] == plan.offsets[0] != plan.offsets[2]


def test_no_inplace_cycle_within_one_step():
    bufs = [BufferUse(0, 256, 1, 1), BufferUse(1, 256, 1, 1)]
    cands = [InplaceCandidate(1, 0, 1), InplaceCandidate(0, 1, 1)]
    assert plan_and_check(bufs, cands).inplace == [(1, 0)]


def test_zero_size_buffers_take_no_space():
    bufs = [BufferUse(0, 0, 0, 5), BufferUse(1, 100, 0, 5), BufferUse(2, 0, 2, 3)]
    plan = plan_and_check(bufs)
    assert plan.offsets == {0: 0, 1: 0, 2: 0}
    assert (plan.arena_bytes, plan.peak_bytes, plan.naive_bytes) == (128, 128, 128)
    assert plan_and_check([BufferUse(0, 0, 0, 0)]).arena_bytes == 0
    assert plan_and_check([]).arena_bytes == 0


def test_sizes_and_offsets_are_aligned():
    bufs = [BufferUse(0, 1, 0, 2), BufferUse(1, 65, 0, 2), BufferUse(2, 100, 0, 2)]
    plan = plan_and_check(bufs)
    assert plan.naive_bytes == plan.arena_bytes == 64 + 128 + 128
    plan = plan_and_check(bufs, alignment=256)
    assert sorted(plan.offsets.values()) == [0, 256, 512]
    assert plan.arena_bytes == 768


def test_check_plan_names_the_conflicting_buffers():
    bufs = [BufferUse(0, 256, 0, 2), BufferUse(7, 256, 1, 3)]
    bad = MemoryPlan(offsets={0: 0, 7: 128}, arena_bytes=384, peak_bytes=512, naive_bytes=512)
    with pytest.raises(AssertionError, match=r"b0 .*b7 .*overlap"):
        check_plan(bufs, bad)
    # the same offsets are fine once the lifetimes no longer overlap
    check_plan([BufferUse(0, 256, 0, 0), BufferUse(7, 256, 1, 3)], bad)


def test_check_plan_rejects_bad_inplace_and_out_of_arena():
    bufs = [BufferUse(0, 256, 0, 2), BufferUse(1, 256, 1, 3)]
    claimed = MemoryPlan({0: 0, 1: 0}, 256, 256, 512, inplace=[(1, 0)])
    with pytest.raises(AssertionError, match="illegal in-place reuse of b0 by b1"):
        check_plan(bufs, claimed)
    with pytest.raises(AssertionError, match="outside the arena"):
        check_plan(bufs, MemoryPlan({0: 0, 1: 256}, 256, 512, 512))
    with pytest.raises(AssertionError, match="no offset for b1"):
        check_plan(bufs, MemoryPlan({0: 0}, 256, 512, 512))


def test_bad_input_raises():
    with pytest.raises(ValueError, match="appears twice"):
        plan_memory([BufferUse(0, 8, 0, 1), BufferUse(0, 8, 1, 2)])
    with pytest.raises(ValueError, match="bad buffer"):
        plan_memory([BufferUse(0, 8, 2, 1)])
    with pytest.raises(ValueError, match="unknown buffer"):
        plan_memory([BufferUse(0, 8, 0, 1)], [InplaceCandidate(1, 0, 1)])
    with pytest.raises(ValueError, match="alignment"):
        plan_memory([], alignment=0)


def test_describe():
    plan = plan_memory(chain(3, 1024), [InplaceCandidate(2, 1, 2)])
    text = plan.describe()
    assert text.splitlines() == [
        "arena  2.0 KiB (2048 B) for 3 buffers",
        "peak   2.0 KiB (2048 B) (lower bound)",
        "naive  3.0 KiB (3072 B): the plan saves 1.0 KiB (1024 B) (33.3%)",
        "in-place: b2 in place of b1",
    ]


def random_program(rng: random.Random) -> tuple[list[BufferUse], list[InplaceCandidate]]:
    """Random intervals and sizes; about half of the candidates are legal by construction."""
    steps = rng.randint(1, 30)
    bufs: list[BufferUse] = []
    cands: list[InplaceCandidate] = []
    for i in range(rng.randint(0, 40)):
        nbytes = rng.choice([0, 1, 64, 100, 256, 1000, 4096, rng.randint(1, 10_000)])
        first = rng.randint(0, steps - 1)
        if bufs and rng.random() < 0.3:  # an elementwise kernel whose input may die here
            inp = rng.choice(bufs)
            first, nbytes = inp.last, inp.nbytes
            cands.append(InplaceCandidate(i, inp.id, first))
        bufs.append(BufferUse(i, nbytes, first, rng.randint(first, min(first + 8, steps))))
    for _ in range(rng.randint(0, 5)):  # noise: mostly illegal
        if bufs:
            a, b = rng.choice(bufs), rng.choice(bufs)
            cands.append(InplaceCandidate(a.id, b.id, rng.randint(0, steps)))
    rng.shuffle(cands)
    return bufs, cands


def test_random_programs_plan_legally_within_bounds():
    rng = random.Random(0)
    n_inplace = 0
    for _ in range(400):
        bufs, cands = random_program(rng)
        alignment = rng.choice([1, 16, 64, 256])
        plan = plan_and_check(bufs, cands, alignment)
        n_inplace += len(plan.inplace)
        assert set(plan.offsets) == {b.id for b in bufs}
        assert plan_memory(bufs, cands, alignment) == plan  # deterministic
    assert n_inplace > 100  # the random programs do exercise in-place reuse


def test_offsets_do_not_depend_on_buffer_order():
    rng = random.Random(1)
    for _ in range(100):
        bufs, _ = random_program(rng)
        shuffled = rng.sample(bufs, len(bufs))
        assert plan_memory(shuffled).offsets == plan_memory(bufs).offsets


def test_each_memory_space_has_its_own_arena():
    """Buffers of two spaces live at the same time may take the same offsets (different
    memories); an in-place reuse never crosses spaces; in one space they never overlap."""
    bufs = [BufferUse(0, 256, 0, 2, "host"), BufferUse(1, 256, 0, 2, "device"),
            BufferUse(2, 128, 1, 2, "host"), BufferUse(3, 256, 2, 3, "device")]
    plan = plan_memory(bufs, [InplaceCandidate(3, 0, 2)])
    check_plan(bufs, plan)
    assert plan.arenas == {"host": 384, "device": 512}
    assert plan.arena_bytes == 896
    assert plan.offsets[0] == plan.offsets[1] == 0  # one offset, two memories
    assert plan.inplace == []  # b3 (device) does not take over b0 (host)
    same = plan_memory([BufferUse(0, 256, 0, 2), BufferUse(3, 256, 2, 3)],
                       [InplaceCandidate(3, 0, 2)])
    assert same.inplace == [(3, 0)] and same.arenas == {"host": 256}


def test_check_plan_finds_an_overlap_within_a_space_only():
    bufs = [BufferUse(0, 256, 0, 1, "host"), BufferUse(1, 256, 0, 1, "device")]
    overlapping = MemoryPlan({0: 0, 1: 0}, 512, 512, 512, arenas={"host": 256, "device": 256})
    check_plan(bufs, overlapping)  # different memories: fine
    one_space = [BufferUse(0, 256, 0, 1), BufferUse(1, 256, 0, 1)]
    with pytest.raises(AssertionError, match="overlap"):
        check_plan(one_space, MemoryPlan({0: 0, 1: 0}, 256, 512, 512, arenas={"host": 256}))
