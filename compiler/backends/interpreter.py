"""The interpreter backend: runs a graph node by node with the reference implementations
(compiler/ir/interpret.py) on numpy or CuPy arrays. It supports every graph: it is the spec
the other backends are tested against, and where they fall back."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.backends import register


class InterpretedGraph:
    """`graph` as a callable on a list of arrays (numpy, or CuPy when the inputs are)."""

    backend = "interpreter"  # no kernels, memory plan or profile: those are native's

    def __init__(self, graph: Any):
        self.graph = graph

    def __call__(self, arrays: list) -> list:
        from compiler.ir.interpret import interpret

        xp = np if not arrays or arrays[0].__class__ is np.ndarray else _array_module(arrays[0])
        return interpret(self.graph, arrays, xp)


def _array_module(a: Any) -> Any:
    import cupy

    return cupy


class InterpreterBackend:
    name = "interpreter"

    def unsupported(self, graph: Any) -> list[str]:
        return []

    def accepts(self, arrays: list | None) -> bool:
        return True

    def compile(self, graph: Any, donate: dict[int, int] | None = None) -> InterpretedGraph:
        return InterpretedGraph(graph)


register(InterpreterBackend())
