"""More of torch.nn.functional's losses (smooth L1, Huber, KL divergence, BCE, margin and
embedding losses, Poisson NLL) with PyTorch's signatures, including the legacy size_average /
reduce arguments; composed of hybrid ops, so they differentiate and compile."""

from __future__ import annotations

import math
import warnings
from typing import Any

from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd

_REDUCTIONS = ("mean", "sum", "none")


def legacy_get_string(size_average: Any, reduce: Any, emit_warning: bool = True) -> str:
    """PyTorch's _Reduction.legacy_get_string: the reduction named by the legacy arguments."""
    if emit_warning:
        warnings.warn("size_average and reduce args will be deprecated, please use "
                      "reduction='mean', 'sum' or 'none' instead (as in PyTorch)",
                      UserWarning, stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        return "mean"
    return "sum" if reduce else "none"


def resolve(op: str, size_average: Any, reduce: Any, reduction: str,
            allowed: tuple = _REDUCTIONS) -> str:
    """The reduction to use: the legacy arguments win when given (as PyTorch)."""
    if size_average is not None or reduce is not None:
        reduction = legacy_get_string(size_average, reduce)
    if reduction not in allowed:
        names = ", ".join(repr(r) for r in allowed)
        raise errors.ShapeError(errors.at_user(f"{op}: reduction must be one of {names}, "
                                               f"got {reduction!r}"))
    return reduction


def _reduce(loss: Any, reduction: str) -> Any:
    if reduction == "mean":
        return rd.mean(loss)
    if reduction == "sum":
        return rd.sum(loss)
    return loss


def _same_shape(op: str, a: Any, b: Any) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise errors.ShapeError(
            errors.at_user(f"{op}: input {a.dtype.short}{list(a.shape)} and target "
                           f"{b.dtype.short}{list(b.shape)} must have the same shape")
        )


def _floats(op: str, *xs: Any) -> None:
    for x in xs:
        if not x.dtype.is_floating:
            raise errors.DTypeError(
                errors.at_user(f"{op}: expected floating-point tensors, got "
                               f"{x.dtype.name}{list(x.shape)}; use .float()")
            )


def smooth_l1_loss(input: Any, target: Any, size_average: Any = None, reduce: Any = None,
                   reduction: str = "mean", beta: float = 1.0) -> Any:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target)."""
    reduction = resolve("smooth_l1_loss", size_average, reduce, reduction)
    _same_shape("smooth_l1_loss", input, target)
    if beta < 0:
        raise errors.ShapeError(errors.at_user(f"smooth_l1_loss: beta must be >= 0, got {beta}"))
    d = ew.abs(input - target)
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(ew.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta), reduction)


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0,
               weight: Any = None) -> Any:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""
    reduction = resolve("huber_loss", None, None, reduction)
    _same_shape("huber_loss", input, target)
    if delta <= 0:
        raise errors.ShapeError(errors.at_user(f"huber_loss: delta must be > 0, got {delta}"))
    d = ew.abs(input - target)
    loss = ew.where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss if weight is None else loss * weight, reduction)


def kl_div(input: Any, target: Any, size_average: Any = None, reduce: Any = None,
           reduction: str = "mean", log_target: bool = False) -> Any:
    """KL(target || exp(input)) pointwise: target (log target - input); 'batchmean' divides the
    sum by the batch size (the mathematically right mean; 'mean' averages every element)."""
    reduction = resolve("kl_div", size_average, reduce, reduction, _REDUCTIONS + ("batchmean",))
    _floats("kl_div", input, target)
    if log_target:
        loss = ew.exp(target) * (target - input)
    else:  # xlogy: 0 log 0 = 0
        pos = target > 0
        loss = ew.where(pos, target * ew.log(ew.where(pos, target, 1.0)), 0.0) - target * input
    if reduction == "batchmean":
        return rd.sum(loss) / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, size_average: Any = None,
                         reduce: Any = None, reduction: str = "mean") -> Any:
    """-w (t log p + (1 - t) log(1 - p)) on probabilities p in [0, 1], logs clamped at -100."""
    reduction = resolve("binary_cross_entropy", size_average, reduce, reduction)
    _same_shape("binary_cross_entropy", input, target)
    _floats("binary_cross_entropy", input)
    v = input._value
    if not getattr(v, "traced", False) and v.size and bool(((v < 0) | (v > 1)).any()):
        raise errors.error(
            ValueError, "binary_cross_entropy: all elements of input should be between 0 and 1; "
            "apply sigmoid first or use binary_cross_entropy_with_logits")
    t = ew.cast(target, input.dtype)
    log_p = ew.maximum(ew.log(input), -100.0)
    log_q = ew.maximum(ew.log(1 - input), -100.0)
    loss = -(t * log_p + (1 - t) * log_q)
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _eps_cos(x1: Any, x2: Any, dim: int) -> Any:
    eps = 1e-12  # PyTorch's EPSILON in cosine_embedding_loss
    prod = rd.sum(x1 * x2, dim)
    m1 = rd.sum(x1 * x1, dim) + eps
    m2 = rd.sum(x2 * x2, dim) + eps
    return prod / ew.sqrt(m1 * m2)


def cosine_embedding_loss(input1: Any, input2: Any, target: Any, margin: float = 0.0,
                          size_average: Any = None, reduce: Any = None,
                          reduction: str = "mean") -> Any:
    """1 - cos(x1, x2) where target is 1, max(0, cos - margin) where it is -1."""
    reduction = resolve("cosine_embedding_loss", size_average, reduce, reduction)
    if tuple(input1.shape) != tuple(input2.shape) or input1.ndim not in (1, 2):
        raise errors.ShapeError(
            errors.at_user(f"cosine_embedding_loss: inputs must be 1-d or 2-d of one shape, got "
                           f"{list(input1.shape)} and {list(input2.shape)}")
        )
    cos = _eps_cos(input1, input2, input1.ndim - 1)
    zero = ew.scalar(0.0, cos.dtype, cos)
    pos = ew.where(target == 1, 1 - cos, zero)
    neg = ew.where(target == -1, ew.clamp(cos - margin, min=0.0), zero)
    return _reduce(pos + neg, reduction)


def margin_ranking_loss(input1: Any, input2: Any, target: Any, margin: float = 0.0,
                        size_average: Any = None, reduce: Any = None,
                        reduction: str = "mean") -> Any:
    """max(0, -target (x1 - x2) + margin)."""
    reduction = resolve("margin_ranking_loss", size_average, reduce, reduction)
    if not (input1.ndim == input2.ndim == target.ndim):
        raise errors.ShapeError(
            errors.at_user(f"margin_ranking_loss: input1 {list(input1.shape)}, input2 "
                           f"{list(input2.shape)} and target {list(target.shape)} must have the "
                           "same number of dims")
        )
    return _reduce(ew.clamp(-target * (input1 - input2) + margin, min=0.0), reduction)


def hinge_embedding_loss(input: Any, target: Any, margin: float = 1.0, size_average: Any = None,
                         reduce: Any = None, reduction: str = "mean") -> Any:
    """x where target is 1, max(0, margin - x) where it is -1."""
    reduction = resolve("hinge_embedding_loss", size_average, reduce, reduction)
    zero = ew.scalar(0.0, input.dtype, input)
    margin_part = ew.where(target != 1, ew.clamp(margin - input, min=0.0), zero)
    self_part = ew.where(target != -1, input, zero)
    return _reduce(margin_part + self_part, reduction)


def soft_margin_loss(input: Any, target: Any, size_average: Any = None, reduce: Any = None,
                     reduction: str = "mean") -> Any:
    """log(1 + exp(-target x))."""
    from hybrid.nn.functional import softplus

    reduction = resolve("soft_margin_loss", size_average, reduce, reduction)
    _same_shape("soft_margin_loss", input, target)
    return _reduce(softplus(-ew.cast(target, input.dtype) * input, threshold=math.inf), reduction)


def poisson_nll_loss(input: Any, target: Any, log_input: bool = True, full: bool = False,
                     size_average: Any = None, eps: float = 1e-8, reduce: Any = None,
                     reduction: str = "mean") -> Any:
    """Poisson negative log likelihood: exp(x) - t x (log_input) or x - t log(x + eps); full adds
    Stirling's term t log t - t + 0.5 log(2 pi t) where t > 1."""
    reduction = resolve("poisson_nll_loss", size_average, reduce, reduction)
    t = ew.cast(target, input.dtype)
    if log_input:
        loss = ew.exp(input) - t * input
    else:
        loss = input - t * ew.log(input + eps)
    if full:
        big = t > 1
        st = ew.where(big, t, 1.0)
        stirling = st * ew.log(st) - st + 0.5 * ew.log(2 * math.pi * st)
        loss = loss + ew.where(big, stirling, 0.0)
    return _reduce(loss, reduction)
