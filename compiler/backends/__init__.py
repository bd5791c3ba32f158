"""Backends: what turns an optimized graph into something that runs it.

A backend is an object with

- `name` — "native", "interpreter" (later "cuda");
- `unsupported(graph) -> list[str]` — what in the graph it cannot run ("erfc on int8",
  "dtype int16"), checked before fusion or any other work: empty when it can run the graph;
- `accepts(arrays) -> bool` — whether it runs on these example inputs (the CPU backend takes
  numpy arrays, not CuPy ones);
- `compile(graph, donate=None) -> executable` — a callable `executable(arrays) -> arrays`
  carrying `backend` (its backend's name) and, where the backend has them, `describe()`,
  `kernel_count`, `memory_plan`, `profile()`.

`choose(graph, example, preferred)` picks the preferred backend when it accepts the example and
supports the graph, else the interpreter (the reference, which runs every graph); it returns the
backend and why the preferred one was passed over. A new backend (CUDA) is a sibling module
registered here; nothing in the CPU backend changes.
"""

from __future__ import annotations

from typing import Any, Protocol


class Backend(Protocol):
    name: str

    def unsupported(self, graph: Any) -> list[str]: ...

    def accepts(self, arrays: list | None) -> bool: ...

    def compile(self, graph: Any, donate: dict[int, int] | None = None) -> Any: ...


_REGISTRY: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Make `backend` available under its name (hybrid.config.backend / HYBRID_BACKEND)."""
    _REGISTRY[backend.name] = backend
    return backend


def get(name: str) -> Backend:
    """The backend called `name`; ValueError naming the known ones otherwise."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"no backend {name!r}; the backends are "
                         f"{', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def choose(graph: Any, example: list | None, preferred: str) -> tuple[Backend, str | None]:
    """(backend, reason): `preferred` when it accepts `example` and supports `graph`, else the
    interpreter with the reason `preferred` could not be used (None when it was not asked for
    or the example is simply not its kind of array)."""
    backend = get(preferred)
    if backend.name == "interpreter":
        return backend, None
    if not backend.accepts(example):
        return get("interpreter"), None
    odd = backend.unsupported(graph)
    if odd:
        return get("interpreter"), f"the {backend.name} backend has no {', '.join(odd)}"
    return backend, None


def _load() -> None:
    from compiler.backends import cpu, interpreter  # noqa: F401  (each registers itself, once)
