"""Tracing the body of a loop or a branch (hybrid.scan, while_loop, cond) into a graph of its own
while an outer trace is active.

The body's arguments are fresh graph inputs. A tensor the body reads from outside (a traced
value of the enclosing function, a parameter, a closure tensor) becomes one more input of the
body — a *capture* — and the control-flow node passes the outer tensor in its place. What a
body cannot do, because the loop would replay it or the outside would not see it, is an error
naming the body: update an outside tensor in place, draw random numbers, touch `.grad`, read
an optimizer hyperparameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compiler.ir.graph import Graph, Value
from hybrid import errors
from hybrid.ops.core import STATE, type_of, wrap
from hybrid.tracing import GRAD_MARKS, Tracer


class BodyTracer(Tracer):
    """Records a body into its own graph; `outer` (the enclosing tracer) supplies captures."""

    def __init__(self, name: str, what: str, outer: Any):
        super().__init__(name)
        self.what = what  # "the body of hybrid.scan", for messages
        self.outer = outer
        self.captured: list[Any] = []  # outer tensors, in the order of their body inputs
        self._capture_of: dict[tuple, Value] = {}  # (outer value id, rg) -> body input

    def __enter__(self) -> BodyTracer:
        self._prev_state = (STATE.tracer, STATE.fast)
        STATE.tracer = self
        STATE.fast = False
        return self

    def __exit__(self, *exc: Any) -> None:
        STATE.tracer, STATE.fast = self._prev_state

    def value_of(self, t: Any) -> Value:
        v = t._value
        if v.__class__ is Value and v.id in self._values:
            return v
        if self.outer is None:
            raise errors.TraceError(errors.at_user(
                f"{self.what} read a tensor from outside it; pass it as an operand"))
        ov = self.outer.value_of(t)  # the outer trace's value (lifted there if new)
        # NOTE: w and w.detach() are two captures: only the first passes gradient on
        key = (ov.id, bool(t._rg))
        mine = self._capture_of.get(key)
        if mine is None:
            mine = self.new_input(ov.type, f"captured{len(self.captured)}")
            self._capture_of[key] = mine
            self.captured.append(t)
            if t._rg and STATE.grad:
                self._with_grad.add(mine.id)
        return mine

    def lift(self, t: Any, name: str = "") -> Value:
        return self.value_of(t)

    def input_tensor(self, t: Any, name: str) -> Any:
        """A body argument of type `t`; a float one carries gradient (as the loop's operands
        may), so that detach() and no_grad() inside the body can be seen."""
        v = self.new_input(t, name)
        x = wrap(v)
        if t.dtype.is_floating and STATE.grad:
            x._rg = True
            self._with_grad.add(v.id)
        return x

    def assign(self, x: Any, r: Any) -> None:
        v = x._value
        if not (v.__class__ is Value and v.id in self._values):
            raise errors.TraceError(errors.at_user(
                f"{self.what} updated a tensor from outside it in place ({type_of(x)}); a loop "
                "body must be a function of its arguments: return the new value as part of "
                "the carry instead"))
        super().assign(x, r)

    def _refuse(self, what: str) -> Any:
        raise errors.TraceError(errors.at_user(
            f"{self.what} {what}; this is not supported inside a compiled loop or branch "
            "body: do it outside the loop, or pass what it needs as an operand"))

    def rng_draw(self, gen: Any, n: int) -> int:
        return self._refuse("draws random numbers (dropout, rand)")

    def touch_grad(self, owner: Any) -> None:
        self._refuse("reads or writes .grad")

    def hyper(self, group: dict, key: str, index: int | None, like: Any) -> Any:
        return self._refuse("reads an optimizer hyperparameter")


def trace_body(fn: Callable[..., Any], types: list, what: str, name: str) -> tuple:
    """Trace `fn(*tensors)` on fresh inputs of `types` under the active trace. Returns
    (tracer, input tensors, the result fn returned); the caller sets the graph's outputs
    with `finish`."""
    tracer = BodyTracer(name, what, STATE.tracer)
    with tracer:
        ins = [tracer.input_tensor(t, f"in{i}") for i, t in enumerate(types)]
        result = fn(*ins)
    return tracer, ins, result


def finish(tracer: BodyTracer, outs: list) -> Graph:
    """Set the body graph's outputs (tensors the body returned) and return the graph."""
    with tracer:
        values = [tracer.value_of(o) for o in outs]
    tracer.graph.set_outputs(values)
    return tracer.graph


def same_marks(new: Graph, old: Graph) -> Graph:
    """`new` (a copy of body `old` with other inputs or outputs) replays as `old` does: its
    gradient marks and the custom Functions noted while tracing `old`."""
    from hybrid.autograd_function_compiled import _CALLS

    if old in GRAD_MARKS:
        GRAD_MARKS[new] = GRAD_MARKS[old]
    if old in _CALLS:
        _CALLS[new] = _CALLS[old]
    return new


def align(graph: Graph, n_lead: int, own: list, union: list) -> Graph:
    """`graph` (inputs: n_lead leading ones, then its captures `own`) with inputs for every
    capture in `union` in that order, so two bodies of one node take the same inputs."""
    lead = list(graph.inputs[:n_lead])
    mine = {id(t): v for t, v in zip(own, graph.inputs[n_lead:])}
    extra = []
    for t in union:
        v = mine.get(id(t))
        extra.append(v if v is not None else Value(type_of_outer(t)))
    names = [f"in{i}" for i in range(n_lead)] + [f"captured{i}" for i in range(len(union))]
    return same_marks(Graph(inputs=lead + extra, nodes=list(graph.nodes),
                            outputs=list(graph.outputs), input_names=names,
                            output_names=list(graph.output_names), name=graph.name), graph)


def type_of_outer(t: Any) -> Any:
    """The type of an outer tensor as the enclosing trace sees it."""
    v = t._value
    return v.type if v.__class__ is Value else type_of(t)


def union(*lists: list) -> list:
    """The captures of several bodies, each once (by object), in first-seen order."""
    out, seen = [], set()
    for lst in lists:
        for t in lst:
            if id(t) not in seen:
                seen.add(id(t))
                out.append(t)
    return out
