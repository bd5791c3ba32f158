"""Memory planning: offsets for a fused program's intermediate buffers, one arena per memory
space (the CPU has one, "host"; a GPU target adds "device"): each space is planned on its own,
and an in-place reuse never crosses spaces.

Input is the liveness interval [first, last] of every buffer (step indices, both ends inclusive).
First, in-place candidates whose input dies at the writing step are merged with their output into
one interval. Then "greedy by size" (TFLite's ArenaPlanner; Pisarchyk & Lee 2020): largest first,
each at the lowest offset that does not collide with an already-placed buffer live at the same
time. O(n^2) in the number of buffers, which is fine for the few hundred a program has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class BufferUse:
    """One intermediate buffer: its size and the steps that write it first and read it last."""

    id: int
    nbytes: int
    first: int
    last: int
    space: str = "host"


@dataclass(frozen=True)
class InplaceCandidate:
    """Step `step` reads `inp` and writes `out` elementwise (same size): `out` may reuse `inp`."""

    out: int
    inp: int
    step: int


@dataclass
class MemoryPlan:
    """Offsets for every buffer (in its space's arena), the arena sizes, and the numbers to
    judge them by (summed over the spaces)."""

    offsets: dict[int, int]
    arena_bytes: int  # all spaces together
    peak_bytes: int
    naive_bytes: int
    inplace: list[tuple[int, int]] = field(default_factory=list)
    arenas: dict[str, int] = field(default_factory=dict)  # space -> its arena's bytes

    def describe(self) -> str:
        """A few readable lines: arena, peak, naive, savings and in-place reuses."""
        saved = self.naive_bytes - self.arena_bytes
        pct = 100.0 * saved / self.naive_bytes if self.naive_bytes else 0.0
        spaces = "".join(f", {name} {_fmt(n)}" for name, n in sorted(self.arenas.items())
                         if len(self.arenas) > 1)
        lines = [
            f"arena  {_fmt(self.arena_bytes)} for {len(self.offsets)} buffers{spaces}",
            f"peak   {_fmt(self.peak_bytes)} (lower bound)",
            f"naive  {_fmt(self.naive_bytes)}: the plan saves {_fmt(saved)} ({pct:.1f}%)",
        ]
        if self.inplace:
            pairs = ", ".join(f"b{out} in place of b{inp}" for out, inp in self.inplace)
            lines.append(f"in-place: {pairs}")
        return "\n".join(lines)


def _fmt(n: int) -> str:
    for shift, unit in ((30, "GiB"), (20, "MiB"), (10, "KiB")):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit} ({n} B)"
    return f"{n} B"


def _round_up(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def _validate(buffers: Sequence[BufferUse], alignment: int) -> dict[int, BufferUse]:
    if alignment <= 0:
        raise ValueError(f"plan_memory: alignment must be positive, got {alignment}")
    by_id: dict[int, BufferUse] = {}
    for b in buffers:
        if b.id in by_id:
            raise ValueError(f"plan_memory: buffer id {b.id} appears twice")
        if b.nbytes < 0 or b.first < 0 or b.last < b.first or not b.space:
            raise ValueError(f"plan_memory: bad buffer {b} (need nbytes >= 0, 0 <= first <= last)")
        by_id[b.id] = b
    return by_id


def _merge_inplace(
    by_id: dict[int, BufferUse], candidates: Sequence[InplaceCandidate]
) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """Accept the legal candidates, in order; return each buffer's chain head and the pairs."""
    pred: dict[int, int] = {}  # out -> inp
    succ: dict[int, int] = {}  # inp -> out
    pairs: list[tuple[int, int]] = []

    def head(i: int) -> int:
        while i in pred:
            i = pred[i]
        return i

    for c in candidates:
        if c.out not in by_id or c.inp not in by_id:
            raise ValueError(f"plan_memory: in-place candidate {c} names an unknown buffer")
        out, inp = by_id[c.out], by_id[c.inp]
        legal = (
            inp.last == c.step == out.first  # inp dies at the kernel that first writes out
            and inp.nbytes == out.nbytes > 0
            and c.out not in pred  # out takes over at most one buffer ...
            and c.inp not in succ  # ... and each buffer is taken over at most once
            and head(c.inp) != c.out  # no cycles (possible only when everything is at one step)
            and inp.space == out.space
        )
        if legal:
            pred[c.out], succ[c.inp] = c.inp, c.out
            pairs.append((c.out, c.inp))
    return {i: head(i) for i in by_id}, pairs


def _peak(intervals: list[tuple[int, int, int]]) -> int:
    """Max over steps of the total size live at that step; intervals are (first, last, size)."""
    starts = [(first, 1, size) for first, _, size in intervals]
    ends = [(last + 1, 0, -size) for _, last, size in intervals]
    events = sorted(starts + ends)
    live = peak = 0
    for _, _, delta in events:  # NOTE: at equal steps, frees (kind 0) sort before allocations
        live += delta
        peak = max(peak, live)
    return peak


def plan_memory(
    buffers: Sequence[BufferUse],
    inplace: Sequence[InplaceCandidate] = (),
    alignment: int = 64,
) -> MemoryPlan:
    """Offsets in each space's arena for `buffers` (greedy by size), reusing in-place where
    legal."""
    by_id = _validate(buffers, alignment)
    heads, pairs = _merge_inplace(by_id, inplace)
    offsets: dict[int, int] = {}
    arenas: dict[str, int] = {}
    peak = 0
    for space in sorted({b.space for b in buffers}):
        mine = [b for b in buffers if b.space == space]
        arenas[space], space_peak = _place(mine, heads, alignment, offsets)
        peak += space_peak
    return MemoryPlan(offsets=offsets, arena_bytes=sum(arenas.values()), peak_bytes=peak,
                      naive_bytes=sum(_round_up(b.nbytes, alignment) for b in buffers),
                      inplace=pairs, arenas=arenas)


def _place(buffers: list[BufferUse], heads: dict[int, int], alignment: int,
           offsets: dict[int, int]) -> tuple[int, int]:
    """Greedy-by-size offsets of one space's buffers into `offsets`; (arena bytes, peak)."""
    # One interval per in-place chain, keyed by its head (the buffer that exists first).
    groups: dict[int, list[int]] = {}  # head -> [first, last, aligned size]
    for b in buffers:
        size = _round_up(b.nbytes, alignment)
        g = groups.setdefault(heads[b.id], [b.first, b.last, size])
        g[0], g[1] = min(g[0], b.first), max(g[1], b.last)

    order = sorted(groups, key=lambda h: (-groups[h][2], groups[h][0], h))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    group_offset: dict[int, int] = {}
    for h in order:
        first, last, size = groups[h]
        offset = 0
        if size > 0:
            live = sorted(p for p in placed if p[2] <= last and first <= p[3])
            for p_off, p_size, _, _ in live:
                if p_off - offset >= size:
                    break  # the gap below this buffer fits
                offset = max(offset, p_off + p_size)
            placed.append((offset, size, first, last))
        group_offset[h] = offset
    offsets.update({b.id: group_offset[heads[b.id]] for b in buffers})
    return (max((off + size for off, size, _, _ in placed), default=0),
            _peak([(first, last, size) for first, last, size in groups.values()]))


def check_plan(buffers: Sequence[BufferUse], plan: MemoryPlan) -> None:
    """Raise AssertionError naming two buffers that are live together and overlap in memory."""
    by_id = {b.id: b for b in buffers}
    root = {b.id: b.id for b in buffers}  # in-place chains may share storage while live

    def find(i: int) -> int:
        while root[i] != i:
            i = root[i]
        return i

    for out, inp in plan.inplace:
        o, i = by_id[out], by_id[inp]
        if i.last != o.first or i.nbytes != o.nbytes or plan.offsets[out] != plan.offsets[inp]:
            raise AssertionError(
                f"memory plan: illegal in-place reuse of b{inp} by b{out}: {i} {o}"
            )
        root[find(out)] = find(inp)

    spans = []
    for b in buffers:
        if b.id not in plan.offsets:
            raise AssertionError(f"memory plan: no offset for b{b.id}")
        off = plan.offsets[b.id]
        end = off + b.nbytes
        arena = plan.arenas.get(b.space, plan.arena_bytes)
        if b.nbytes and (off < 0 or end > arena):
            raise AssertionError(
                f"memory plan: b{b.id} at bytes [{off}, {end}) is outside the arena"
            )
        if b.nbytes:
            spans.append((b, off))
    for k, (a, a_off) in enumerate(spans):
        for b, b_off in spans[k + 1 :]:
            live_together = a.first <= b.last and b.first <= a.last and a.space == b.space
            overlap = a_off < b_off + b.nbytes and b_off < a_off + a.nbytes
            if live_together and overlap and find(a.id) != find(b.id):
                raise AssertionError(
                    f"memory plan: b{a.id} (steps {a.first}..{a.last}, bytes {a_off}+{a.nbytes})"
                    f" and b{b.id} (steps {b.first}..{b.last}, bytes {b_off}+{b.nbytes}) overlap"
                )
