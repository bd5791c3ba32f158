"""Loops and branches that compile as loops and branches: `hybrid.scan`, `hybrid.while_loop`,
`hybrid.cond` (jax.lax's and torch's higher-order ops).

Eagerly each is the plain Python loop or `if` (autograd records every step, as PyTorch eager
does). Under @hybrid.compile the body is traced once into a graph of its own and the enclosing
graph gets one control-flow node (compiler/ir/control.py), so tracing and compile time do not
grow with the number of steps, and a while loop's trip count may depend on the data.

Gradients under compile: a scan or cond is a custom autograd Function whose backward is again a
scan (in the opposite direction) or a cond over the body's gradient, so `loss.backward()` inside
or outside the compiled function works, to any order. A while loop is not differentiable under
compile (its trip count is only known at run time; use scan with a fixed length)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from compiler.ir import control
from compiler.ir.control import Body
from compiler.ir.graph import Graph
from compiler.ir.ops import CONTROL, Op
from hybrid import errors
from hybrid.autograd_function import Function
from hybrid.compile_tree import flatten, unflatten
from hybrid.ops.core import STATE, apply, type_of, wrap
from hybrid.tracing_body import align, finish, same_marks, trace_body, union


def _tensor_leaves(fn_name: str, what: str, obj: Any) -> tuple[list, Any]:
    from hybrid.tensor import Tensor

    leaves, spec = flatten(obj)
    for leaf in leaves:
        if not isinstance(leaf, Tensor):
            raise errors.error(errors.DTypeError, (
                f"{fn_name}: every leaf of {what} must be a tensor, got "
                f"{type(leaf).__name__} ({leaf!r}); wrap numbers with hybrid.tensor(...)"))
    return leaves, spec


def _same_types(fn_name: str, what: str, got: list, want: list) -> None:
    if len(got) == len(want) and all(
            tuple(t.shape) == w.shape and t._value.dtype == w.dtype.np for t, w in zip(got, want)):
        return
    g, w = [str(type_of(t)) for t in got], [str(t) for t in want]
    if g != w:
        raise errors.error(errors.ShapeError, (
            f"{fn_name}: {what} must keep the carry's structure, shapes and dtypes: it gave "
            f"({', '.join(g)}) for a carry of ({', '.join(w)}); cast or reshape inside the body"))


# --- scan --------------------------------------------------------------------------------------

def scan(fn: Callable, init: Any, xs: Any = None, length: int | None = None,
         reverse: bool = False, dim: int = 0) -> tuple[Any, Any]:
    """`carry, ys = scan(fn, init, xs)`: `carry, y = fn(carry, x)` for each slice x of xs along
    `dim` (from the last when `reverse`), ys stacked along `dim`. init, carry, xs and y may be
    nested tuples/lists/dicts of tensors; xs may be None with `length` steps."""
    c_leaves, c_spec = _tensor_leaves("scan", "init", init)
    x_leaves, x_spec = _tensor_leaves("scan", "xs", xs) if xs is not None else ([], None)
    for x in x_leaves:
        if not -x.ndim <= dim < max(x.ndim, 1):
            raise errors.error(IndexError, (
                f"scan: dim {dim} is out of range for an xs tensor of {x.ndim} dims "
                f"({type_of(x)})"))
    if dim:
        x_leaves = [_move(x, dim, 0) for x in x_leaves]
    if length is not None and int(length) < 0:
        raise errors.error(errors.ShapeError, f"scan: length must be >= 0, got {length}")
    n = _length(x_leaves, length)

    def step(carry_leaves: list, x_slices: list) -> tuple[list, list, Any]:
        out = fn(unflatten(c_spec, carry_leaves),
                 unflatten(x_spec, x_slices) if x_spec is not None else None)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise errors.error(errors.DTypeError, (
                "scan: the body must return a pair (new_carry, y); y may be None"))
        nc, _ = _tensor_leaves("scan", "the body's new carry", out[0])
        _same_types("scan", "the body's new carry", nc, [type_of(c) for c in c_leaves])
        ys, y_spec = _tensor_leaves("scan", "the body's y", out[1]) if out[1] is not None \
            else ([], None)
        return nc, ys, y_spec

    if STATE.tracer is None:
        carry, ys, y_spec = _eager_scan(step, c_leaves, x_leaves, n, reverse)
        carry = _fresh(carry)
    else:
        carry, ys, y_spec = _traced_scan(step, c_leaves, x_leaves, n, reverse)
    if dim:
        ys = [_move(y, 0, dim) for y in ys]
    return unflatten(c_spec, carry), unflatten(y_spec, ys) if y_spec is not None else None


def _fresh(tensors: list) -> list:
    """Copies: the results of a loop or branch are new tensors, never one of its inputs or a
    view of one (compiled code cannot alias them, so eager does not either)."""
    return [t.clone() for t in tensors]


def _move(x: Any, src: int, dst: int) -> Any:
    """x with dim `src` moved to position `dst` (torch.movedim)."""
    n = x.ndim
    src, dst = src % n, dst % n
    order = [d for d in range(n) if d != src]
    order.insert(dst, src)
    return x.permute(*order)


def _length(x_leaves: list, length: int | None) -> int:
    sizes = {int(x.shape[0]) for x in x_leaves if x.ndim}
    if any(x.ndim == 0 for x in x_leaves):
        raise errors.error(errors.ShapeError, (
            "scan: every xs tensor needs the scanned dim; got a 0-d tensor"))
    if length is not None:
        sizes.add(int(length))
    if len(sizes) != 1:
        raise errors.error(errors.ShapeError, (
            f"scan: the xs (and length) give different numbers of steps: {sorted(sizes)}"
            if sizes else "scan: with no xs, pass length="))
    return sizes.pop()


def _eager_scan(step: Callable, carry: list, xs: list, n: int, reverse: bool) -> tuple:
    from hybrid.ops.shape import stack, unbind

    order = range(n - 1, -1, -1) if reverse else range(n)
    per_step: list[list] = []
    y_spec = None
    # NOTE: unbind, not x[t]: one node whose backward stacks the slices' gradients (the
    # backward of T indexings would add T full-size zero-padded gradients)
    slices = [unbind(x, 0) for x in xs]
    for t in order:
        carry, ys, y_spec = step(carry, [s[t] for s in slices])
        per_step.append(ys)
    if reverse:
        per_step.reverse()
    if not per_step:  # zero steps: y's structure is unknown without a trace
        _, ys0, y_spec = _shape_only(step, carry, xs)
        return carry, ys0, y_spec
    return carry, [stack([s[j] for s in per_step]) for j in range(len(per_step[0]))], y_spec


def _shape_only(step: Callable, carry: list, xs: list) -> tuple:
    """A zero-step scan's ys: the body is traced once for their types, empty results."""
    from hybrid.ops.creation import zeros
    from hybrid.tracing import Tracer

    with Tracer("scan_shapes"):
        fake = [wrap(STATE.tracer.new_input(type_of(c), "c")) for c in carry]
        fx = [wrap(STATE.tracer.new_input(_slice_type(x), "x")) for x in xs]
        _, ys, y_spec = step(fake, fx)
        types = [type_of(y) for y in ys]
    return carry, [zeros((0,) + t.shape, dtype=_dtype(t)) for t in types], y_spec


def _dtype(t: Any) -> Any:
    from hybrid.dtypes import as_dtype

    return as_dtype(t.dtype.np)


def _slice_type(x: Any) -> Any:
    from compiler.ir.types import TensorType

    t = type_of(x)
    return TensorType(t.shape[1:], t.dtype)


class _ScanSpec:
    """What a scan node needs besides its tensor inputs (a custom Function argument)."""

    def __init__(self, body: Body, n_carry: int, n_x: int, length: int, reverse: bool):
        self.body, self.n_carry, self.n_x = body, n_carry, n_x
        self.length, self.reverse = length, reverse
        self.n_y = len(body.graph.outputs) - n_carry
        g = body.graph
        # saved per step for the backward instead of recomputed there: the products (the
        # expensive part of a step; what jax's checkpoint_dots policy keeps)
        self.saved = [n.out for n in g.nodes if n.op is Op.MATMUL and n.out.dtype.is_floating]
        self._saving: Body | None = None

    def saving(self) -> Body:
        """The body that also returns the saved values (as extra ys)."""
        if self._saving is None:
            g = self.body.graph
            self._saving = Body(same_marks(Graph(
                inputs=list(g.inputs), nodes=list(g.nodes), outputs=list(g.outputs) + self.saved,
                input_names=list(g.input_names),
                output_names=list(g.output_names) + [f"saved{i}" for i in range(len(self.saved))],
                name=g.name), g))
        return self._saving

    def nodes(self, inputs: list, history: bool, save: bool = False) -> list:
        """The scan's results: carries, ys (then the saved values when `save`), history."""
        body = self.saving() if save else self.body
        n_y = self.n_y + (len(self.saved) if save else 0)
        n = self.n_carry + n_y + (self.n_carry if history else 0)
        return [apply(Op.SCAN, *inputs, body=body, n_carry=self.n_carry, n_x=self.n_x,
                      length=self.length, reverse=self.reverse, history=history, index=k)
                for k in range(n)]


def _traced_scan(step: Callable, carry: list, xs: list, n: int, reverse: bool) -> tuple:
    types = [type_of(c) for c in carry] + [_slice_type(x) for x in xs]
    nc = len(carry)
    box: dict = {}

    def body(*ins: Any) -> list:
        new, ys, box["y_spec"] = step(list(ins[:nc]), list(ins[nc:]))
        return new + ys

    tracer, _, outs = trace_body(body, types, "the body of hybrid.scan", "scan_body")
    graph = finish(tracer, outs)
    spec = _ScanSpec(Body(graph), nc, len(xs), n, reverse)
    res = _ScanFn.apply(spec, *carry, *xs, *tracer.captured)
    res = list(res) if isinstance(res, tuple) else [res]
    return res[:nc], res[nc:], box["y_spec"]


class _ScanFn(Function):
    """A traced scan with its gradient: the backward is a scan of the body's vjp, the other
    way round, over the carries saved at every step."""

    @staticmethod
    def forward(ctx: Any, spec: _ScanSpec, *inputs: Any) -> Any:
        history = any(ctx.needs_input_grad)
        save = history and bool(spec.saved)
        outs = spec.nodes(list(inputs), history, save)
        k = spec.n_carry + spec.n_y
        m = k + (len(spec.saved) if save else 0)
        ctx.spec, ctx.inputs, ctx.steps, ctx.history = spec, inputs, outs[k:m], outs[m:]
        return tuple(outs[:k])

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        from hybrid.ops.creation import zeros_like

        _first_order_only("scan")
        spec, inputs = ctx.spec, list(ctx.inputs)
        nc, nx = spec.n_carry, spec.n_x
        carries, xs, consts = inputs[:nc], inputs[nc:nc + nx], inputs[nc + nx:]
        fc = [i for i, c in enumerate(carries) if c.dtype.is_floating]
        fk = [j for j, k in enumerate(consts) if k.dtype.is_floating
              and ctx.needs_input_grad[1 + nc + nx + j]]
        fx = [j for j, x in enumerate(xs) if x.dtype.is_floating
              and ctx.needs_input_grad[1 + nc + j]]
        outs = spec.body.graph.outputs
        fy = [j for j in range(spec.n_y) if outs[nc + j].type.dtype.is_floating]
        g_carry = [_grad_or_zeros(grads[i], carries[i]) for i in fc]
        g_ys = [grads[nc + j] if grads[nc + j] is not None else None for j in fy]
        g_ys = [g if g is not None else _zeros_of(outs[nc + j].type, spec.length)
                for g, j in zip(g_ys, fy)]
        graph = spec.body.graph

        saved_ids = [v.id for v in spec.saved][:len(ctx.steps)]

        def vjp_step(carry_b: tuple, x_b: tuple) -> tuple:
            c_t, x_t = list(x_b[:nc]), list(x_b[nc:nc + nx])
            gy = list(x_b[nc + nx:nc + nx + len(fy)])
            subst = dict(zip(saved_ids, x_b[nc + nx + len(fy):]))
            gc, gk = list(carry_b[:len(fc)]), list(carry_b[len(fc):])
            prims = c_t + x_t + list(consts)
            d_c, d_x, d_k = _body_vjp(graph, prims, nc, nx, fc, fx, fk, gc, fy, gy, subst)
            return tuple(d_c) + tuple(a + b for a, b in zip(gk, d_k)), tuple(d_x)

        init = tuple(g_carry) + tuple(zeros_like(consts[j]) for j in fk)
        seq = tuple(ctx.history) + tuple(xs) + tuple(g_ys) + tuple(ctx.steps)
        carry_out, d_xs = scan(vjp_step, init, seq, length=spec.length,
                               reverse=not spec.reverse)
        result: list = [None] * len(inputs)
        for i, g in zip(fc, carry_out[:len(fc)]):
            result[i] = g
        for j, g in zip(fk, carry_out[len(fc):]):
            result[nc + nx + j] = g
        for j, g in zip(fx, d_xs):
            result[nc + j] = g
        return (None, *result)


def _first_order_only(name: str) -> None:
    """create_graph=True (a gradient of a gradient) through a compiled loop or branch is refused:
    its backward reads the forward's saved steps, which carry no graph of their own."""
    if STATE.grad:
        raise errors.error(errors.AutogradError, (
            f"second-order gradients (create_graph=True) through a compiled hybrid.{name} are "
            "not supported yet; compute them eagerly (without @hybrid.compile) or take one "
            "order of gradient"))


def _grad_or_zeros(g: Any, like: Any) -> Any:
    from hybrid.ops.creation import zeros_like

    return g if g is not None else zeros_like(like)


def _zeros_of(t: Any, n: int | None = None) -> Any:
    """Zeros of IR type `t` (stacked `n` times when given)."""
    from hybrid.ops.creation import zeros

    return zeros(((n,) if n is not None else ()) + tuple(t.shape), dtype=_dtype(t))


def _body_vjp(graph: Graph, prims: list, nc: int, nx: int, fc: list, fx: list, fk: list,
              gc: list, fy: list, gy: list, subst: dict) -> tuple[list, list, list]:
    """One step's vjp: the float new carries and ys against the float carries fc, xs fx and
    consts fk, with cotangents gc and gy; `subst`: values saved by the forward (by id)."""
    want = fc + [nc + j for j in fx] + [nc + nx + j for j in fk]
    got = _graph_vjp(graph, prims, want, fc + [nc + j for j in fy], gc + gy, subst)
    return got[:len(fc)], got[len(fc):len(fc) + len(fx)], got[len(fc) + len(fx):]


# --- replaying a body graph as tensor ops (for its gradient) ------------------------------------

def replay(graph: Graph, tensors: list, subst: dict | None = None) -> list:
    """Run `graph`'s nodes as Tensor ops on `tensors` (recorded, on the tape where grad is on),
    as the body did: a node traced under no_grad runs under no_grad, a detached read reads a
    detached alias, a custom Function's outputs come from calling it again (its backward is
    the user's), control-flow nodes go through their differentiable forms. `subst`: value id
    -> a tensor holding that node's value, used in its place (its gradient still flows to the
    node's inputs, and the node itself is left for dead code elimination)."""
    from hybrid.autograd_function_compiled import _CALLS, _refusal, _replay
    from hybrid.tracing import GRAD_MARKS, replay_node

    marks = GRAD_MARKS.get(graph)
    calls = _CALLS.get(graph) or []
    made_by = {v.id: c for c in calls for v in c.outputs.values()}
    env = {v.id: t for v, t in zip(graph.inputs, tensors)}
    done: dict[tuple, list] = {}
    for node in graph.nodes:
        if node.out.id in env:  # an output of a Function replayed at an earlier node
            continue
        call = made_by.get(node.out.id)
        if call is not None:
            if not call.replayable:
                raise _refusal(call.cls.__name__)
            _replay(call, env)
            continue
        ins = [env[v.id] for v in node.inputs]
        if node.op in CONTROL:
            key = control.group_key(node)
            if key not in done:
                done[key] = _replay_control(node, ins)
            env[node.out.id] = done[key][node.attrs.get("index", 0)]
            continue
        out = replay_node(node, ins, marks)
        if subst and node.out.id in subst:
            out = _Substitute.apply(out, subst[node.out.id])
        env[node.out.id] = out
    return [env[v.id] for v in graph.outputs]


class _Substitute(Function):
    """`saved` in the place of `computed` (the same value): the gradient goes to `computed`."""

    @staticmethod
    def forward(ctx: Any, computed: Any, saved: Any) -> Any:
        return saved

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        return g, None


def _replay_control(node: Any, ins: list) -> list:
    a = node.attrs
    if node.op is Op.SCAN:
        spec = _ScanSpec(a["body"], a["n_carry"], a["n_x"], a["length"], a["reverse"])
        res = _ScanFn.apply(spec, *ins)
        res = list(res) if isinstance(res, tuple) else [res]
        if a["history"]:  # the saved carries of a scan inside a gradient: recomputed as is
            res += spec.nodes(ins, True)[len(res):]
        return res
    if node.op is Op.COND:
        res = _CondFn.apply(_CondSpec(a["then"], a["else_"]), *ins)
        return list(res) if isinstance(res, tuple) else [res]
    _refuse_while_grad(ins)
    return _while_nodes(ins, a["cond"], a["body"], a["n_carry"])


# --- while_loop -----------------------------------------------------------------------------

def while_loop(cond_fn: Callable, body_fn: Callable, carried_inputs: Any) -> Any:
    """torch's while_loop: `while cond_fn(*carry): carry = body_fn(*carry)`; returns the carry
    (a tuple, as torch does). cond_fn returns a bool tensor of one element (or a bool)."""
    single = not isinstance(carried_inputs, (tuple, list))
    carry0 = (carried_inputs,) if single else tuple(carried_inputs)
    c_leaves, c_spec = _tensor_leaves("while_loop", "carried_inputs", carry0)

    def body(leaves: list) -> list:
        out = body_fn(*unflatten(c_spec, leaves))
        if single and not isinstance(out, (tuple, list)):
            out = (out,)
        if not isinstance(out, (tuple, list)):
            raise errors.error(errors.DTypeError, (
                f"while_loop: body_fn must return a tuple like carried_inputs (of "
                f"{len(carry0)}), got {type(out).__name__}"))
        new, _ = _tensor_leaves("while_loop", "body_fn's result", tuple(out))
        _same_types("while_loop", "body_fn", new, [type_of(c) for c in c_leaves])
        return new

    if STATE.tracer is None:
        carry = c_leaves
        while _truth("while_loop", cond_fn(*unflatten(c_spec, carry))):
            carry = body(carry)
        carry = _fresh(carry)
    else:
        carry = _traced_while(cond_fn, body, c_spec, c_leaves)
    out = unflatten(c_spec, carry)
    return out[0] if single else out


def _check_condition(fn_name: str, p: Any) -> bool:
    """Whether `p` is a tensor (a bool tensor of one element, else a DTypeError)."""
    from hybrid.tensor import Tensor

    if not isinstance(p, Tensor):
        return False
    if p.numel() != 1 or not p.dtype.is_bool:
        raise errors.error(errors.DTypeError, (
            f"{fn_name}: the condition must be a bool tensor with one element, got {type_of(p)}"))
    return True


def _truth(fn_name: str, p: Any) -> bool:
    return bool(p.item()) if _check_condition(fn_name, p) else bool(p)


def _bool_scalar(fn_name: str, p: Any) -> Any:
    """A traced condition as a 0-d bool tensor (a Python bool as a constant)."""
    if _check_condition(fn_name, p):
        return p.reshape(())
    from hybrid.ops.creation import tensor

    return tensor(bool(p))


def _traced_while(cond_fn: Callable, body: Callable, c_spec: Any, carry: list) -> list:
    _refuse_while_grad(carry)
    types = [type_of(c) for c in carry]
    n = len(carry)
    ct, _, p = trace_body(lambda *ins: [_bool_scalar("while_loop", cond_fn(
        *unflatten(c_spec, list(ins))))], types, "the condition of hybrid.while_loop",
        "while_cond")
    cg = finish(ct, p)
    bt, _, new = trace_body(lambda *ins: body(list(ins)), types,
                            "the body of hybrid.while_loop", "while_body")
    bg = finish(bt, new)
    caps = union(ct.captured, bt.captured)
    _refuse_while_grad(caps)
    cg, bg = align(cg, n, ct.captured, caps), align(bg, n, bt.captured, caps)
    # the body's results are its carries only; the captures pass through unchanged
    return _while_nodes(carry + caps, Body(cg), Body(bg), n)


def _while_nodes(ins: list, cond: Body, body: Body, n: int) -> list:
    return [apply(Op.WHILE, *ins, cond=cond, body=body, n_carry=n, index=k) for k in range(n)]


def _refuse_while_grad(tensors: list) -> None:
    if STATE.grad and any(t._rg for t in tensors):
        raise errors.error(errors.AutogradError, (
            "hybrid.while_loop under @hybrid.compile is not differentiable (its trip count is "
            "only known when it runs): compute it under hybrid.no_grad(), detach() its inputs, "
            "or use hybrid.scan with a fixed length"))


# --- cond -----------------------------------------------------------------------------------

def cond(pred: Any, true_fn: Callable, false_fn: Callable, operands: Any = ()) -> Any:
    """torch.cond: `true_fn(*operands) if pred else false_fn(*operands)`; both branches must
    return the same structure, shapes and dtypes. Under compile only the branch pred picks
    runs (an error in the other is never raised)."""
    ops_t = tuple(operands) if isinstance(operands, (tuple, list)) else (operands,)
    leaves, spec = _tensor_leaves("cond", "operands", ops_t)
    traced = STATE.tracer is not None
    from hybrid.tensor import Tensor

    if not traced or not isinstance(pred, Tensor):
        out = (true_fn if _truth("cond", pred) else false_fn)(*unflatten(spec, leaves))
        if traced:  # a Python bool under compile: the branch is simply traced
            return out
        res, r_spec = flatten(out)
        return unflatten(r_spec, [_fresh([r])[0] if isinstance(r, Tensor) else r for r in res])
    p = _bool_scalar("cond", pred)
    types = [type_of(t) for t in leaves]
    traced_branches = []
    for fn, what in ((true_fn, "true_fn"), (false_fn, "false_fn")):
        box: dict = {}

        def branch(*ins: Any, fn: Callable = fn, box: dict = box, what: str = what) -> list:
            out = fn(*unflatten(spec, list(ins)))
            res, box["spec"] = _tensor_leaves("cond", f"{what}'s result", out)
            return res

        tr, _, res = trace_body(branch, types, f"the {what} of hybrid.cond", f"cond_{what}")
        traced_branches.append((tr, finish(tr, res), box["spec"]))
    (tt, tg, t_spec), (ft, fg, f_spec) = traced_branches
    if t_spec != f_spec or [v.type for v in tg.outputs] != [v.type for v in fg.outputs]:
        raise errors.error(errors.ShapeError, (
            "cond: true_fn and false_fn must return the same structure, shapes and dtypes; got "
            f"({', '.join(str(v.type) for v in tg.outputs)}) and "
            f"({', '.join(str(v.type) for v in fg.outputs)})"))
    caps = union(tt.captured, ft.captured)
    n = len(leaves)
    cs = _CondSpec(Body(align(tg, n, tt.captured, caps)), Body(align(fg, n, ft.captured, caps)))
    res = _CondFn.apply(cs, p, *leaves, *caps)
    res = list(res) if isinstance(res, tuple) else [res]
    return unflatten(t_spec, res)


class _CondSpec:
    def __init__(self, then: Body, else_: Body):
        self.then, self.else_ = then, else_

    def nodes(self, inputs: list) -> list:
        n = len(self.then.graph.outputs)
        return [apply(Op.COND, *inputs, then=self.then, else_=self.else_, index=k)
                for k in range(n)]


class _CondFn(Function):
    """A traced cond with its gradient: a cond of the two branches' vjps."""

    @staticmethod
    def forward(ctx: Any, spec: _CondSpec, pred: Any, *operands: Any) -> Any:
        ctx.spec, ctx.pred, ctx.operands = spec, pred, operands
        outs = spec.nodes([pred, *operands])
        return tuple(outs) if len(outs) != 1 else outs[0]

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        _first_order_only("cond")
        spec, ops_ = ctx.spec, list(ctx.operands)
        want = [i for i, o in enumerate(ops_) if o.dtype.is_floating
                and ctx.needs_input_grad[2 + i]]
        outs = spec.then.graph.outputs
        fo = [k for k, v in enumerate(outs) if v.type.dtype.is_floating]
        gs = [grads[k] if grads[k] is not None else _zeros_of(outs[k].type) for k in fo]
        m = len(ops_)

        def branch_vjp(graph: Graph) -> Callable:
            def run(*ins: Any) -> tuple:
                prims, cots = list(ins[:m]), list(ins[m:])
                return tuple(_graph_vjp(graph, prims, want, fo, cots))

            return run

        d = cond(ctx.pred, branch_vjp(spec.then.graph), branch_vjp(spec.else_.graph),
                 tuple(ops_) + tuple(gs)) if want else ()
        d = d if isinstance(d, tuple) else (d,)
        result: list = [None] * m
        for i, g in zip(want, d):
            result[i] = g
        return (None, None, *result)


def _graph_vjp(graph: Graph, prims: list, want: list, fo: list, cots: list,
               subst: dict | None = None) -> list:
    from hybrid.autograd import enable_grad, grad
    from hybrid.ops.creation import zeros_like

    with enable_grad():
        leaves = [p.detach() for p in prims]
        for i in want:
            leaves[i].requires_grad_()
        outs = replay(graph, leaves, subst)
        pairs = [(outs[k], g) for k, g in zip(fo, cots) if outs[k]._rg]
        wrt = [leaves[i] for i in want]
        got = grad([o for o, _ in pairs], wrt, [g for _, g in pairs],
                   allow_unused=True) if pairs else [None] * len(wrt)
    return [g if g is not None else zeros_like(w) for g, w in zip(got, wrt)]
