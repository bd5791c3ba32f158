"""hybrid.autograd.profiler: `profile()` times the block and the `record_function(name)` spans
inside it; `key_averages().table()` prints calls, total and mean time per name. (Per-op rows as
in PyTorch's profiler are not recorded: the dispatcher has no profiling hook yet.)"""

from __future__ import annotations

import time
from typing import Any, Self

_ACTIVE: list = []


class _Event:
    __slots__ = ("name", "seconds")

    def __init__(self, name: str, seconds: float):
        self.name, self.seconds = name, seconds


class _Averages(list):
    """Aggregated events: one row per name."""

    def table(self, sort_by: str | None = None, row_limit: int = 100, **_: Any) -> str:
        """A text table of the rows: name, calls, total and mean milliseconds."""
        rows = sorted(self, key=lambda r: -r[2])[:row_limit]
        lines = [f"{'Name':<40} {'Calls':>8} {'Total ms':>12} {'Mean ms':>12}"]
        for name, calls, total in rows:
            lines.append(f"{name:<40} {calls:>8} {total * 1e3:>12.3f} {total * 1e3 / calls:>12.3f}")
        return "\n".join(lines)


class profile:
    """Context manager: records the block's wall time and its record_function spans."""

    def __init__(self, enabled: bool = True, use_cuda: bool = False, **_: Any):
        self.enabled = enabled
        self.events: list[_Event] = []

    def __enter__(self) -> Self:
        if self.enabled:
            _ACTIVE.append(self)
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.events.append(_Event("[profiled block]", time.perf_counter() - self._t0))
            _ACTIVE.remove(self)

    def key_averages(self, **_: Any) -> _Averages:
        """The events grouped by name: (name, calls, total seconds) rows."""
        agg: dict[str, list] = {}
        for e in self.events:
            entry = agg.setdefault(e.name, [e.name, 0, 0.0])
            entry[1] += 1
            entry[2] += e.seconds
        return _Averages(tuple(v) for v in agg.values())

    def table(self, **kwargs: Any) -> str:
        return self.key_averages().table(**kwargs)


class record_function:
    """Label a span of code for the active profile()."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> Self:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        dt = time.perf_counter() - self._t0
        for p in _ACTIVE:
            p.events.append(_Event(self.name, dt))
