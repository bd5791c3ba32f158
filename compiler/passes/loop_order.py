"""Loop order of a fused kernel: kept dims outer, reduced dims inner, size-1 dims dropped,
contiguous dims collapsed, a transposing elementwise kernel split into square tiles (the CPU
schedule's first pass, passes/schedule_cpu.py)."""

from __future__ import annotations

import math
from typing import Any

from compiler.kernel import Gather, Iota, Kernel, Load, Padded, Rand, Stage, walk


def _loop_order(rk: Any) -> tuple[int, ...]:
    kept = tuple(d for d in range(len(rk.shape)) if d not in rk.reduced)
    return kept + rk.reduced


def _exprs_strides(stages: list[Stage]) -> list[tuple[int, ...]]:
    out = []
    for s in stages:
        if s.kind in ("store", "scatter"):
            out.append(s.strides)
        for e in walk(s.expr):
            if isinstance(e, (Load, Gather, Padded, Iota)):
                out.append(e.strides)
            elif isinstance(e, Rand):
                out.append(e.lin)
        if s.index is not None:
            for e in walk(s.index):
                if isinstance(e, (Load, Gather, Iota)):
                    out.append(e.strides)
                elif isinstance(e, Rand):
                    out.append(e.lin)
    return out


def _permute_stage(s: Stage, order: tuple[int, ...]) -> Stage:
    return s.reindexed(lambda t: tuple(t[d] for d in order))


def _has_padded(stages: list[Stage]) -> bool:
    return any(isinstance(e, Padded) for s in stages for e in walk(s.expr))


def _collapse(shape: tuple[int, ...], groups: list[list[int]],
              all_strides: list) -> list[list[int]]:
    """Merge adjacent dims d, d+1 of a group when every stride list allows it."""
    out = []
    for g in groups:
        merged = [[g[0]]] if g else []
        for d in g[1:]:
            prev = merged[-1][-1]
            if all(st[prev] == st[d] * shape[d] for st in all_strides):
                merged[-1].append(d)
            else:
                merged.append([d])
        out.append(merged)
    return out


def finish(rk: Any) -> Kernel:
    """Put the kernel in loop order (kept dims outer, reduced inner), drop size-1 dims, collapse
    contiguous dims; the parallel split is over the outer dims."""
    order = _loop_order(rk)
    shape = tuple(rk.shape[d] for d in order)
    stages = [_permute_stage(s, order) for s in rk.kernel.stages]
    n_kept = len(shape) - len(rk.reduced)
    keep = [d for d in range(len(shape)) if shape[d] != 1]
    kept = [d for d in keep if d < n_kept]
    red = [d for d in keep if d >= n_kept]
    all_strides = _exprs_strides(stages)
    if _has_padded(stages) or rk.kernel.serial:
        groups = [[[d] for d in kept], [[d] for d in red]]
    else:
        groups = _collapse(shape, [kept, red], all_strides)
    dims = [g for part in groups for g in part]
    sizes = tuple(math.prod(shape[d] for d in g) for g in dims)

    def squash(t: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(t[g[-1]] for g in dims)

    # NOTE: padded loads only occur with single-dim groups (dims were not merged)
    new_stages = [s.reindexed(squash) for s in stages]
    n_outer_groups = len(groups[0])
    if rk.reduced:
        outer, inner = sizes[:n_outer_groups], sizes[n_outer_groups:]
    elif rk.kernel.serial:
        outer, inner = sizes, ()
    else:
        tiled = _tiled(sizes, new_stages) if not _has_padded(new_stages) else None
        if tiled is not None:
            sizes, new_stages = tiled
        outer, inner = sizes[:1], sizes[1:]
    k = rk.kernel
    return Kernel(k.name, k.args, outer, inner, new_stages, nodes=k.nodes, serial=k.serial)


# Side of the square tiles a transposing elementwise kernel is split into (a tile's load and
# store cache lines stay in L1 while it is written); the largest that divides both dims.
TILES = (16, 8, 4)


def _tiled(sizes: tuple[int, ...], stages: list[Stage]) -> tuple | None:
    """For an elementwise kernel that transposes (its stores contiguous along the last dim, a
    load contiguous along another dim `a`), the loop space with `a` and the last dim split
    into tiles: (other dims..., a / T, last / T, T, T). Written in store order, every load of
    the inner loop would land on another cache line; tile by tile, T lines of each."""
    last = len(sizes) - 1
    if last < 1 or any(s.kind != "store" or s.strides[last] != 1 for s in stages):
        return None
    a = next((d for s in stages for e in walk(s.expr)
              if isinstance(e, Load) and e.strides[last] not in (0, 1)
              for d in range(last) if e.strides[d] == 1), None)
    if a is None:
        return None
    t = next((t for t in TILES if sizes[a] % t == 0 and sizes[last] % t == 0
              and sizes[a] > t and sizes[last] > t), None)
    if t is None:
        return None
    others = [d for d in range(last) if d != a]

    def split(v: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(v[d] for d in others) + (v[a] * t, v[last] * t, v[a], v[last])

    new_sizes = tuple(sizes[d] for d in others) + (sizes[a] // t, sizes[last] // t, t, t)
    return new_sizes, [s.reindexed(split) for s in stages]
