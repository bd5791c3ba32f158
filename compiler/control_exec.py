"""The native CPU backend on graphs with control flow (scan, while, cond; compiler/ir/control.py).

The graph is cut at its control-flow nodes: each run of plain nodes between them is compiled as
one native program (fusion never crosses a loop), and each loop runs its body, compiled once as
its own native program, once per step. Compile time therefore does not grow with the number of
steps. The loop itself is driven from here (one native call per step and body); the C++
runtime has no loop step yet."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.ir import control
from compiler.ir.graph import Graph, Node, Value
from compiler.ir.ops import CONTROL


def has_control(graph: Graph) -> bool:
    return any(n.op in CONTROL for n in graph.nodes)


def compile_graph(graph: Graph, donate: dict[int, int] | None = None) -> Any:
    """`graph` as a callable arrays -> arrays on the native backend (segmented when it holds
    control flow); outputs that are inputs or constants are rebuilt around the native run.
    `donate`: output position -> the input whose array it may be written into."""
    from compiler.outputs import RUN, assemble, input_copies, is_trivial, split_outputs

    if has_control(graph):
        return SegmentedExecutable(graph)
    reduced, sources = split_outputs(graph, frozenset(), donate)
    new_index = {k: s.index for k, s in enumerate(sources) if s.kind == RUN}
    donate = {new_index[k]: i for k, i in (donate or {}).items() if k in new_index}
    inner = _plain(reduced, donate) if reduced.outputs else None
    if is_trivial(sources):
        return inner

    def run(arrays: list) -> list:
        copies = input_copies(sources, arrays)
        return assemble(sources, inner(arrays) if inner is not None else [], arrays, copies)

    run.kernel_count = getattr(inner, "kernel_count", 0)  # type: ignore[attr-defined]
    return run


def _plain(graph: Graph, donate: dict[int, int] | None = None) -> Any:
    from compiler.backend_cpu import CpuExecutable

    return CpuExecutable(graph, donate=donate)


def _optimized(graph: Graph) -> Graph:
    """A body graph after the default graph passes (dead code, CSE, folding, simplification),
    which the enclosing program's passes do not enter."""
    from compiler.passes import DEFAULT_PIPELINE, run_passes

    return run_passes(graph, DEFAULT_PIPELINE)[0]


class _Segment:
    """Plain nodes compiled as one program: reads `ins` (value ids), writes `outs`."""

    def __init__(self, nodes: list[Node], needed_after: set[int], name: str):
        made = {n.out.id for n in nodes}
        ins: list[Value] = []
        seen: set[int] = set()
        for n in nodes:
            for v in n.inputs:
                if v.id not in made and v.id not in seen:
                    seen.add(v.id)
                    ins.append(v)
        outs = [n.out for n in nodes if n.out.id in needed_after]
        g = Graph(inputs=ins, nodes=list(nodes), outputs=outs,
                  input_names=[f"v{v.id}" for v in ins], output_names=[f"v{v.id}" for v in outs],
                  name=name)
        self.ins, self.outs = [v.id for v in ins], [v.id for v in outs]
        self.run = compile_graph(g) if outs else None

    def __call__(self, env: dict) -> None:
        if self.run is None:
            return
        for vid, a in zip(self.outs, self.run([env[i] for i in self.ins])):
            env[vid] = a


class _Loop:
    """One control-flow node group (the siblings of one loop): bodies compiled once each."""

    def __init__(self, node: Node, siblings: list[Node]):
        self.op = node.op.value
        self.ins = [v.id for v in node.inputs]
        self.attrs = {k: v for k, v in node.attrs.items() if k != "index"}
        self.results = [(s.out.id, s.attrs.get("index", 0)) for s in siblings]
        self.compiled: dict[int, Any] = {}
        # a loop body may write its new carries into the arrays of the old ones (the loop owns
        # them: the caller's initial carries are copied once, before the first step)
        self.n_owned = self.attrs.get("n_carry", 0) if self.op in ("scan", "while") else 0
        body = self.attrs.get("body")
        for g in control.bodies(node):
            owned = body is not None and g is body.graph
            self.compiled[id(g)] = compile_graph(
                _optimized(g), {k: k for k in range(self.n_owned)} if owned else None)

    def _body(self, graph: Graph, arrays: list) -> list:  # graph: the unoptimized body
        # NOTE: a slice x[t] of a C-contiguous stack is contiguous: no copy on the way in
        return self.compiled[id(graph)]([np.ascontiguousarray(a) if a.ndim else a
                                         for a in arrays])

    def __call__(self, env: dict) -> None:
        ins = [env[i] for i in self.ins]
        for k in range(self.n_owned):
            ins[k] = np.array(ins[k], copy=True)
        res = control.run(self.op, ins, self.attrs, self._body)
        for vid, k in self.results:
            env[vid] = res[k]


class SegmentedExecutable:
    """A graph with control flow: plain segments and loops, run in program order."""

    backend = "native"

    def __init__(self, graph: Graph):
        self.graph = graph
        keep = {v.id for v in graph.outputs}
        read_at: dict[int, int] = {}
        for i, n in enumerate(graph.nodes):
            for v in n.inputs:
                read_at[v.id] = i
        groups: dict[tuple, list[Node]] = {}
        for n in graph.nodes:
            if n.op in CONTROL:
                groups.setdefault(control.group_key(n), []).append(n)
        self.steps: list[Any] = []
        pending: list[Node] = []
        done: set[tuple] = set()

        def flush(upto: int) -> None:
            if pending:
                after = {vid for vid, i in read_at.items() if i >= upto} | keep
                self.steps.append(_Segment(list(pending), after,
                                           f"{graph.name}_part{len(self.steps)}"))
                pending.clear()

        for i, n in enumerate(graph.nodes):
            if n.op not in CONTROL:
                pending.append(n)
                continue
            key = control.group_key(n)
            if key in done:
                continue
            flush(i)
            done.add(key)
            self.steps.append(_Loop(n, groups[key]))
        flush(len(graph.nodes))
        self.kernel_count = sum(_kernels(s) for s in self.steps)

    def __call__(self, arrays: list) -> list:
        env = {v.id: a for v, a in zip(self.graph.inputs, arrays)}
        for step in self.steps:
            step(env)
        return [np.array(env[v.id], copy=True) if v.id in _ids(self.graph.inputs) else env[v.id]
                for v in self.graph.outputs]

    class executor:  # noqa: N801  (what hybrid.compile's profile reads of a native plan)
        donated_inputs = ()

    def describe(self) -> str:
        lines = [f"{self.graph.name}: {len(self.steps)} steps (plain parts compiled natively, "
                 "loops running natively compiled bodies once per step)"]
        lines += [f"  {i}: {_what(s)}" for i, s in enumerate(self.steps)]
        return "\n".join(lines) + "\n\n" + str(self.graph)

    def profile(self, arrays: list, repeats: int = 10) -> str:
        """Each step's median time over `repeats` runs (a loop's time is all its steps)."""
        import time

        times: list[list[float]] = [[] for _ in self.steps]
        for _ in range(max(1, repeats)):
            env = {v.id: a for v, a in zip(self.graph.inputs, arrays)}
            for i, step in enumerate(self.steps):
                t0 = time.perf_counter()
                step(env)
                times[i].append(time.perf_counter() - t0)
        med = [float(np.median(t)) for t in times]
        total = sum(med) or 1.0
        lines = [f"{'step':>4}  {'us':>9}  {'share':>6}  what"]
        lines += [f"{i:>4}  {m * 1e6:>9.1f}  {m / total:>6.1%}  {_what(s)}"
                  for i, (m, s) in enumerate(zip(med, self.steps))]
        lines.append(f"{'all':>4}  {total * 1e6:>9.1f}  {1:>6.1%}")
        return "\n".join(lines)


def _what(step: Any) -> str:
    if isinstance(step, _Segment):
        return f"plain part: {_kernels(step)} kernels"
    steps = f" over {step.attrs['length']} steps" if step.op == "scan" else ""
    return f"{step.op}{steps}: bodies with {_kernels(step)} kernels"


def _ids(values: list[Value]) -> set[int]:
    return {v.id for v in values}


def _kernels(step: Any) -> int:
    if isinstance(step, _Segment):
        return int(getattr(step.run, "kernel_count", 0) or 0)
    return sum(int(getattr(r, "kernel_count", 0) or 0) for r in step.compiled.values())
