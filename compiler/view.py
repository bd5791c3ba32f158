"""Strided views: how movement ops (permute, expand, slice, contiguous reshape) become strides and
an offset over a buffer, so that kernels read through them without copies."""

from __future__ import annotations

import math
from dataclasses import dataclass


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, acc = [], 1
    for s in reversed(shape):
        strides.append(acc)
        acc *= s
    return tuple(reversed(strides))


@dataclass(frozen=True)
class View:
    """Element (c0, c1, ...) of the view is element offset + sum(c_i * strides_i) of the buffer."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    offset: int = 0

    @staticmethod
    def contiguous(shape: tuple[int, ...]) -> View:
        return View(tuple(shape), contiguous_strides(tuple(shape)), 0)

    def is_contiguous(self) -> bool:
        return self.offset == 0 and all(
            st == cs for s, st, cs in zip(self.shape, self.strides, contiguous_strides(self.shape))
            if s != 1
        )

    def permute(self, perm: tuple[int, ...]) -> View:
        return View(tuple(self.shape[p] for p in perm), tuple(self.strides[p] for p in perm),
                    self.offset)

    def expand(self, shape: tuple[int, ...]) -> View:
        """numpy broadcasting to `shape` (new leading dims and size-1 dims get stride 0)."""
        lead = len(shape) - len(self.shape)
        strides = [0] * lead
        for i, (s, st) in enumerate(zip(self.shape, self.strides)):
            strides.append(0 if s == 1 and shape[lead + i] != 1 else st)
        return View(tuple(shape), tuple(strides), self.offset)

    def slice(self, starts, stops, steps) -> View:
        offset = self.offset + sum(b * st for b, st in zip(starts, self.strides))
        shape = tuple((e - b + s - 1) // s for b, e, s in zip(starts, stops, steps))
        strides = tuple(st * s for st, s in zip(self.strides, steps))
        return View(shape, strides, offset)

    def reshape(self, shape: tuple[int, ...]) -> View | None:
        """The same elements as `shape` without a copy, or None when strides cannot express it."""
        shape = tuple(shape)
        if math.prod(shape) == 0 or math.prod(self.shape) == 0:
            return View(shape, contiguous_strides(shape), self.offset)
        old = [(s, st) for s, st in zip(self.shape, self.strides) if s != 1]
        new_sizes = [s for s in shape if s != 1]
        new_strides: list[int] = []
        i = j = 0
        while i < len(old) and j < len(new_sizes):
            # take the smallest groups of old and new dims with equal element counts
            oi, nj = i + 1, j + 1
            po, pn = old[i][0], new_sizes[j]
            while po != pn:
                if po < pn:
                    po *= old[oi][0]
                    oi += 1
                else:
                    pn *= new_sizes[nj]
                    nj += 1
            for k in range(i, oi - 1):  # the old group must be one contiguous run
                if old[k][1] != old[k + 1][1] * old[k + 1][0]:
                    return None
            stride = old[oi - 1][1]
            group = []
            for k in range(nj - 1, j - 1, -1):
                group.append(stride)
                stride *= new_sizes[k]
            new_strides.extend(reversed(group))
            i, j = oi, nj
        it = iter(new_strides)
        strides = tuple(next(it) if s != 1 else 0 for s in shape)
        return View(shape, strides, self.offset)


def blas_layout(shape: tuple[int, int], strides: tuple[int, int]) -> tuple[bool, int] | None:
    """How row-major BLAS reads a [rows, cols] matrix with these strides: (transposed, leading
    dimension), or None when it cannot (e.g. broadcast rows of stride 0). The one rule both
    fusion (which views may feed a GEMM) and lowering (the GEMM step's trans/ld) use."""
    r, c = shape
    rs, cs = strides
    if (cs == 1 or c == 1) and (r == 1 or rs >= max(c, 1)):
        return False, max(rs, c, 1)
    if (rs == 1 or r == 1) and (c == 1 or cs >= max(r, 1)):
        return True, max(cs, r, 1)
    return None
