"""Normalization functions of hybrid.nn.functional (PyTorch's names, signatures and formulas):
batch_norm, instance_norm, group_norm and local_response_norm, written as compositions of
hybrid's primitive ops so they run eagerly and compile through the existing lowering.

Statistics are means over the reduced axes with the biased variance for normalizing. In training
mode batch_norm and instance_norm update the running statistics in place (`copy_` of a value
with no autograd history), with the unbiased variance, as PyTorch does; compiled, those writes
become the traced function's in-place effects like an optimizer's state updates."""

from __future__ import annotations

import math
from typing import Any

from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh

__all__ = ["batch_norm", "group_norm", "instance_norm", "local_response_norm"]


def _t(x: Any) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


def _fail(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(message))


def _need_input(op: str, x: Any, min_dims: int) -> None:
    if not hasattr(x, "dtype"):
        raise errors.DTypeError(errors.at_user(f"{op}: expected a tensor input, got "
                                               f"{type(x).__name__}"))
    if x.ndim < min_dims:
        raise _fail(f"{op}: expected an input with at least {min_dims} dims (N, C, ...), got "
                    f"{_t(x)}")
    if not x.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"{op}: expected a floating-point input, got {_t(x)}; use x.float()"))


def _need_channels(op: str, name: str, t: Any, c: int, x: Any) -> None:
    if t is not None and (t.ndim != 1 or t.shape[0] != c):
        raise _fail(f"{op}: {name} must have shape [{c}] (one per channel of input {_t(x)}), "
                    f"got {_t(t)}")


def _per_channel(t: Any, x: Any) -> Any:
    """(C,) -> (1, C, 1, ...) to broadcast against x (N, C, ...), in x's dtype."""
    t = ew.cast(t, x.dtype) if t.dtype is not x.dtype else t
    return sh.reshape(t, (1, x.shape[1]) + (1,) * (x.ndim - 2))


def _affine(out: Any, weight: Any, bias: Any) -> Any:
    if weight is not None:
        out = out * _per_channel(weight, out)
    if bias is not None:
        out = out + _per_channel(bias, out)
    return out


def _check_momentum(op: str, momentum: Any) -> None:
    number = isinstance(momentum, (int, float)) and not isinstance(momentum, bool)
    if not number and not (ew.is_tensor(momentum) and momentum.ndim == 0):
        raise errors.DTypeError(errors.at_user(
            f"{op}: momentum must be a float or a 0-d tensor, got {momentum!r} (the layers' "
            "momentum=None, a cumulative average, passes 1 / num_batches_tracked)"))


def _update(running: Any, batch: Any, momentum: Any) -> None:
    """running = (1 - momentum) * running + momentum * batch, in place and without history.
    `momentum` is a number or a 0-d tensor (BatchNorm's cumulative average 1 / batches)."""
    if ew.is_tensor(momentum):
        momentum = ew.cast(momentum.detach(), running.dtype)
    batch = ew.cast(batch.detach(), running.dtype)
    running.copy_(running * (1 - momentum) + batch * momentum)


def _stats(x: Any, axes: tuple[int, ...]) -> tuple[Any, Any, Any]:
    """Mean (keepdim), x - mean and the biased variance (keepdim) over `axes`."""
    mu = rd.mean(x, axes, keepdim=True)
    d = x - mu
    return mu, d, rd.mean(d * d, axes, keepdim=True)


def batch_norm(input: Any, running_mean: Any, running_var: Any, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: Any = 0.1,
               eps: float = 1e-5) -> Any:
    """Normalize (N, C, ...) per channel over the batch and spatial dims; in training mode with
    batch statistics (and update running_mean/running_var in place), else with the running
    ones."""
    _need_input("batch_norm", input, 2)
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _need_channels("batch_norm", name, t, c, input)
    if not training:
        if running_mean is None or running_var is None:
            raise _fail("batch_norm: running_mean and running_var are needed when "
                        "training=False; pass them or use training=True")
        mu, var = _per_channel(running_mean, input), _per_channel(running_var, input)
        return _affine((input - mu) * ew.rsqrt(var + eps), weight, bias)
    axes = (0,) + tuple(range(2, input.ndim))
    n = math.prod(input.shape[a] for a in axes)
    if n <= 1:
        raise _fail("batch_norm: expected more than 1 value per channel when training, got "
                    f"input {_t(input)}; use a larger batch or eval()")
    _check_momentum("batch_norm", momentum)
    mu, d, var = _stats(input, axes)
    out = _affine(d * ew.rsqrt(var + eps), weight, bias)
    if running_mean is not None:
        _update(running_mean, sh.reshape(mu, (c,)), momentum)
    if running_var is not None:
        _update(running_var, sh.reshape(var, (c,)) * (n / (n - 1)), momentum)
    return out


def instance_norm(input: Any, running_mean: Any = None, running_var: Any = None,
                  weight: Any = None, bias: Any = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Any:
    """Normalize (N, C, ...) per sample and channel over the spatial dims. With
    use_input_stats, running statistics given are updated in place with the batch mean of the
    per-instance statistics (PyTorch's formula); without, they normalize."""
    _need_input("instance_norm", input, 3)
    c = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var),
                    ("weight", weight), ("bias", bias)):
        _need_channels("instance_norm", name, t, c, input)
    if not use_input_stats:
        if running_mean is None or running_var is None:
            raise _fail("instance_norm: running_mean and running_var are needed when "
                        "use_input_stats=False")
        mu, var = _per_channel(running_mean, input), _per_channel(running_var, input)
        return _affine((input - mu) * ew.rsqrt(var + eps), weight, bias)
    axes = tuple(range(2, input.ndim))
    n = math.prod(input.shape[a] for a in axes)
    if n <= 1:
        raise _fail("instance_norm: expected more than 1 spatial element when training, got "
                    f"input {_t(input)}")
    _check_momentum("instance_norm", momentum)
    mu, d, var = _stats(input, axes)
    out = _affine(d * ew.rsqrt(var + eps), weight, bias)
    nb = input.shape[0]
    if running_mean is not None:
        _update(running_mean, rd.mean(sh.reshape(mu, (nb, c)), 0), momentum)
    if running_var is not None:
        _update(running_var, rd.mean(sh.reshape(var, (nb, c)), 0) * (n / (n - 1)), momentum)
    return out


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Normalize (N, C, ...) over each group of C / num_groups channels and the spatial dims,
    then a per-channel affine."""
    _need_input("group_norm", input, 2)
    c = input.shape[1]
    if not isinstance(num_groups, int) or num_groups < 1 or c % num_groups:
        raise _fail(f"group_norm: expected the number of channels of input {_t(input)} ({c}) to "
                    f"be divisible by num_groups, got num_groups={num_groups!r}")
    _need_channels("group_norm", "weight", weight, c, input)
    _need_channels("group_norm", "bias", bias, c, input)
    g = sh.reshape(input, (input.shape[0], num_groups, -1))
    _, d, var = _stats(g, (2,))
    out = sh.reshape(d * ew.rsqrt(var + eps), tuple(input.shape))
    return _affine(out, weight, bias)


def local_response_norm(input: Any, size: int, alpha: float = 1e-4, beta: float = 0.75,
                        k: float = 1.0) -> Any:
    """x / (k + alpha / size * sum of x^2 over a window of `size` channels)^beta; the window of
    channel c is [c - size // 2, c + (size - 1) // 2], zero outside (PyTorch's padding)."""
    if not hasattr(input, "dtype") or input.ndim < 3:
        shape = _t(input) if hasattr(input, "dtype") else type(input).__name__
        raise _fail(f"local_response_norm: expected 3D or higher dimensionality input (N, C, "
                    f"...), got {shape}")
    if not input.dtype.is_floating:
        raise errors.DTypeError(errors.at_user(
            f"local_response_norm: expected a floating-point input, got {_t(input)}"))
    if not isinstance(size, int) or size < 1:
        raise _fail(f"local_response_norm: size must be a positive int, got {size!r}")
    if input.numel() == 0:
        return input
    nb, c = input.shape[0], input.shape[1]
    sq = sh.reshape(input * input, (nb, c, -1))
    sq = sh.pad(sq, (0, 0, size // 2, (size - 1) // 2))
    total = sh.slice_dim(sq, 1, 0, c)
    for i in range(1, size):  # one shifted slice per window offset
        total = total + sh.slice_dim(sq, 1, i, i + c)
    div = sh.reshape(total * (alpha / size) + k, tuple(input.shape))
    return input / ew.pow(div, beta)
