"""The pass manager: a pass is a named pure function Graph -> Graph; a pipeline is a list of them.

`run_passes` runs a pipeline, times every pass and keeps every intermediate graph (so `fn.graphs`
can show each stage), and checks the IR after each pass when asked or when `HYBRID_VERIFY=1`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from compiler.ir.graph import Graph
from compiler.ir.printer import format_graph
from compiler.ir.verify import VerifyError, verify as verify_graph


@dataclass(frozen=True)
class Pass:
    """A named graph transformation. Calling it runs the function."""

    name: str
    fn: Callable[[Graph], Graph]

    def __call__(self, graph: Graph) -> Graph:
        return self.fn(graph)


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline run: which pass, the graph it returned, the seconds it took."""

    name: str
    graph: Graph
    seconds: float

    def __str__(self) -> str:
        return f"# after {self.name} ({self.seconds * 1e3:.2f} ms)\n{format_graph(self.graph)}"


_VERIFY_SET: list[bool] = []  # set by the frontend (hybrid.config.verify = ...)


def set_verify_enabled(on: bool | None) -> None:
    """Turn graph verification on or off for every pipeline (None: back to HYBRID_VERIFY)."""
    _VERIFY_SET[:] = [bool(on)] if on is not None else []


def verify_enabled() -> bool:
    """`set_verify_enabled`'s value, else True when `HYBRID_VERIFY` is set (not empty or 0)."""
    if _VERIFY_SET:
        return _VERIFY_SET[0]
    return os.environ.get("HYBRID_VERIFY", "") not in ("", "0")


def fixed_point(name: str, passes: Sequence[Pass], max_rounds: int = 8) -> Pass:
    """A pass that repeats `passes` in order until the printed graph stops changing."""

    def run(graph: Graph) -> Graph:
        text = format_graph(graph)
        for _ in range(max_rounds):
            for p in passes:
                graph = p(graph)
            new_text = format_graph(graph)
            if new_text == text:
                break
            text = new_text
        return graph

    return Pass(name, run)


def run_passes(
    graph: Graph, passes: Sequence[Pass], verify: bool | None = None
) -> tuple[Graph, list[Stage]]:
    """Run `passes` in order; return the final graph and one Stage per pass.

    `verify=None` follows `HYBRID_VERIFY`; when on, the input and every result are checked and a
    failure says which pass produced the broken graph."""
    check = verify_enabled() if verify is None else verify
    if check:
        verify_graph(graph)
    stages: list[Stage] = []
    for p in passes:
        start = time.perf_counter()
        graph = p(graph)
        stages.append(Stage(p.name, graph, time.perf_counter() - start))
        if check:
            try:
                verify_graph(graph)
            except VerifyError as e:
                raise VerifyError(f"after pass {p.name}: {e}") from None
    return graph, stages
