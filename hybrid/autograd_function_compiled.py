"""Custom autograd Functions and the backward of a compiled call (`loss = compiled(x);
loss.backward()`).

That backward replays the compiled function's graph as Tensor ops and differentiates the replay
(hybrid/compile_backward.py). The graph holds only primitives, so a replay would differentiate a
custom Function's forward instead of calling its backward (a straight-through estimator would get
round()'s zero gradient). So each Function applied while tracing is noted here with the graph
values of its inputs and outputs; the backward of such a call replays the trace graph itself,
calling the Function again (its forward recorded, its node on the tape) where its outputs were
computed, so the user's backward lands in the backward graph. What cannot be replayed that way
(an output that is one of its inputs) is refused with a clear error rather than differentiated
wrongly."""

from __future__ import annotations

import weakref
from typing import Any

from hybrid import errors
from hybrid.ops.core import STATE, TapeNode, apply, wrap


class TracedCall:
    """One Function.apply seen while tracing: the class, its arguments (graph values in place of
    tensors) and the graph values of its tensor outputs by output position."""

    __slots__ = ("args", "cls", "kwargs", "outputs", "replayable")

    def __init__(self, cls: type, args: list, kwargs: dict, outputs: dict[int, Any],
                 replayable: bool):
        self.cls, self.args, self.kwargs = cls, args, kwargs
        self.outputs, self.replayable = outputs, replayable


class _ValueRef:
    """Stands for a tensor argument in a TracedCall: the graph value it held, and whether the
    argument was cut from autograd (x.detach() of a value that carries gradient)."""

    __slots__ = ("value", "detached")

    def __init__(self, value: Any, detached: bool = False):
        self.value = value
        self.detached = detached


_CALLS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # trace graph -> [TracedCall]


def note(tracer: Any, cls: type, args: tuple, kwargs: dict, outs: list, inputs: list) -> None:
    """Remember a Function applied while `tracer` records (called by Function.apply)."""
    from hybrid.tensor import Tensor

    refs = [_ValueRef(tracer.value_of(a), not a._rg) if isinstance(a, Tensor) else a
            for a in args]
    in_ids = {tracer.value_of(a).id for a in inputs}
    outputs, replayable = {}, True
    for k, o in enumerate(outs):
        if isinstance(o, Tensor):
            v = tracer.value_of(o)
            outputs[k] = v
            replayable &= v.id not in in_ids  # an input returned as is has no node of its own
    _CALLS.setdefault(tracer.graph, []).append(TracedCall(cls, refs, kwargs, outputs,
                                                          replayable))
    _guard_compiled_calls()


def backward_graph(graph: Any, rg_inputs: list[int], rg_outputs: list[int],
                   calls: list[TracedCall]) -> Any:
    """compile_backward.backward_graph for a trace graph holding custom Functions: the replay
    calls each Function where its outputs were computed."""
    from hybrid.autograd import grad
    from hybrid.ops.creation import zeros_like
    from hybrid.tracing import Tracer

    from hybrid.tracing import GRAD_MARKS, replay_node

    marks = GRAD_MARKS.get(graph)
    made_by = {v.id: (c, k) for c in calls for k, v in c.outputs.items()}
    tracer = Tracer(graph.name + "_backward")
    with tracer:
        env: dict[int, Any] = {}
        for i, v in enumerate(graph.inputs):
            t = wrap(tracer.new_input(v.type, graph.input_names[i]))
            t._rg = i in rg_inputs
            env[v.id] = t
        prev = STATE.grad
        STATE.grad = True
        try:
            for node in graph.nodes:
                tracer.loc = node.loc
                hit = made_by.get(node.out.id)
                if hit is None:
                    env[node.out.id] = replay_node(node, [env[v.id] for v in node.inputs],
                                                   marks)
                elif node.out.id not in env:
                    _replay(hit[0], env)
            tracer.loc = None
            outs = [env[graph.outputs[k].id] for k in rg_outputs]
            cots = [wrap(tracer.new_input(o._value.type, f"grad_{graph.output_names[k]}"))
                    for k, o in zip(rg_outputs, outs)]
            ins = [env[graph.inputs[i].id] for i in rg_inputs]
            live = [k for k, o in enumerate(outs) if o._rg]
            grads = grad([outs[k] for k in live], ins, [cots[k] for k in live],
                         allow_unused=True) if live else [None] * len(ins)
        finally:
            STATE.grad = prev
        results = [g if g is not None else zeros_like(x) for g, x in zip(grads, ins)]
        tracer.graph.set_outputs([tracer.value_of(g) for g in results],
                                 [f"grad_{graph.input_names[i]}" for i in rg_inputs])
    return tracer.graph


def _replay(call: TracedCall, env: dict) -> None:
    args = [(env[a.value.id].detach() if a.detached else env[a.value.id])
            if isinstance(a, _ValueRef) else a for a in call.args]
    res = call.cls.apply(*args, **call.kwargs)
    outs = res if isinstance(res, tuple) else (res,)
    for k, v in call.outputs.items():
        env[v.id] = outs[k]


def _refusal(name: str) -> errors.AutogradError:
    return errors.AutogradError(errors.at_user(
        f"backward through a compiled call whose graph uses the custom autograd.Function {name} "
        "that returns one of its inputs unchanged is not supported; return a new tensor (x * 1) "
        "from its forward, or call loss.backward() inside the compiled function"))


def _guard_compiled_calls() -> None:
    """Route the backward of compiled calls whose trace used a custom Function through
    backward_graph above (installed once, around compile_backward's rule)."""
    from hybrid.compile_backward import COMPILED_CALL
    from hybrid.ops.vjp import VJP

    inner = VJP.get(COMPILED_CALL)  # type: ignore[call-overload]
    if inner is None or getattr(inner, "_custom_functions", False):
        return

    def compiled_call_vjp(g: Any, node: TapeNode) -> tuple:
        record = node.attrs["record"]
        entry = record.entry
        stages = getattr(entry, "stages", None) or []
        calls = _CALLS.get(stages[0].graph) if stages else None
        if calls and entry.backward is None and not STATE.grad:
            bad = [c.cls.__name__ for c in calls if not c.replayable]
            if bad:
                raise _refusal(bad[0])
            if len(stages[0].graph.inputs) != len(entry.graph.inputs):
                raise errors.AutogradError(errors.at_user(
                    "backward through a compiled call that uses a custom autograd.Function: "
                    "its traced and optimized graphs take different inputs; call "
                    "loss.backward() inside the compiled function instead"))
            from hybrid.compile import _executable, _optimize

            graph = backward_graph(stages[0].graph, record.rg_inputs, record.rg_outputs, calls)
            graph, _ = _optimize(graph, None)
            entry.backward = _executable(graph)
        return inner(g, node)

    compiled_call_vjp._custom_functions = True  # type: ignore[attr-defined]
    VJP[COMPILED_CALL] = compiled_call_vjp  # type: ignore[index]
