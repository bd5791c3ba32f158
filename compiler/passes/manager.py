"""The pass managers, for the two IR levels: graph passes (Graph -> Graph) and kernel passes
(fused Program -> Program, compiler/passes/fuse.py's kernel IR: the CPU schedule of
passes/schedule_cpu.py). A pipeline is a list of named passes.

`run_passes` runs a graph pipeline, times every pass and keeps every intermediate graph (so
`fn.graphs` can show each one), and checks the IR after each pass when asked or when
`HYBRID_VERIFY=1`. `run_kernel_passes` does the same for kernel passes, with the kernel-IR
checker (compiler/kernel_verify.py), and logs each program under `HYBRID_LOG=kernels`."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from compiler.ir.graph import Graph
from compiler.ir.printer import format_graph
from compiler.ir.verify import VerifyError
from compiler.ir.verify import verify as verify_graph


@dataclass(frozen=True)
class Pass:
    """A named transformation: Graph -> Graph (a graph pass) or fused Program -> Program (a
    kernel pass, run by `run_kernel_passes`). Calling it runs the function."""

    name: str
    fn: Callable[[Any], Any]

    def __call__(self, ir: Any) -> Any:
        return self.fn(ir)


@dataclass(frozen=True)
class PassRecord:
    """One pass of a pipeline run: its name, the graph it returned (for a kernel pass, the graph
    its program implements), the seconds it took."""

    name: str
    graph: Graph
    seconds: float

    def __str__(self) -> str:
        return f"# after {self.name} ({self.seconds * 1e3:.2f} ms)\n{format_graph(self.graph)}"


_VERIFY_SET: list[bool] = []  # set by the frontend (hybrid.config.verify = ...)


def set_verify_enabled(on: bool | None) -> None:
    """Turn graph verification on or off for every pipeline (None: back to HYBRID_VERIFY)."""
    _VERIFY_SET[:] = [bool(on)] if on is not None else []


def log_kernels_enabled() -> bool:
    """True when `HYBRID_LOG` names `kernels` (or `all`): each kernel pass logs its program."""
    topics = {t.strip() for t in os.environ.get("HYBRID_LOG", "").split(",")}
    return bool(topics & {"kernels", "all"})


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
) -> tuple[Graph, list[PassRecord]]:
    """Run `passes` in order; return the final graph and one PassRecord per pass.

    `verify=None` follows `HYBRID_VERIFY`; when on, the input and every result are checked and a
    failure says which pass produced the broken graph."""
    check = verify_enabled() if verify is None else verify
    if check:
        verify_graph(graph)
    stages: list[PassRecord] = []
    for p in passes:
        start = time.perf_counter()
        graph = p(graph)
        stages.append(PassRecord(p.name, graph, time.perf_counter() - start))
        if check:
            try:
                verify_graph(graph)
            except VerifyError as e:
                raise VerifyError(f"after pass {p.name}: {e}") from None
    return graph, stages


_KERNEL_LOG = logging.getLogger("hybrid.kernels")


def run_kernel_passes(program: Any, passes: Sequence[Pass], verify: bool | None = None) -> Any:
    """Run kernel `passes` in order on a fused program; return the last program, whose `timings`
    gain one (name, seconds) per pass.

    `verify=None` follows `HYBRID_VERIFY`; when on, the input and every result go through the
    kernel-IR checker and a failure says which pass broke the program. Under
    `HYBRID_LOG=kernels` each result is logged (logger `hybrid.kernels`)."""
    from compiler.kernel_verify import KernelVerifyError, verify_program

    check = verify_enabled() if verify is None else verify
    log = log_kernels_enabled()
    if check:
        verify_program(program)
    for p in passes:
        start = time.perf_counter()
        program = p(program)
        seconds = time.perf_counter() - start
        program.timings.append((p.name, seconds))
        if check:
            try:
                verify_program(program)
            except KernelVerifyError as e:
                raise KernelVerifyError(f"after kernel pass {p.name}: {e}") from None
        if log:
            _KERNEL_LOG.info("# after %s (%.2f ms)\n%s", p.name, seconds * 1e3, program)
    return program
