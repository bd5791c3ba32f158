"""hybrid.onnx: export a function or module to an ONNX file (a first slice).

    hybrid.onnx.export(model.eval(), (x,), "model.onnx")

The function is compiled once with `hybrid.compile` under `hybrid.no_grad()` at the example
arguments' sizes; the optimized primitive graph is translated node by node to standard ONNX
(default domain, opset >= 17). Module parameters and buffers (captured tensors) become
initializers named by their state_dict keys; literal constants become initializers too.

Refused (a HybridError naming the reason): a function with effects (in-place updates of
captured tensors, such as batch-norm statistics in train mode, `.grad` writes, random draws such
as dropout in train mode: call `model.eval()`), a primitive without an ONNX mapping (see
`supported_ops()`: scatter, scatter_add, rand, atan2 are not mapped; nor pad with interior
padding, integer floordiv, bfloat16 tensors), and non-tensor outputs.

Dynamic axes (`dynamic_axes={"x": {0: "batch"}}`): hybrid graphs have static shapes, so the
function is traced again, without constant folding, at nearby sizes, and every integer that
follows the named sizes (reshape targets, slice bounds, fill and iota shapes, mean's divisor)
becomes a polynomial in them, computed in the file from the inputs' shapes (`_symbolic.py`).
A program that differs otherwise between those traces is refused, naming the op."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.export import _without_loops, check_example_args, refuse_effects
from hybrid.onnx._ops import EMITTERS, SIZED, Emit, Unsupported, onnx_dtype, supported_ops
from hybrid.onnx._symbolic import MAX_SYMBOLS, Mismatch, Poly, SymbolicSizes, corners, generalize

MIN_OPSET = 17


def _fail(message: str) -> errors.HybridError:
    return errors.error(errors.ArtifactError, message)


def _ir_version(opset: int) -> int:
    """The lowest IR version that carries `opset` (so older runtimes load the file)."""
    return 8 if opset <= 18 else 9 if opset <= 20 else 10


def _compiled(fn: Any) -> Any:
    import hybrid
    from hybrid.compile import CompiledFunction, CompiledModule

    if isinstance(fn, CompiledModule):
        return fn.__dict__["forward"], fn.__dict__["module"]
    if isinstance(fn, CompiledFunction):
        return fn, None
    if hasattr(fn, "forward") and hasattr(fn, "named_parameters"):
        return hybrid.compile(fn).__dict__["forward"], fn
    return hybrid.compile(fn), None


def _state_names(module: Any) -> dict[int, str]:
    found: dict[int, str] = {}
    if module is not None:
        for method in ("named_parameters", "named_buffers"):
            for key, t in getattr(module, method)():
                found.setdefault(id(t), key)
    return found


def _unique(name: str, used: set[str]) -> str:
    base = "".join(c if c.isalnum() or c in "_.:/" else "_" for c in name) or "value"
    out, k = base, 1
    while out in used:
        out, k = f"{base}_{k}", k + 1
    used.add(out)
    return out


def export(fn_or_module: Any, example_args: Any, path: Any, dynamic_axes: dict | None = None,
           input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           opset_version: int = MIN_OPSET) -> Any:
    """Write `fn_or_module(*example_args)` as an ONNX model to `path` (a file path, or None to
    only build it) and return the `onnx.ModelProto`. `example_args` is a tensor or a tuple of
    distinct tensors; their sizes are the model's. `dynamic_axes` is as torch.onnx's
    ({"x": {0: "batch"}} by input/output name), with the limits in the module docstring."""
    try:
        import onnx
        from onnx import helper
    except ImportError:  # pragma: no cover - depends on the environment
        raise _fail("hybrid.onnx.export needs the onnx package: pip install onnx") from None
    import hybrid

    name = getattr(fn_or_module, "__name__", type(fn_or_module).__name__)
    where = f"onnx.export({name})"
    hi = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= int(opset_version) <= hi:
        raise _fail(f"{where}: opset_version={opset_version} is not supported; use "
                    f"{MIN_OPSET}..{hi}")
    opset = int(opset_version)
    args = example_args if isinstance(example_args, tuple | list) else (example_args,)
    args = tuple(args)
    check_example_args(where, args, "example argument")
    cf, module = _compiled(fn_or_module)
    with hybrid.no_grad():
        graph = cf.graph_for(*args)
    graph = _without_loops(graph, where)
    entry = cf.last_entry
    refuse_effects(where, entry.effects, "ONNX export")
    n_args = entry.n_args
    if n_args != len(args):
        raise _fail(f"{where}: traced {n_args} tensor arguments, expected {len(args)}")

    used: set[str] = set()
    if input_names is not None and len(input_names) != n_args:
        raise _fail(f"{where}: input_names has {len(input_names)} names for {n_args} inputs")
    in_names = [_unique(input_names[i] if input_names else f"input_{i}", used)
                for i in range(n_args)]
    if input_names and in_names != list(input_names):
        raise _fail(f"{where}: input_names must be distinct and made of letters, digits, _ . "
                    f"(got {list(input_names)})")
    names = {v.id: n for v, n in zip(graph.inputs[:n_args], in_names)}
    outs = _user_outputs(graph, entry, where)
    if output_names is not None and len(output_names) != len(outs):
        raise _fail(f"{where}: output_names has {len(output_names)} names for {len(outs)} "
                    "outputs")
    out_names = []
    for k, v in enumerate(outs):
        want = output_names[k] if output_names else ("output" if len(outs) == 1
                                                     else f"output_{k}")
        got = _unique(want, used)
        if output_names and got != want:
            raise _fail(f"{where}: output name {want!r} is repeated or clashes with an input "
                        "or parameter name")
        out_names.append(got)
    dyn = _check_dynamic(dynamic_axes, in_names, out_names, graph, where)
    ctx = Emit(opset)
    sym = _symbolic_sizes(cf, args, in_names, dyn, ctx, where)
    if sym is not None:  # the graph traced without constant folding, sizes generalized
        graph = sym.graph
        outs = _user_outputs(graph, entry, where)
        names = {v.id: n for v, n in zip(graph.inputs[:n_args], in_names)}
    state = _state_names(module)
    from onnx import numpy_helper

    for i, t in enumerate(entry.captured):
        v = graph.inputs[n_args + i]
        key = _unique(state.get(id(t)) or graph.input_names[n_args + i] or f"captured_{i}",
                      used)
        names[v.id] = key
        try:
            onnx_dtype(v.dtype)
        except Unsupported as e:
            raise _fail(f"{where}: captured tensor {key}: {e}") from None
        ctx.initializers.append(numpy_helper.from_array(
            np.ascontiguousarray(np.asarray(t.numpy(force=True), dtype=v.dtype.np)), key))

    for node in graph.nodes:
        emit = EMITTERS.get(node.op)
        loc = f" (traced at {node.loc})" if node.loc else ""
        if emit is None:
            raise _fail(f"{where}: primitive '{node.op.value}'{loc} has no ONNX mapping; "
                        f"supported primitives: {', '.join(supported_ops())}")
        out = f"v{node.out.id}"
        target = sym.node(node) if sym else node
        if target is not node and node.op not in SIZED:
            raise _fail(f"{where}: dynamic_axes: primitive '{node.op.value}'{loc} has "
                        f"attributes that follow the dynamic sizes ({target.attrs}), which "
                        "the ONNX export cannot express; export without dynamic_axes")
        try:
            onnx_dtype(node.out.dtype)
            emit(ctx, [names[v.id] for v in node.inputs], target, out)
        except Unsupported as e:
            raise _fail(f"{where}: primitive '{node.op.value}'{loc}: {e} has no ONNX mapping; "
                        f"supported primitives: {', '.join(supported_ops())}") from None
        names[node.out.id] = out
    for v, got in zip(outs, out_names):
        ctx.node("Identity", [names[v.id]], got)

    g_inputs = [helper.make_tensor_value_info(
        n, onnx_dtype(v.dtype), _dims(v.shape, dyn.get(n, {})))
        for n, v in zip(in_names, graph.inputs[:n_args])]
    g_outputs = []
    for n, v in zip(out_names, outs):
        try:
            dt = onnx_dtype(v.dtype)
        except Unsupported as e:
            raise _fail(f"{where}: output {n}: {e}") from None
        shape = sym.shape(v) if sym else v.shape
        g_outputs.append(helper.make_tensor_value_info(n, dt, _dims(shape, dyn.get(n, {}))))
    onnx_graph = helper.make_graph(ctx.nodes, name, g_inputs, g_outputs, ctx.initializers)
    model = helper.make_model(onnx_graph, producer_name="hybrid",
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = _ir_version(opset)
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path) if not hasattr(path, "write") else path)
    return model


def _dims(shape: Sequence[Any], dynamic: dict[int, str]) -> list:
    """ONNX dims: the user's name for a dynamic axis, a symbolic size printed (`batch`,
    `batch*seq`), or the static size."""
    return [dynamic.get(i) or (str(s) if isinstance(s, Poly) else int(s))
            for i, s in enumerate(shape)]


def _symbolic_sizes(cf: Any, args: tuple, in_names: list, dyn: dict, ctx: Emit,
                    where: str) -> SymbolicSizes | None:
    """The function's graph with the integers that follow the inputs' dynamic axes made
    symbolic (see hybrid/onnx/_symbolic.py), from traces at the example and nearby sizes; None
    when no input axis is dynamic. The traces skip constant folding, which would bake
    size-dependent constants (a causal mask) into literal arrays."""
    import hybrid
    from compiler.passes import Pass, batch_matmuls, cse, dce, fixed_point, simplify
    from hybrid.compile import _optimize
    from hybrid.compile_trace import trace_call

    no_fold = [Pass("dce", dce), Pass("cse", cse),
               fixed_point("simplify+cse", [Pass("simplify", simplify), Pass("cse", cse)]),
               Pass("batch_matmuls", batch_matmuls), Pass("dce", dce)]

    labels: list[str] = []
    where_dim: dict[str, tuple[int, int]] = {}
    for i, n in enumerate(in_names):
        for axis, label in sorted(dyn.get(n, {}).items()):
            size = args[i].shape[axis]
            if label in where_dim:
                j, a = where_dim[label]
                if args[j].shape[a] != size:
                    raise _fail(f"{where}: dynamic_axes name {label!r} for {in_names[j]} axis "
                                f"{a} (size {args[j].shape[a]}) and {n} axis {axis} (size "
                                f"{size}): one name is one size; give the example arguments "
                                "equal sizes there, or use two names")
                continue
            if size < 2:
                raise _fail(f"{where}: dynamic_axes[{n!r}] axis {axis} has size {size} in the "
                            "example; sizes 0 and 1 are special (broadcasting, squeezed dims), "
                            "so export with an example of size 2 or more on a dynamic axis")
            where_dim[label] = (i, axis)
            labels.append(label)
    if not labels:
        return None
    if len(labels) > MAX_SYMBOLS:
        raise _fail(f"{where}: dynamic_axes names {len(labels)} sizes ({labels}); at most "
                    f"{MAX_SYMBOLS} distinct dynamic sizes are supported: give axes that are "
                    'one size one name ({"a": {0: "batch"}, "b": {0: "batch"}}; the list form '
                    "names every axis apart)")
    base = tuple(args[where_dim[lb][0]].shape[where_dim[lb][1]] for lb in labels)
    axes_of = {i: {} for i in range(len(args))}
    for i, n in enumerate(in_names):
        for axis, label in dyn.get(n, {}).items():
            axes_of[i][axis] = labels.index(label)

    def traced_at(point: tuple[int, ...]) -> Any:
        sample = []
        for i, a in enumerate(args):
            shape = [point[axes_of[i][d]] if d in axes_of[i] else s
                     for d, s in enumerate(a.shape)]
            sample.append(hybrid.tensor(np.zeros(shape, dtype=a.dtype.np)))
        try:
            with hybrid.no_grad():
                g, _ = _optimize(trace_call(cf, tuple(sample), {}).tracer.graph, no_fold)
        except errors.HybridError as e:
            raise _fail(f"{where}: dynamic_axes: tracing again at sizes "
                        f"{dict(zip(labels, point))} failed, so the model does not take other "
                        f"sizes there: {e}") from None
        return _without_loops(g, where)

    points = [tuple(b + (i in s) for i, b in enumerate(base)) for s in corners(len(base))]
    check_point = tuple(b + 2 for b in base)
    graphs = [traced_at(p) for p in points]
    graph = graphs[0]
    try:
        sizes = generalize(graphs, traced_at(check_point), base, check_point, tuple(labels))
    except Mismatch as e:
        pos, what = e.args
        items = list(graph.inputs) + [n for n in graph.nodes]
        item = items[pos] if pos is not None and pos < len(items) else None
        node = f" at '{item.op.value}'" + (f" (traced at {item.loc})" if item.loc else "") \
            if hasattr(item, "op") else ""
        raise _fail(f"{where}: dynamic_axes {dict(zip(labels, base))}: traced at other sizes "
                    f"the program differs{node}: {what}, so no one ONNX graph serves every "
                    "size; export without dynamic_axes at the size you will run at") from None
    for label, (i, axis) in where_dim.items():
        ctx.dims[labels.index(label)] = (in_names[i], axis)
    return SymbolicSizes(graph, sizes)


def _user_outputs(graph: Any, entry: Any, where: str) -> list:
    from hybrid.compile_entry import SAME, TARGET

    outs = []
    kinds = getattr(entry, "out_kinds", None) or [(None, i) for i in range(entry.n_out)]
    for kind, index in kinds:
        if kind == SAME:
            outs.append(outs[index])
        elif kind == TARGET:
            outs.append(graph.inputs[index])
        else:
            outs.append(graph.outputs[index])
    if not outs:
        raise _fail(f"{where}: the function returns no tensors; nothing to export")
    return outs


def _check_dynamic(dynamic_axes: Any, in_names: list, out_names: list, graph: Any,
                   where: str) -> dict[str, dict[int, str]]:
    """{name: {axis: dim_param}} from a torch.onnx-style spec, checked against the names and
    ranks (what follows the sizes is worked out by `_symbolic_sizes`)."""
    if not dynamic_axes:
        return {}
    ranks = {n: v.ndim for n, v in zip(in_names, graph.inputs)}
    out: dict[str, dict[int, str]] = {}
    for n, spec in dynamic_axes.items():
        if n not in in_names and n not in out_names:
            raise _fail(f"{where}: dynamic_axes names {n!r}, which is not an input or output "
                        f"(inputs {in_names}, outputs {out_names})")
        if isinstance(spec, dict):
            axes = {int(a): str(p) for a, p in spec.items()}
        else:
            axes = {int(a): f"{n}_dynamic_axes_{j + 1}" for j, a in enumerate(spec)}
        rank = ranks.get(n)
        for a in axes:
            if rank is not None and not 0 <= a < rank:
                raise _fail(f"{where}: dynamic_axes[{n!r}] axis {a} is out of range for a "
                            f"rank-{rank} input")
        out[n] = axes
    return out


__all__ = ["MIN_OPSET", "export", "supported_ops"]
