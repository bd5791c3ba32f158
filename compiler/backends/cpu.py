"""The native CPU backend behind the backend protocol: fused LLVM kernels and BLAS run by the
C++ runtime (compiler/backend_cpu.py holds the executable; this module is its registration)."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.backends import register


class CpuBackend:
    name = "native"

    def unsupported(self, graph: Any) -> list[str]:
        from compiler.backend_cpu import unsupported

        return unsupported(graph)

    def accepts(self, arrays: list | None) -> bool:
        return arrays is None or all(a.__class__ is np.ndarray for a in arrays)

    def compile(self, graph: Any, donate: dict[int, int] | None = None) -> Any:
        from compiler.backend_cpu import CpuExecutable
        from compiler.control_exec import SegmentedExecutable, has_control

        if has_control(graph):  # NOTE: no in-place outputs there (donation is an option)
            return SegmentedExecutable(graph)
        return CpuExecutable(graph, donate=donate)


register(CpuBackend())
