"""Tracing: run a Python function on tracer tensors (the same Tensor class holding graph Values)
and record each primitive it calls into a compiler Graph.

Tensors that exist before the trace (arguments, parameters, optimizer state, closure tensors, the
RNG state) become graph inputs the first time the trace touches them: their `_value` is swapped
for an input Value during the trace and restored afterwards. What the function did to them
(in-place updates, new .grad, .grad set to None, RNG draws) is recorded as effects that every
compiled call replays, so the Python objects end up as eager execution would leave them."""

from __future__ import annotations

import weakref

import numpy as _np
from dataclasses import dataclass, field
from typing import Any

from compiler.ir.graph import Graph, Value
from compiler.ir.ops import OPS, Op
from compiler.ir.types import OpError
from hybrid import errors
from hybrid.ops import core
from hybrid.ops.core import STATE, type_of


@dataclass
class Lifted:
    """A pre-existing tensor made a graph input, and what it held before the trace."""

    tensor: Any
    value: Value
    array: Any
    node: Any
    requires_grad: bool
    version: int
    grad_of: int | None = None  # lifted index of the tensor whose original .grad this is


@dataclass
class Effects:
    """What a traced call does besides returning values, as indices into the graph outputs."""

    writes: list[tuple[int, int]] = field(default_factory=list)  # (lifted index, output index)
    grads: list[tuple[int, int | None]] = field(default_factory=list)  # (lifted index, out/None)
    rng: list[tuple[Any, int]] = field(default_factory=list)  # (generator, draws per call)


@dataclass
class Hyper:
    """An optimizer hyperparameter read as a runtime value: a 0-d tensor refreshed every call."""

    holder: Any  # the Tensor the graph reads (a captured input)
    group: dict
    key: str
    index: int | None
    dtype: Any  # numpy dtype of the holder

    def refresh(self) -> None:
        v = self.group[self.key]
        if self.index is not None:
            v = v[self.index]
        self.holder._value = _np.asarray(v, self.dtype)


def storage_root(t: Any) -> Any:
    """The tensor whose storage `t` shares: through views (`_base`) and aliases (detach, .data)."""
    while True:
        b = t._base if t._base is not None else t._alias_of
        if b is None:
            return t
        t = b


def _same_memory(a: Any, b: Any) -> bool:
    """Two arrays with the same data pointer, shape and strides (one storage, one view of it)."""
    try:
        return (a.shape == b.shape and a.strides == b.strides
                and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])
    except (AttributeError, TypeError):
        return a is b


# trace graph -> (ids of nodes recorded with grad mode off, {(node result id, input position)}
# where the code read a detached alias of a value that carries gradient). A graph has no
# stop-gradient op, so a differentiable replay of it (the backward of a compiled call run
# outside it, a loop body's vjp) reads these to honour x.detach() and hybrid.no_grad().
GRAD_MARKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def replay_node(node: Any, ins: list, marks: tuple | None) -> Any:
    """`node` applied to tensors `ins` as the traced code ran it (see GRAD_MARKS)."""
    from hybrid.ops.core import apply

    if marks is None:
        return apply(node.op, *ins, **node.attrs)
    no_grad_ids, stops = marks
    if stops:
        ins = [x.detach() if (node.out.id, i) in stops else x for i, x in enumerate(ins)]
    if node.out.id in no_grad_ids:
        from hybrid.autograd import no_grad

        with no_grad():
            return apply(node.op, *ins, **node.attrs)
    return apply(node.op, *ins, **node.attrs)


def has_marks(graph: Graph) -> bool:
    m = GRAD_MARKS.get(graph)
    return bool(m and (m[0] or m[1]))


class Tracer:
    """Records primitives into `graph` while active (see `hybrid.ops.core.STATE.tracer`)."""

    def __init__(self, name: str, namer=None):
        self.graph = Graph(name=name)
        self.lifted: list[Lifted] = []
        self._by_id: dict[int, int] = {}
        self._rng: dict[int, list] = {}
        self._views: dict[int, list] = {}  # value id -> weakrefs of live views taken of it
        self._by_root: dict[int, list[int]] = {}  # id(storage root tensor) -> lifted indices
        self._namer = namer or (lambda t: "")
        self._values: set[int] = set()
        self._grads: dict[int, tuple[Any, Any]] = {}  # id(owner) -> (owner, .grad before trace)
        self._orig_grad: dict[int, int] = {}  # id(original .grad) -> id(owner)
        self.hypers: list[Hyper] = []
        self._hyper_by: dict[tuple, Any] = {}
        self.loc: str | None = None  # when set, the source line recorded on new nodes
        self._with_grad: set[int] = set()  # values that carry gradient in the trace
        self.no_grad: set[int] = set()  # nodes (by result id) recorded with grad mode off
        self.stops: set[tuple[int, int]] = set()  # (result id, input position): detached read
        GRAD_MARKS[self.graph] = (self.no_grad, self.stops)

    # --- entering and leaving -------------------------------------------------------------------

    def __enter__(self) -> Tracer:
        if STATE.tracer is not None:
            raise errors.TraceError(errors.at_user(
                "a compiled function was called while tracing another one; nesting "
                "@hybrid.compile is not supported: call the inner function undecorated"))
        self._prev = (STATE.fast,)
        STATE.tracer = self
        STATE.fast = False
        return self

    def __exit__(self, *exc: Any) -> None:
        STATE.tracer = None
        (STATE.fast,) = self._prev
        self.restore()

    # --- inputs ---------------------------------------------------------------------------------

    def lift(self, t: Any, name: str = "") -> Value:
        """Make pre-existing tensor `t` a graph input for the rest of the trace. A tensor with
        autograd history from outside is a leaf inside the trace; a compiled call's backward
        hands its gradient on to that history (hybrid.compile_backward)."""
        owner = self._orig_grad.get(id(t))
        v = self.graph.add_input(type_of(t), name or self._namer(t) or self._grad_name(owner)
                                 or f"captured{len(self.lifted)}")
        grad_of = self._by_id.get(owner) if owner is not None else None
        self.lifted.append(Lifted(t, v, t._value, t._node, t._rg, t._version, grad_of))
        self._by_id[id(t)] = len(self.lifted) - 1
        self._values.add(v.id)
        if t._rg:
            self._with_grad.add(v.id)
        t._value = v
        t._node = None
        root = storage_root(t)
        if root is not t or id(t) in self._by_root:
            self._by_root.setdefault(id(root), []).append(len(self.lifted) - 1)
            self._see_update(t, root)
        else:
            self._by_root[id(t)] = [len(self.lifted) - 1]
        return t._value

    def _grad_name(self, owner: int | None) -> str:
        if owner is None or owner not in self._by_id:
            return ""
        return f"{self.graph.input_names[self._by_id[owner]]}.grad"

    def touch_grad(self, owner: Any) -> None:
        """`owner.grad` is read or written: remember what it held before the trace (the guard
        `grad is None` and the write-back), and make owner an input so effects can name it."""
        key = id(owner)
        if key in self._grads:
            return
        g = owner._grad
        self._grads[key] = (owner, g)
        if key not in self._by_id and not is_traced(owner):
            self.lift(owner)
        if g is not None and not is_traced(g):
            self._orig_grad[id(g)] = key

    def hyper(self, group: dict, key: str, index: int | None, like: Any) -> Any:
        """The 0-d tensor (of `like`'s dtype) that holds hyperparameter group[key][index]."""
        from hybrid.ops.core import wrap

        dtype = _np.dtype(like.dtype.np if hasattr(like.dtype, "np") else like.dtype)
        k = (id(group), key, index, dtype.str)
        t = self._hyper_by.get(k)
        if t is None:
            t = wrap(_np.zeros((), dtype))
            h = Hyper(t, group, key, index, dtype)
            h.refresh()
            self.hypers.append(h)
            self._hyper_by[k] = t
            self.lift(t, f"{key}" if index is None else f"{key}[{index}]")
        return t

    def new_input(self, type_: Any, name: str) -> Value:
        """A fresh graph input that no Python tensor held before."""
        v = self.graph.add_input(type_, name)
        self._values.add(v.id)
        return v

    def value_of(self, t: Any) -> Value:
        v = t._value
        if v.__class__ is Value:
            if v.id not in self._values:
                raise errors.TraceError(errors.at_user(
                    "a tensor created inside an earlier trace of a compiled function escaped it "
                    "(stored in a Python object or global); return it from the function instead"))
            return v
        return self.lift(t)

    # --- recording ------------------------------------------------------------------------------

    def record(self, op: Op, xs: tuple, attrs: dict) -> Value:
        """Append `op(*xs, **attrs)` to the graph; the user's file:line is kept on the node."""
        vals = [self.value_of(x) for x in xs]
        try:
            loc = self.loc if self.loc is not None else errors.user_location(2)
            out = self.graph.add(op, vals, loc=loc, **attrs)
        except OpError as e:
            raise errors.error(e.kind, str(e)) from None
        self._values.add(out.id)
        self._mark(op, xs, out)
        return out

    def _mark(self, op: Op, xs: tuple, out: Value) -> None:
        """Keep GRAD_MARKS: a node under no_grad, a read of a detached alias."""
        from hybrid.ops.core import STATE as _S

        if not _S.grad:
            self.no_grad.add(out.id)
            return
        carried = False
        for i, x in enumerate(xs):
            v = x._value
            if x._rg:
                carried = True
            elif v.__class__ is Value and v.id in self._with_grad:
                self.stops.add((out.id, i))
        if carried and OPS[op].differentiable and out.type.dtype.is_floating:
            self._with_grad.add(out.id)

    def note_view(self, view: Any, base: Any) -> None:
        """Remember that `view` aliases `base` (an in-place update of base would not reach it)."""
        v = base._value
        if v.__class__ is Value:
            self._views.setdefault(v.id, []).append(weakref.ref(view))

    def assign(self, x: Any, r: Any) -> None:
        """In-place update of `x` to the value of `r`, functionalized: x now holds r's Value."""
        if x._base is not None:
            raise errors.TraceError(errors.at_user(
                f"in-place update of a view ({type_of(x)}) inside @hybrid.compile is not "
                "supported; update the base tensor (e.g. base[idx] = value) or use out-of-place "
                "ops"))
        cur = self.value_of(x)
        live = [w() for w in self._views.get(cur.id, ()) if w() is not None]
        if any(u._value is x._value for u in live):
            raise errors.TraceError(errors.at_user(
                f"in-place update of a tensor ({type_of(x)}) whose view is still in use inside "
                "@hybrid.compile: the view would not see the update; take the view after the "
                "update, or use out-of-place ops"))
        x._value = self.value_of(r)
        if x._alias_of is not None:  # .data / .detach(): the same storage as another tensor
            self.assign(x._alias_of, r)
        else:
            self._sync_aliases(x)

    # --- tensors that share storage (x and x.detach(), x and x[0] passed together) -------------

    def _sync_aliases(self, root: Any) -> None:
        """`root` (no view, no alias) was updated in place: every lifted tensor on its storage
        sees the update, as in eager; one that views part of it cannot, and is an error."""
        for j in self._by_root.get(id(root), ()):
            y = self.lifted[j].tensor
            if y is not root:
                self._follow(y, root)

    def _see_update(self, t: Any, root: Any) -> None:
        """`t`, lifted now, shares storage with `root`: if root was already updated in this
        trace, t holds the new value."""
        i = self._by_id.get(id(root))
        if i is not None and root._value is not self.lifted[i].value:
            self._follow(t, root)

    def _follow(self, y: Any, root: Any) -> None:
        ya, ra = self.lifted[self._by_id[id(y)]].array, root
        i = self._by_id.get(id(root))
        if i is not None:
            ra = self.lifted[i].array
        if _same_memory(ya, ra):
            y._value = root._value
            return
        raise errors.TraceError(errors.at_user(
            f"an in-place update of a tensor ({type_of(root)}) inside @hybrid.compile reaches "
            f"another input that is a view of part of it ({type_of(y)}); pass the base tensor "
            "only (and take the view inside the function), or pass a clone of the view"))

    def rng_draw(self, gen: Any, n: int) -> int:
        """Reserve `n` values of generator `gen`'s stream; returns their offset in this call."""
        entry = self._rng.setdefault(id(gen), [gen, 0])
        offset = entry[1]
        entry[1] += n
        return offset

    # --- finishing ------------------------------------------------------------------------------

    def effects(self) -> tuple[list[Value], list[str], Effects]:
        """Extra outputs and the effects that write them back (call before `restore`)."""
        extra: list[Value] = []
        names: list[str] = []
        fx = Effects()
        for i, rec in enumerate(self.lifted):
            t = rec.tensor
            if t._value is not rec.value:
                fx.writes.append((i, len(extra)))
                extra.append(self.value_of(t))
                names.append(f"{self.graph.input_names[i]} (updated)")
        for owner, before in self._grads.values():
            g = owner._grad
            i = self._by_id.get(id(owner))
            if g is before or i is None:  # unchanged, or a tensor created inside the trace
                continue
            if self.lifted[i].node is not None:
                raise errors.TraceError(errors.at_user(
                    f"backward() inside the compiled function reaches a tensor with autograd "
                    f"history from outside it ({self.graph.input_names[i] or 'an input'}); "
                    "return the loss and call backward() outside, or pass .detach() of it"))
            if g is None:
                fx.grads.append((i, None))
            else:
                fx.grads.append((i, len(extra)))
                extra.append(self.value_of(g))
                names.append(f"{self.graph.input_names[i]}.grad")
        fx.rng = [(gen, n) for gen, n in self._rng.values()]
        return extra, names, fx

    def grad_guards(self) -> list[tuple[int, bool]]:
        """(lifted index, .grad was None) of every tensor whose .grad the trace read or wrote."""
        return [(self._by_id[k], before is None) for k, (_, before) in self._grads.items()
                if k in self._by_id]

    def restore(self) -> None:
        """Give every lifted tensor back its array, history and grad."""
        for rec in self.lifted:
            t = rec.tensor
            t._value, t._node, t._rg, t._version = (
                rec.array, rec.node, rec.requires_grad, rec.version)
        for owner, before in self._grads.values():
            owner._grad = before


def hyperparameter(group: dict, key: str, like: Any, index: int | None = None) -> Any:
    """An optimizer hyperparameter `group[key]` (or `group[key][index]`): the Python number
    eagerly; while tracing, a 0-d tensor of `like`'s dtype that the compiled step reads from the
    group on every call, so changing it (an LR scheduler) does not recompile. Branch on it in
    Python only as `group[key] != 0`: the cache key keeps just that much of it."""
    v = group[key] if index is None else group[key][index]
    tracer = STATE.tracer
    if tracer is None or v.__class__ not in (float, int):
        return v
    return tracer.hyper(group, key, index, like)


def is_traced(t: Any) -> bool:
    return getattr(t._value, "traced", False)


core.Value = Value
