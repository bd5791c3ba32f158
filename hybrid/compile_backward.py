"""Gradients through a compiled call: `loss = compiled(x); loss.backward()`.

Outputs of a compiled call that require grad get one autograd node each. On the first backward
through it, the forward graph is replayed as Tensor ops under a new trace and differentiated with
hybrid.autograd.grad, giving a backward graph (inputs: the forward inputs and the output
cotangents; outputs: the gradients of the inputs that require grad). It is compiled like any
graph and cached on the entry."""

from __future__ import annotations

from typing import Any

from compiler.ir.graph import Graph
from hybrid import errors
from hybrid.device import array_module
from hybrid.ops.core import STATE, TapeNode, apply, wrap
from hybrid.tracing import GRAD_MARKS, Tracer, has_marks, replay_node


class _CompiledCall:
    """The autograd "op" of a compiled call's outputs (prints as CompiledCallBackward)."""

    value = "compiled_call"


COMPILED_CALL = _CompiledCall()


def backward_graph(graph: Graph, rg_inputs: list[int], rg_outputs: list[int]) -> Graph:
    """The graph of d(outputs rg_outputs)/d(inputs rg_inputs), given output cotangents."""
    from hybrid.autograd import grad
    from hybrid.ops.creation import zeros_like

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
            marks = GRAD_MARKS.get(graph)  # detach() and no_grad() in the traced code
            for node in graph.nodes:
                tracer.loc = node.loc
                env[node.out.id] = replay_node(node, [env[v.id] for v in node.inputs], marks)
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


class CallRecord:
    """What one compiled call saved for its backward: the input arrays and the entry."""

    __slots__ = ("entry", "primals", "rg_inputs", "rg_outputs", "out_types")

    def __init__(self, entry: Any, primals: list, rg_inputs: list[int], rg_outputs: list[int],
                 out_types: list):
        self.entry = entry
        self.primals = primals
        self.rg_inputs = rg_inputs
        self.rg_outputs = rg_outputs
        self.out_types = out_types


def attach(entry: Any, targets: list, primals: list, outputs: list) -> None:
    """Give the outputs that require grad an autograd node into the compiled call."""
    rg_inputs = [i for i, t in enumerate(targets) if t._rg]
    if not rg_inputs:
        return
    rg_outputs = [k for k, flag in enumerate(entry.out_requires_grad) if flag]
    record = CallRecord(entry, primals, rg_inputs, rg_outputs,
                        [outputs[k]._value for k in rg_outputs])
    inputs = tuple(targets[i] for i in rg_inputs)
    for pos, k in enumerate(rg_outputs):
        out = outputs[k]
        out._rg = True
        out._node = TapeNode(COMPILED_CALL, inputs, {"record": record, "position": pos}, None)


def _vjp(g: Any, node: TapeNode) -> tuple:
    if STATE.grad:
        raise errors.AutogradError(errors.at_user(
            "create_graph=True (higher-order gradients) through a compiled call is not supported; "
            "call hybrid.autograd.grad inside the compiled function instead"))
    record: CallRecord = node.attrs["record"]
    entry = record.entry
    if entry.backward is None:
        from hybrid.compile import _executable, _optimize

        graph = backward_graph(_replayed(entry), record.rg_inputs, record.rg_outputs)
        graph, _ = _optimize(graph, None)
        entry.backward = _executable(graph, backend=entry.backend)  # where the forward runs
    xp = array_module(g._value)
    cots = [xp.zeros(v.shape, v.dtype) for v in record.out_types]
    cots[node.attrs["position"]] = g._value
    grads = entry.backward(list(record.primals) + cots)
    return tuple(wrap(a) for a in grads)




def _replayed(entry: Any) -> Graph:
    """The graph a backward replays: the optimized one, or the traced one when the code used
    detach() or no_grad() (the marks name the traced graph's nodes)."""
    stages = getattr(entry, "stages", None) or []
    if not stages or not has_marks(stages[0].graph):
        return entry.graph
    traced = stages[0].graph
    if len(traced.inputs) != len(entry.graph.inputs):
        raise errors.AutogradError(errors.at_user(
            "backward through a compiled call that uses detach() or no_grad(): its traced and "
            "optimized graphs take different inputs; call loss.backward() inside the compiled "
            "function instead"))
    return traced


def register() -> None:
    from hybrid.ops.vjp import VJP

    VJP[COMPILED_CALL] = _vjp  # type: ignore[index]
