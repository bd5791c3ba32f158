"""hybrid.export: a function or module traced once and compiled ahead of time into a program
that runs without tracing, without LLVM and without the original Python code.

    ep = hybrid.export(model.eval(), x)       # an ExportedProgram
    ep(x)                                      # runs the exported code
    ep.save("model.hyb")
    prog = hybrid.load_exported("model.hyb")   # in another process: no tracing, no llvmlite

What exports: pure functions and modules in eval mode, tensor arguments, returning a tensor or
a tuple/list of tensors, on the native CPU backend's dtypes. Training steps (in-place updates of
parameters, `.grad` writes, random draws) are refused for now, as are symbolic dimensions
(`dynamic_shapes`): a program runs at the sizes it was exported with. The file format and what
loading checks are in hybrid/export_format.py."""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.export_format import FORMAT_VERSION, LoadedProgram, to_bytes

_VERSION = "0.1.0"


def _fail(message: str) -> errors.ArtifactError:
    return errors.error(errors.ArtifactError, message)


class ExportedProgram:
    """The result of `hybrid.export`: `graph` (the traced, optimized graph), `inputs` and
    `outputs` ((name, dtype, shape) each), `target`; call it, `save(path)` it, print it."""

    def __init__(self, graph: Any, manifest: dict, sections: dict[str, bytes]):
        self.graph = graph
        self.manifest = manifest
        self._sections = sections
        self._bytes: bytes | None = None
        self._loaded: LoadedProgram | None = None
        sig = lambda side: [(t["name"], np.dtype(t["dtype"]), tuple(t["shape"]))
                            for t in manifest[side]]
        self.inputs, self.outputs = sig("inputs"), sig("outputs")
        self.target = manifest["target"]

    def to_bytes(self) -> bytes:
        if self._bytes is None:
            self._bytes = to_bytes(self.manifest, self._sections)
        return self._bytes

    def save(self, path: Any) -> None:
        """Write the program to one file (`hybrid.load_exported` reads it)."""
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    def __call__(self, *args: Any) -> Any:
        # NOTE: runs the exported file's own code through the loader, as another process would
        if self._loaded is None:
            self._loaded = LoadedProgram(self.to_bytes(), where="ExportedProgram")
        return self._loaded(*args)

    def __str__(self) -> str:
        side = lambda ts: ", ".join(f"{n}: {d}{list(s)}" for n, d, s in ts)
        t = self.target
        return (f"ExportedProgram({side(self.inputs)}) -> ({side(self.outputs)})\n"
                f"target: {t['platform']}/{t['machine']} {t['cpu']} "
                f"[{', '.join(t['features'])}]; format {FORMAT_VERSION}\n{self.graph}")

    __repr__ = __str__


def export(fn: Any, *args: Any, dynamic_shapes: Any = None) -> ExportedProgram:
    """Trace `fn(*args)` (a function or a module; modules as they are, so call `.eval()`
    first) and compile it ahead of time for this CPU. `args` are tensors; their sizes are the
    program's; torch.export's form `export(model, (x, y))` works too. Needs the system's C
    compiler driver (`cc`) to link the kernels."""
    from hybrid.autograd import no_grad
    from hybrid.compile import CompiledFunction, _optimize
    from hybrid.compile_trace import trace_call

    name = getattr(fn, "__name__", type(fn).__name__)
    if _has_dynamic(dynamic_shapes):
        raise _fail(f"export({name}): symbolic dimensions (dynamic_shapes={dynamic_shapes!r}) "
                    "are not supported yet: export with the sizes the program will run at "
                    "(one export per size)")
    if len(args) == 1 and isinstance(args[0], tuple):  # torch.export's form: (model, (x,))
        args = args[0]
    check_example_args(f"export({name})", args)
    cf = CompiledFunction(fn, name=name)
    with no_grad():
        traced = trace_call(cf, args, {})
    refuse_effects(f"export({name})", traced.effects, "export")
    tracer = traced.tracer
    graph, _ = _optimize(tracer.graph, None)
    graph = _without_loops(graph, f"export({name})")
    from compiler.backend_cpu import unsupported
    from compiler.outputs import split_outputs

    odd = unsupported(graph)
    if odd:
        raise _fail(f"export({name}): the native backend cannot compile {', '.join(odd)}; "
                    "export what runs on it (float16/32/64, int32/64, bool)")
    reduced, sources = split_outputs(graph)
    n_args = traced.n_args
    weights: dict[str, np.ndarray] = {}
    bound = []
    used: set[str] = set()
    names = _state_names(fn)
    for i, rec in enumerate(tracer.lifted[n_args:]):
        key = _unique(names.get(id(rec.tensor)) or graph.input_names[n_args + i]
                      or f"captured{i}", used)
        weights[key] = np.ascontiguousarray(rec.array)
        bound.append(key)
    outputs = _output_table(traced, graph, sources, weights, bound)
    from compiler.export_native import LinkerMissing, build

    try:
        native = build(reduced) if reduced.outputs else None
    except LinkerMissing as e:
        raise _fail(f"export({name}): {e}") from None
    if native is None:
        raise _fail(f"export({name}): every output is a constant or an input; nothing to compile")
    plan = native.plan
    constants = []
    for i, c in enumerate(plan.constants):
        constants.append(f"__plan_constant{i}")
        weights[constants[-1]] = np.ascontiguousarray(c)
    from safetensors.numpy import save

    manifest = {
        "format_version": FORMAT_VERSION, "hybrid_version": _VERSION, "name": name,
        "target": {"machine": native.machine, "platform": sys.platform, "cpu": native.cpu,
                   "triple": native.triple, "features": native.features},
        "inputs": [{"name": n, "dtype": a.dtype.name, "shape": list(a.shape)}
                   for n, a in zip(_arg_names(fn, len(args)), args)],
        "outputs": outputs, "bound": bound, "constants": constants,
        "symbols": sorted({s.symbol for s in plan.steps if hasattr(s, "symbol")}),
        "errors": _error_messages(reduced), "single": traced.out_spec == ("T",),
        "graph": str(graph),
    }
    sections = {"plan": plan.to_bytes(), "kernels": native.shared_object,
                "weights": save(weights) if weights else save({"__none": np.zeros(0)})}
    return ExportedProgram(graph, manifest, sections)


def _output_table(traced: Any, graph: Any, sources: list, weights: dict, bound: list) -> list:
    """Where each of the function's outputs comes from in the loaded program (the manifest's
    `outputs`: run, input, copy or const), constant outputs added to `weights`."""
    from compiler.outputs import CONST, COPY, INPUT, RUN
    from hybrid.compile_entry import SAME, TARGET

    n_args = traced.n_args
    outputs: list[dict] = []
    for k, (kind, index) in enumerate(traced.out_kinds):
        out_name = "output" if len(traced.out_kinds) == 1 else f"output{k}"
        if kind == SAME:
            outputs.append({**outputs[index], "kind": "copy", "index": index, "name": out_name})
            continue
        value = graph.inputs[index] if kind == TARGET else graph.outputs[index]
        src, at = ("input", index) if kind == TARGET else (sources[index].kind,
                                                            sources[index].index)
        entry = {"name": out_name, "dtype": value.type.dtype.np.name, "shape": list(value.shape)}
        if src == RUN:
            entry.update(kind="run", index=at)
        elif src == COPY:  # a repeat of computed output `at`: a copy of that function output
            entry.update(kind="copy", index=next(j for j, o in enumerate(outputs)
                                                 if o["kind"] == "run" and o["index"] == at))
        elif src == INPUT and at < n_args:
            entry.update(kind="input", index=at)
        else:  # a constant, or a parameter returned as it is: stored with the weights
            weights[f"__output{k}"] = (np.ascontiguousarray(sources[index].array)
                                       if src == CONST else weights[bound[at - n_args]])
            entry.update(kind="const", index=0, weight=f"__output{k}")
        outputs.append(entry)
    return outputs


def check_example_args(where: str, args: tuple, label: str = "argument") -> None:
    """ArtifactError unless `args` are distinct tensors (what an exported signature takes)."""
    from hybrid.tensor import _TENSOR_CLASSES

    for i, a in enumerate(args):
        if a.__class__ not in _TENSOR_CLASSES:
            raise _fail(f"{where}: {label} {i} is a {type(a).__name__}; export takes "
                        "tensors (bind other arguments with functools.partial or a lambda)")
    if len({id(a) for a in args}) != len(args):
        raise _fail(f"{where}: the same tensor is passed twice; pass distinct tensors")


def _without_loops(graph: Any, where: str) -> Any:
    """The graph with its scans unrolled (the artifact's plan has no loop step); a while loop
    or a cond (known only at run time) is refused."""
    from compiler.passes.unroll import remaining_control, unroll_scans

    unrolled = unroll_scans(graph)
    left = remaining_control(unrolled)
    if left:
        n = left[0]
        raise _fail(f"{where}: hybrid.{'while_loop' if n.op.value == 'while' else 'cond'} "
                    f"(traced at {n.loc or '?'}) cannot be exported yet: an exported program "
                    "has no run-time loops or branches; export the branch or the loop's fixed "
                    "number of steps (hybrid.scan unrolls)")
    if unrolled is not graph:
        from hybrid.compile import _optimize

        unrolled, _ = _optimize(unrolled, None)
    return unrolled


def refuse_effects(where: str, fx: Any, what_export: str) -> None:
    """ArtifactError when a trace has effects (in-place updates, .grad writes, random draws)."""
    if fx.writes or fx.grads or fx.rng:
        what = ("updates captured tensors in place (a training step, or a module in train "
                "mode updating batch-norm statistics)" if fx.writes else
                "writes .grad" if fx.grads else "draws random numbers (dropout in train mode?)")
        raise _fail(f"{where}: the function {what}; {what_export} supports pure functions and "
                    "modules in eval mode: call model.eval() first")


def _has_dynamic(spec: Any) -> bool:
    if spec is None:
        return False
    if isinstance(spec, dict):
        return any(_has_dynamic(v) for v in spec.values()) if any(
            isinstance(v, dict | list | tuple) for v in spec.values()) else bool(spec)
    if isinstance(spec, list | tuple):
        return any(_has_dynamic(v) for v in spec)
    return True


def _state_names(fn: Any) -> dict[int, str]:
    """id(tensor) -> its state_dict name, for a module's parameters and buffers."""
    found: dict[int, str] = {}
    for method in ("named_parameters", "named_buffers"):
        if hasattr(fn, method):
            for key, t in getattr(fn, method)():
                found.setdefault(id(t), key)
    return found


def _unique(name: str, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_.]", "_", name) or "weight"
    key, i = base, 1
    while key in used or key.startswith("__"):
        key, i = f"{base}_{i}", i + 1
    used.add(key)
    return key


def _arg_names(fn: Any, n: int) -> list[str]:
    """The parameter names of `fn` (forward's for a module), else input0, input1, ..."""
    target = getattr(fn, "forward", fn)
    try:
        params = [p.name for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    return params[:n] if len(params) >= n else [f"input{i}" for i in range(n)]


def _error_messages(graph: Any) -> dict[str, str]:
    """The message of each error-flag code the plan's kernels can set (compiler/errors.py)."""
    from compiler.errors import DIV_BY_ZERO_CODE
    from compiler.ir.ops import Op

    out = {str(DIV_BY_ZERO_CODE): "exported program: integer division or remainder by zero"}
    for i, node in enumerate(graph.nodes):
        if node.op in (Op.GATHER, Op.SCATTER, Op.SCATTER_ADD):
            axis = node.attrs.get("axis", 0)
            size = node.inputs[0].shape[axis] if node.inputs[0].shape else 0
            out[str(i + 1)] = (f"{node.op.value}: an index is out of bounds for dim {axis} with "
                               f"size {size} (valid: 0 <= index < {size})"
                               + (f" at {node.loc}" if node.loc else ""))
    return out
