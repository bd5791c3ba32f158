"""A reusable central-finite-difference gradient checker (float64), in the spirit of
torch.autograd.gradcheck: autograd's gradient of `sum(fn(*inputs) * cotangent)` against
(f(x + eps) - f(x - eps)) / 2 eps for every element of every input that requires grad."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import hybrid


def _outputs(out: Any) -> list:
    if isinstance(out, hybrid.Tensor):
        return [out]
    return [o for o in out if isinstance(o, hybrid.Tensor)]


def _as_input(x: Any) -> Any:
    """float tensors become float64 leaves that require grad; anything else passes unchanged."""
    if isinstance(x, hybrid.Tensor) and x.dtype.is_floating:
        return hybrid.tensor(x.detach().numpy(force=True).astype(np.float64), requires_grad=True)
    if isinstance(x, np.ndarray) and x.dtype.kind == "f":
        return hybrid.tensor(x.astype(np.float64), requires_grad=True)
    return x


def _scalar(fn: Callable, inputs: Sequence, cots: list[np.ndarray]) -> float:
    with hybrid.no_grad():
        outs = _outputs(fn(*inputs))
    return float(sum((o.numpy(force=True).astype(np.float64) * c).sum() for o, c in zip(outs, cots)))


def gradcheck(
    fn: Callable,
    *inputs: Any,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
    check_unused: bool = True,
) -> tuple:
    """Assert that autograd's gradients of `fn` at `inputs` match central finite differences.

    Float tensors (or float numpy arrays) among `inputs` are converted to float64 leaves that
    require grad; other inputs (ints, index tensors, Python scalars) are passed as they are. `fn`
    may return a tensor or a tuple of tensors; a random cotangent (fixed by `seed`) weights every
    output so that all of them are checked. Returns the autograd gradients (numpy, float64).
    Raises AssertionError naming the input and the element that disagree."""
    xs = [_as_input(x) for x in inputs]
    diff = [i for i, x in enumerate(xs) if isinstance(x, hybrid.Tensor) and x.requires_grad]
    assert diff, "gradcheck: no floating-point tensor input to differentiate"
    outs = _outputs(fn(*xs))
    rng = np.random.default_rng(seed)
    cots = [rng.standard_normal(o.shape) for o in outs]
    total = None
    for o, c in zip(outs, cots):
        if not o.requires_grad:
            continue
        term = (o.double() * hybrid.tensor(c, dtype=hybrid.float64)).sum()
        total = term if total is None else total + term
    assert total is not None, "gradcheck: no output requires grad"
    got = hybrid.autograd.grad(total, [xs[i] for i in diff], allow_unused=True)
    results = []
    for i, g in zip(diff, got):
        x = xs[i]
        base = x.detach().numpy().copy()
        analytic = np.zeros_like(base) if g is None else g.detach().numpy().astype(np.float64)
        if g is None and not check_unused:
            results.append(analytic)
            continue
        assert analytic.shape == base.shape, (
            f"gradcheck: input {i}: gradient shape {analytic.shape} != input shape {base.shape}")
        numeric = np.zeros_like(base)
        flat = numeric.reshape(-1)
        for j in range(base.size):
            point = base.copy().reshape(-1)
            point[j] += eps
            plus = _scalar(fn, _replace(xs, i, point.reshape(base.shape)), cots)
            point[j] -= 2 * eps
            minus = _scalar(fn, _replace(xs, i, point.reshape(base.shape)), cots)
            flat[j] = (plus - minus) / (2 * eps)
        if not np.allclose(analytic, numeric, rtol=rtol, atol=atol, equal_nan=True):
            bad = np.argmax(np.abs(analytic - numeric) - rtol * np.abs(numeric))
            idx = np.unravel_index(bad, base.shape) if base.ndim else ()
            raise AssertionError(
                f"gradcheck: input {i} (shape {base.shape}) element {idx}: autograd "
                f"{analytic.reshape(-1)[bad]!r} vs finite difference {numeric.reshape(-1)[bad]!r}"
                f"\nautograd:\n{analytic}\nfinite differences:\n{numeric}"
            )
        results.append(analytic)
    return tuple(results)


def _replace(xs: list, i: int, value: np.ndarray) -> list:
    out = list(xs)
    out[i] = hybrid.tensor(value, dtype=hybrid.float64)
    return out
