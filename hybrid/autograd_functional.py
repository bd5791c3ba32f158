"""hybrid.autograd.functional: PyTorch's higher-level autograd API (jacobian, hessian, vjp, jvp,
hvp, vhp), built on hybrid.autograd.grad one output element at a time (small problems)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hybrid import errors


def _as_tuple(x: Any) -> tuple[tuple, bool]:
    from hybrid.tensor import Tensor

    if isinstance(x, Tensor):
        return (x,), False
    if isinstance(x, (list, tuple)) and all(isinstance(t, Tensor) for t in x):
        return tuple(x), True
    raise errors.DTypeError(errors.at_user(
        f"autograd.functional: expected a tensor or a tuple of tensors, got {type(x).__name__}"))


def _leaves(inputs: tuple) -> tuple:
    """Fresh leaves that require grad, holding the inputs' values (as PyTorch does)."""
    return tuple(x.detach().requires_grad_(True) if x.dtype.is_floating else x.detach()
                 for x in inputs)


def _grads(out: Any, xs: tuple, cot: Any, create_graph: bool) -> tuple:
    from hybrid.autograd import grad
    from hybrid.ops.creation import zeros_like

    if not out.requires_grad:
        return tuple(zeros_like(x) for x in xs)
    wrt = [x for x in xs if x.requires_grad]
    gs = iter(grad(out, wrt, cot, retain_graph=True, create_graph=create_graph,
                   allow_unused=True))
    res = []
    for x in xs:
        g = next(gs) if x.requires_grad else None
        res.append(zeros_like(x) if g is None else g)
    return tuple(res)


def jacobian(func: Callable, inputs: Any, create_graph: bool = False, strict: bool = False,
             vectorize: bool = False, strategy: str = "reverse-mode") -> Any:
    """d func(inputs) / d inputs: for one tensor input and output a tensor of shape
    out.shape + in.shape; tuples of them for tuple inputs and/or outputs, as PyTorch nests."""
    from hybrid.ops.shape import reshape, stack

    ins, ins_tuple = _as_tuple(inputs)
    xs = _leaves(ins)
    outs, outs_tuple = _as_tuple(func(*xs))
    table = []
    for out in outs:
        flat = reshape(out, (-1,))
        rows: list[list] = [[] for _ in xs]
        for j in range(flat.shape[0]):
            for i, g in enumerate(_grads(flat[j], xs, None, create_graph)):
                rows[i].append(g if create_graph else g.detach())
        per_in = []
        for i, x in enumerate(xs):
            if rows[i]:
                per_in.append(reshape(stack(rows[i]), tuple(out.shape) + tuple(x.shape)))
            else:
                from hybrid.ops.creation import zeros

                per_in.append(zeros(tuple(out.shape) + tuple(x.shape), dtype=x.dtype))
        table.append(tuple(per_in) if ins_tuple else per_in[0])
    return tuple(table) if outs_tuple else table[0]


def hessian(func: Callable, inputs: Any, create_graph: bool = False, strict: bool = False,
            vectorize: bool = False, outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The matrix of second derivatives of scalar-valued `func` at `inputs`."""
    _, ins_tuple = _as_tuple(inputs)

    def first(*xs: Any) -> Any:
        out = func(*xs)
        if out.numel() != 1:
            raise errors.ShapeError(errors.at_user(
                f"hessian: the function must return a single-element tensor, got shape "
                f"{list(out.shape)}"))
        g = _grads(out.reshape(()), xs, None, True)
        return g if ins_tuple else g[0]

    return jacobian(first, inputs, create_graph=create_graph)


def vjp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """(func(inputs), v^T J): the vector-Jacobian product for cotangent `v` (default: ones for a
    single-element output)."""
    from hybrid.autograd import grad

    ins, ins_tuple = _as_tuple(inputs)
    xs = _leaves(ins)
    out = func(*xs)
    outs, outs_tuple = _as_tuple(out)
    cots = list(_as_tuple(v)[0]) if v is not None else None
    live = [i for i, o in enumerate(outs) if o.requires_grad]
    found = grad([outs[i] for i in live], list(xs),
                 None if cots is None else [cots[i] for i in live],
                 create_graph=create_graph, allow_unused=True) if live else [None] * len(xs)
    from hybrid.ops.creation import zeros_like

    res = tuple(zeros_like(x) if g is None else (g if create_graph else g.detach())
                for g, x in zip(found, xs))
    detached = tuple(o.detach() for o in outs)
    return (detached if outs_tuple else detached[0]), (res if ins_tuple else res[0])


def jvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """(func(inputs), J v): the Jacobian-vector product for tangent `v`, from the Jacobian."""
    from hybrid.ops.creation import ones_like

    ins, ins_tuple = _as_tuple(inputs)
    tangents = _as_tuple(v)[0] if v is not None else tuple(ones_like(x) for x in ins)
    jac = jacobian(func, inputs, create_graph=create_graph)
    out = func(*ins)
    outs, outs_tuple = _as_tuple(out)
    rows = jac if outs_tuple else (jac,)
    res = []
    for o, row in zip(outs, rows):
        row = row if ins_tuple else (row,)
        total = None
        for j, t in zip(row, tangents):
            term = (j.reshape(o.numel(), t.numel()) @ t.reshape(-1)).reshape(o.shape)
            total = term if total is None else total + term
        res.append(total)
    detached = tuple(o.detach() for o in outs)
    return (detached if outs_tuple else detached[0]), (tuple(res) if outs_tuple else res[0])


def hvp(func: Callable, inputs: Any, v: Any = None, create_graph: bool = False,
        strict: bool = False) -> tuple:
    """(func(inputs), H v) for scalar-valued `func` (H is symmetric, so also v^T H)."""
    ins, ins_tuple = _as_tuple(inputs)
    xs = _leaves(ins)
    out = func(*xs)
    vs = _as_tuple(v)[0]
    g = _grads(out.reshape(()), xs, None, True)
    total = None
    for gi, vi in zip(g, vs):
        term = (gi * vi).sum()
        total = term if total is None else total + term
    hv = _grads(total, xs, None, create_graph)
    hv = tuple(h if create_graph else h.detach() for h in hv)
    return out.detach(), (hv if ins_tuple else hv[0])


vhp = hvp
