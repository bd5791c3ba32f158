"""hybrid.autograd.gradcheck / gradgradcheck: autograd's Jacobian of a function against central
finite differences, with PyTorch's signature (inputs in float64 for a meaningful check)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hybrid import errors


class GradcheckError(errors.HybridError, RuntimeError):
    """Autograd's gradient and the finite-difference one disagree."""


def _tensors(out: Any) -> list:
    from hybrid.tensor import Tensor

    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [o for o in out if isinstance(o, Tensor)]
    raise errors.DTypeError(errors.at_user(
        f"gradcheck: the function returned a {type(out).__name__}; expected a tensor or a tuple "
        "of tensors"))


def _as_tuple(inputs: Any) -> tuple:
    from hybrid.tensor import Tensor

    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _flat_outputs(fn: Callable, xs: Sequence) -> list[np.ndarray]:
    # NOTE: grad stays on (as in PyTorch): gradgradcheck's function differentiates inside
    outs = _tensors(fn(*xs))
    return [o.detach().numpy(force=True).astype(np.float64).reshape(-1) for o in outs]


def _numerical(fn: Callable, xs: list, i: int, eps: float, sizes: list[int]) -> list[np.ndarray]:
    """d(outputs)/d(xs[i]) by central differences: one (out_size, in_size) matrix per output."""
    from hybrid.ops.creation import tensor

    x = xs[i]
    base = x.detach().numpy(force=True).copy()
    flat = base.reshape(-1)
    jac = [np.zeros((n, flat.size)) for n in sizes]
    for j in range(flat.size):
        cols = []
        for step in (eps, -eps):
            point = flat.copy()
            point[j] += step
            moved = list(xs)
            moved[i] = tensor(point.reshape(base.shape), dtype=x.dtype, device=x.device,
                              requires_grad=True)
            cols.append(_flat_outputs(fn, moved))
        for k, (plus, minus) in enumerate(zip(*cols)):
            jac[k][:, j] = (plus - minus) / (2 * eps)
    return jac


def _analytical(outs: list, xs: list, i: int) -> list[np.ndarray]:
    """d(outputs)/d(xs[i]) by autograd, one row (a one-hot output cotangent) at a time."""
    from hybrid.autograd import grad
    from hybrid.ops.creation import tensor

    x = xs[i]
    jac = []
    for o in outs:
        m = np.zeros((o.numel(), x.numel()))
        if o._rg:
            for r in range(o.numel()):
                onehot = np.zeros(o.numel())
                onehot[r] = 1.0
                cot = tensor(onehot.reshape(o.shape), dtype=o.dtype, device=o.device)
                (g,) = grad(o, [x], cot, retain_graph=True, allow_unused=True)
                if g is not None:
                    m[r] = g.detach().numpy(force=True).astype(np.float64).reshape(-1)
        jac.append(m)
    return jac


def gradcheck(func: Callable, inputs: Any, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, **_ignored: Any) -> bool:
    """True when autograd's Jacobian of `func` at `inputs` (the tensors that require grad) matches
    central finite differences within `atol + rtol * |numerical|`; otherwise raise GradcheckError
    (or return False with raise_exception=False). Use float64 inputs, as in PyTorch."""
    from hybrid.tensor import Tensor

    xs = list(_as_tuple(inputs))
    diff = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise GradcheckError(errors.at_user(
            "gradcheck: no input requires grad; pass tensors created with requires_grad=True"))
    outs = _tensors(func(*xs))
    sizes = [o.numel() for o in outs]
    for i in diff:
        num = _numerical(func, xs, i, eps, sizes)
        ana = _analytical(outs, xs, i)
        for k, (a, n) in enumerate(zip(ana, num)):
            if not np.allclose(a, n, rtol=rtol, atol=atol, equal_nan=True):
                if not raise_exception:
                    return False
                worst = np.unravel_index(np.argmax(np.abs(a - n)), a.shape)
                raise GradcheckError(errors.at_user(
                    f"gradcheck: Jacobian mismatch for output {k} with respect to input {i} "
                    f"(shape {list(xs[i].shape)}): at (output element, input element) "
                    f"{tuple(int(w) for w in worst)} autograd gives {a[worst]!r}, finite "
                    f"differences {n[worst]!r}\nanalytical:\n{a}\nnumerical:\n{n}"))
    return True


def gradgradcheck(func: Callable, inputs: Any, grad_outputs: Any = None, *, eps: float = 1e-6,
                  atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = True,
                  **_ignored: Any) -> bool:
    """gradcheck of the first derivative: the gradients of `func`'s outputs (weighted by
    `grad_outputs`, random float64 by default) with respect to its inputs, created with
    create_graph=True, checked against finite differences of themselves."""
    from hybrid.autograd import grad
    from hybrid.ops.creation import tensor, zeros_like
    from hybrid.tensor import Tensor

    xs = list(_as_tuple(inputs))
    diff = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    outs = _tensors(func(*xs))
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = [tensor(rng.standard_normal(o.shape), dtype=o.dtype, requires_grad=True)
                        for o in outs]
    cots = list(_as_tuple(grad_outputs))
    n = len(xs)

    def first_derivative(*args: Any) -> tuple:
        ins, gos = list(args[:n]), list(args[n:])
        ys = _tensors(func(*ins))
        live = [k for k, y in enumerate(ys) if y._rg]
        wrt = [ins[i] for i in diff]
        gs = grad([ys[k] for k in live], wrt, [gos[k] for k in live], create_graph=True,
                  allow_unused=True)
        return tuple(g if g is not None else zeros_like(w) for g, w in zip(gs, wrt))

    return gradcheck(first_derivative, tuple(xs) + tuple(cots), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
