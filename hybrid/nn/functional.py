"""hybrid.nn.functional (also hybrid.functional): activations, losses, dropout, linear, embedding
and layer_norm with PyTorch's names and semantics, composed of hybrid ops only (no numpy on
tensor data), so the same code runs eagerly and traces into a graph."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler.ir.types import DType
from hybrid import eager_kernels, errors
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.creation import iota
from hybrid.ops.elementwise import relu, sigmoid, tanh
from hybrid.ops.indexing import gather, index_select
from hybrid.ops.linalg import matmul
from hybrid.ops.shape import pad

__all__ = [
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "dropout",
    "embedding",
    "gelu",
    "l1_loss",
    "layer_norm",
    "linear",
    "log_softmax",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "pad",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "tanh",
]

_REDUCTIONS = ("mean", "sum", "none")


def _t(x: Any) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


def _check_reduction(op: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise errors.ShapeError(
            errors.at_user(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        )


def _reduce(loss: Any, reduction: str) -> Any:
    if reduction == "mean":
        return rd.mean(loss)
    if reduction == "sum":
        return rd.sum(loss)
    return loss


def _float_input(op: str, x: Any) -> None:
    if not x.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"{op}: expected a floating-point input, got {_t(x)}; use x.float()")
        )


# --- activations ----------------------------------------------------------------------------------


def gelu(x: Any, approximate: str = "none") -> Any:
    """x * Phi(x): exact via erf ('none') or the tanh approximation ('tanh')."""
    if approximate in ("none", "tanh"):
        out = eager_kernels.call("gelu", _gelu, (approximate,), (x,))
        if out is not None:
            return out
    return _gelu(x, approximate)


def _gelu(x: Any, approximate: str) -> Any:
    if approximate == "none":
        return x * 0.5 * (ew.erf(x * (1 / math.sqrt(2.0))) + 1.0)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (ew.tanh(inner) + 1.0)
    raise errors.ShapeError(
        errors.at_user(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    )


def silu(x: Any) -> Any:
    """x * sigmoid(x)."""
    out = eager_kernels.call("silu", _silu, (), (x,))
    return _silu(x) if out is None else out


def _silu(x: Any) -> Any:
    return x * ew.sigmoid(x)


def _abs_smooth_grad(z: Any) -> Any:
    # NOTE: |z| whose derivative at 0 is -1 (abs's is 0): with relu(z) (derivative 0 at 0) this
    # gives softplus the exact derivative sigmoid(0) = 0.5 at z = 0.
    return ew.where(z > 0, z, -z)


def softplus(x: Any, beta: float = 1.0, threshold: float = 20.0) -> Any:
    """log(1 + exp(beta * x)) / beta, computed stably (linear above `threshold`)."""
    z = x * beta if beta != 1 else x
    out = relu(z) + ew.log1p(ew.exp(-_abs_smooth_grad(z)))
    out = out / beta if beta != 1 else out
    return ew.where(z > threshold, x, out)


def _softmax_dim(op: str, x: Any, dim: int | None) -> int:
    if dim is None:  # PyTorch's legacy implicit dim
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return rd.normalize_dim(op, dim, x.ndim)


def _shifted(op: str, x: Any, dim: int | None, dtype: Any) -> tuple[Any, int]:
    if dtype is not None:
        from hybrid.dtypes import as_dtype

        x = ew.cast(x, as_dtype(dtype))
    x = ew.to_float(x)
    d = _softmax_dim(op, x, dim)
    # NOTE: the max is a constant shift (softmax does not depend on it), so it is detached. An
    # infinite max is subtracted as is: a row holding +inf, or only -inf, gives NaN, as PyTorch.
    m = rd.amax(x, d, keepdim=True).detach()
    return x - m, d


def softmax(x: Any, dim: int | None = None, dtype: Any = None) -> Any:
    """exp(x) / sum(exp(x)) along `dim`, with the max subtracted first."""
    if dtype is None and x.dtype.is_floating:
        out = eager_kernels.call("softmax", _softmax, (_softmax_dim("softmax", x, dim),), (x,))
        if out is not None:
            return out
    return _softmax(x, dim, dtype)


def _softmax(x: Any, dim: int | None, dtype: Any = None) -> Any:
    z, d = _shifted("softmax", x, dim, dtype)
    e = ew.exp(z)
    # NOTE: times the reciprocal of the sum, as PyTorch's CPU kernel computes it: one division
    # per row instead of one per element (the results differ from e / sum by an ulp at most).
    return e * ew.reciprocal(rd.sum(e, d, keepdim=True))


def log_softmax(x: Any, dim: int | None = None, dtype: Any = None) -> Any:
    """x - logsumexp(x) along `dim`, with the max subtracted first."""
    if dtype is None and x.dtype.is_floating:
        out = eager_kernels.call("log_softmax", _log_softmax,
                                 (_softmax_dim("log_softmax", x, dim),), (x,))
        if out is not None:
            return out
    return _log_softmax(x, dim, dtype)


def _log_softmax(x: Any, dim: int | None, dtype: Any = None) -> Any:
    z, d = _shifted("log_softmax", x, dim, dtype)
    return z - ew.log(rd.sum(ew.exp(z), d, keepdim=True))


# --- losses -----------------------------------------------------------------------------------------


def _cross_entropy_indices(input: Any, target: Any, ignore_index: int, reduction: str) -> Any:
    """cross_entropy of class-index targets without weights or smoothing (one eager kernel)."""
    return nll_loss(log_softmax(input, _class_dim(input)), target, None, ignore_index, reduction)


def _class_dim(x: Any) -> int:
    return 0 if x.ndim == 1 else 1


def _check_class_target(op: str, x: Any, target: Any) -> None:
    if x.ndim == 0:
        raise errors.ShapeError(
            errors.at_user(f"{op}: input must have a class dim, got a 0-d tensor {_t(x)}")
        )
    want = tuple(s for i, s in enumerate(x.shape) if i != _class_dim(x))
    if tuple(target.shape) != want:
        raise errors.ShapeError(
            errors.at_user(
                f"{op}: target of shape {list(target.shape)} does not match input {_t(x)}; "
                f"class-index targets need shape {list(want)} (the input's shape without the "
                "class dim 1), probability targets the input's shape"
            )
        )


def _check_class_range(op: str, target: Any, n_classes: int, ignore_index: int | None) -> None:
    """Eagerly, every target is a class index in [0, C) or ignore_index (an IndexError else)."""
    v = target._value
    if getattr(v, "traced", False) or v.size == 0:
        return
    bad = (v < 0) | (v >= n_classes)
    if ignore_index is not None:
        bad &= v != ignore_index
    if bad.any():
        first = int(v[bad].reshape(-1)[0])
        word = "class" if ignore_index is None else "target"
        what = "" if ignore_index is None else f", or ignore_index={ignore_index}"
        raise errors.HybridIndexError(
            errors.at_user(f"{op}: {word} {first} is out of bounds for {n_classes} classes "
                           f"(expected 0 <= {word} < {n_classes}{what})")
        )


def _class_weight(op: str, weight: Any, n_classes: int) -> None:
    if weight is not None and tuple(weight.shape) != (n_classes,):
        raise errors.ShapeError(
            errors.at_user(f"{op}: weight must have shape [{n_classes}] (one per class), "
                           f"got {list(weight.shape)}")
        )


def nll_loss(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
             reduction: str = "mean") -> Any:
    """Negative log likelihood of class-index targets given log-probabilities (N, C, d1, ...)."""
    _check_reduction("nll_loss", reduction)
    if target.dtype.is_floating or target.dtype.is_bool:
        raise errors.DTypeError(
            errors.at_user(f"nll_loss: target must hold class indices (int64), got {_t(target)}")
        )
    _check_class_target("nll_loss", input, target)
    cd = _class_dim(input)
    n_classes = input.shape[cd]
    _class_weight("nll_loss", weight, n_classes)
    _check_class_range("nll_loss", target, n_classes, ignore_index)
    keep = target != ignore_index
    safe = ew.where(keep, target, 0)
    # NOTE: the picked log-probability as a masked sum over the class dim rather than a gather:
    # compiled, it joins log_softmax's row kernel, and its gradient is a select, not a scatter.
    classes = iota(input.shape, cd, target.dtype, like=input)
    hit = classes == sh.unsqueeze(safe, cd)
    picked = rd.sum(ew.where(hit, input, 0.0), cd)
    w = ew.cast(keep, input.dtype)
    if weight is not None:
        w = w * sh.reshape(index_select(ew.cast(weight, input.dtype), 0, sh.reshape(safe, (-1,))),
                           safe.shape)
    loss = -picked * w
    if weight is None and getattr(target._value, "traced", False):
        # NOTE: compiled, the range check of the targets (eagerly _check_class_range raised
        # already) is a gather of ones at them: 1 for a class in [0, C), the kernel's bounds
        # error else (with a weight, its gather checks). For 'mean' it scales the count of
        # kept rows, a value only the denominator's kernel reads: no kernel of its own.
        ones = _gather_table(np.ones(n_classes, input.dtype.np), safe, input).detach()
        if reduction == "mean":
            return rd.sum(loss) / rd.sum(w * ones)
        loss = loss * ones
    if reduction == "none":
        return loss
    if reduction == "sum":
        return rd.sum(loss)
    return rd.sum(loss) / rd.sum(w)


def cross_entropy(input: Any, target: Any, weight: Any = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Any:
    """log_softmax + nll_loss for class-index targets, or -sum(p * log_softmax) for probability
    targets of the input's shape; optional class weights and label smoothing (as PyTorch)."""
    _check_reduction("cross_entropy", reduction)
    _float_input("cross_entropy", input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise errors.ShapeError(
            errors.at_user(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
        )
    if input.ndim == 0:
        raise errors.ShapeError(
            errors.at_user(f"cross_entropy: input must have a class dim, got {_t(input)}")
        )
    cd = _class_dim(input)
    n_classes = input.shape[cd]
    _class_weight("cross_entropy", weight, n_classes)
    if weight is None and label_smoothing == 0 and target.dtype == DType.int64 \
            and eager_kernels.active():
        _check_class_target("cross_entropy", input, target)
        _check_class_range("cross_entropy", target, n_classes, ignore_index)
        out = eager_kernels.call("cross_entropy", _cross_entropy_indices,
                                 (ignore_index, reduction), (input, target))
        if out is not None:
            return out
    logp = log_softmax(input, cd)
    wshape = tuple(n_classes if i == cd else 1 for i in range(input.ndim))
    wb = sh.reshape(ew.cast(weight, input.dtype), wshape) if weight is not None else None
    if target.dtype.is_floating:
        if tuple(target.shape) != tuple(input.shape):
            _check_class_target("cross_entropy", input, target)  # raises with the full story
        p = ew.cast(target, input.dtype)
        if label_smoothing > 0:
            p = p * (1 - label_smoothing) + label_smoothing / n_classes
        terms = logp * p if wb is None else logp * p * wb
        if reduction == "none":
            return -rd.sum(terms, cd)
        total = -rd.sum(terms)
        return total if reduction == "sum" else total / (input.numel() // n_classes)
    _check_class_target("cross_entropy", input, target)
    nll = nll_loss(logp, target, weight, ignore_index, reduction)
    if label_smoothing == 0:
        return nll
    keep = ew.cast(target != ignore_index, input.dtype)
    smooth = -rd.sum(logp if wb is None else logp * wb, cd) * keep
    if reduction == "sum":
        smooth = rd.sum(smooth)
    elif reduction == "mean":
        if weight is None:
            denom = rd.sum(keep)
        else:
            safe = ew.where(target != ignore_index, target, 0)
            tw = index_select(ew.cast(weight, input.dtype), 0, sh.reshape(safe, (-1,)))
            denom = rd.sum(sh.reshape(tw, safe.shape) * keep)
        smooth = rd.sum(smooth) / denom
    return nll * (1 - label_smoothing) + smooth * (label_smoothing / n_classes)


def _check_same_shape(op: str, input: Any, target: Any) -> None:
    if tuple(input.shape) != tuple(target.shape):
        raise errors.ShapeError(
            errors.at_user(f"{op}: input {_t(input)} and target {_t(target)} must have the same "
                           "shape; reshape one of them (e.g. target.view_as(input))")
        )


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean (or summed) squared error; input and target of the same shape."""
    _check_reduction("mse_loss", reduction)
    _check_same_shape("mse_loss", input, target)
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Any, target: Any, reduction: str = "mean") -> Any:
    """Mean (or summed) absolute error; input and target of the same shape."""
    _check_reduction("l1_loss", reduction)
    _check_same_shape("l1_loss", input, target)
    return _reduce(ew.abs(input - target), reduction)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Any:
    """Sigmoid + binary cross entropy in the stable form (1 - t) x + (1 + (pw - 1) t) softplus(-x)."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    _float_input("binary_cross_entropy_with_logits", input)
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    t = ew.cast(target, input.dtype)
    sp = softplus(-input, threshold=math.inf)
    if pos_weight is not None:
        loss = (1 - t) * input + (t * (ew.cast(pos_weight, input.dtype) - 1) + 1) * sp
    else:
        loss = (1 - t) * input + sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


# --- layers as functions ---------------------------------------------------------------------------


def dropout(x: Any, p: float = 0.5, training: bool = True, inplace: bool = False) -> Any:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (training only).
    The mask comes from hybrid.random, so a compiled function draws a fresh mask per call."""
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise errors.ShapeError(
            errors.at_user(f"dropout: probability has to be between 0 and 1, but got {p}")
        )
    if not training or p == 0:
        return x
    if p == 1:
        out = x * 0.0
    else:
        from hybrid.random import bernoulli_mask

        keep = bernoulli_mask(tuple(x.shape), 1.0 - p, x)
        out = ew.where(keep, x * (1.0 / (1.0 - p)), 0.0)
    if inplace:
        from hybrid.tensor import inplace_op

        return inplace_op(x, lambda _: out)
    return out


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """x @ weight.T + bias, weight of shape (out_features, in_features)."""
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise errors.ShapeError(
            errors.at_user(f"linear: input {_t(x)} does not fit weight {_t(weight)} (the input's "
                           f"last dim must equal in_features = weight.shape[1])")
        )
    out = matmul(x, sh.transpose(weight, 0, 1))
    return out + bias if bias is not None else out


def embedding(input: Any, weight: Any, padding_idx: int | None = None) -> Any:
    """Rows of `weight` (num_embeddings, dim) picked by the integer tensor `input`."""
    if input.dtype.is_floating or input.dtype.is_bool:
        raise errors.DTypeError(
            errors.at_user(f"embedding: indices must be an integer tensor, got {_t(input)}")
        )
    if weight.ndim != 2:
        raise errors.ShapeError(errors.at_user(f"embedding: weight must be 2-d, got {_t(weight)}"))
    rows = index_select(weight, 0, sh.reshape(input, (-1,)))
    out = sh.reshape(rows, tuple(input.shape) + (weight.shape[1],))
    if padding_idx is not None:
        if padding_idx < 0:
            padding_idx += weight.shape[0]
        # the padding row gets no gradient (PyTorch's padding_idx)
        out = ew.where(sh.unsqueeze(input == padding_idx, -1), out.detach(), out)
    return out


def layer_norm(x: Any, normalized_shape: Any, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Any:
    """Normalize over the last len(normalized_shape) dims (biased variance), then scale/shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(shape)
    if n == 0 or n > x.ndim or tuple(x.shape[x.ndim - n:]) != shape:
        raise errors.ShapeError(
            errors.at_user(f"layer_norm: normalized_shape {list(shape)} does not match the last "
                           f"dims of input {_t(x)}")
        )
    if x.dtype.is_floating:
        tensors = tuple(t for t in (x, weight, bias) if t is not None)
        out = eager_kernels.call("layer_norm", _layer_norm_args,
                                 (n, eps, weight is not None, bias is not None), tensors)
        if out is not None:
            return out
    return _layer_norm(x, n, weight, bias, eps)


def _layer_norm_args(*args: Any) -> Any:
    *tensors, n, eps, has_weight, has_bias = args
    weight = tensors[1] if has_weight else None
    bias = tensors[-1] if has_bias else None
    return _layer_norm(tensors[0], n, weight, bias, eps)


def _layer_norm(x: Any, n: int, weight: Any, bias: Any, eps: float) -> Any:
    axes = tuple(range(x.ndim - n, x.ndim))
    mu = rd.mean(x, axes, keepdim=True)
    d = x - mu
    var = rd.mean(d * d, axes, keepdim=True)
    out = d * ew.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def one_hot(tensor: Any, num_classes: int = -1) -> Any:
    """int64 one-hot encoding along a new last dim (num_classes=-1 reads the max: eager only)."""
    if tensor.dtype.is_floating or tensor.dtype.is_bool:
        raise errors.DTypeError(
            errors.at_user(f"one_hot: expected an integer tensor of class indices, got {_t(tensor)}")
        )
    if num_classes == -1:
        num_classes = int(rd.amax(tensor).item()) + 1 if tensor.numel() else 0
    shape = tuple(tensor.shape) + (num_classes,)
    t = ew.cast(tensor, DType.int64)
    if getattr(t._value, "traced", False):  # the gather's kernel checks 0 <= t < num_classes
        t = _gather_table(np.arange(num_classes, dtype=np.int64), t, t)
    else:
        _check_class_range("one_hot", t, num_classes, None)
    classes = iota(shape, len(shape) - 1, DType.int64, like=tensor)
    return ew.cast(sh.unsqueeze(t, -1) == classes, DType.int64)


def _gather_table(table: np.ndarray, t: Any, like: Any) -> Any:
    """table[t] for class indices `t` (traced only): the table is a graph constant (a buffer,
    no kernel), and an index outside [0, len(table)) is the gather's bounds error."""
    from compiler.ir.ops import Op
    from hybrid.ops.core import apply
    from hybrid.ops.creation import tensor

    return apply(Op.GATHER, tensor(table, device=like.device), ew.cast(t, DType.int64), axis=0)


# --- more losses and distances (hybrid/nn/losses_extra.py, hybrid/nn/distance.py) ----------------

from hybrid.nn.distance import cosine_similarity, normalize, pairwise_distance  # noqa: E402
from hybrid.nn.losses_extra import (  # noqa: E402
    binary_cross_entropy, cosine_embedding_loss, hinge_embedding_loss, huber_loss, kl_div,
    margin_ranking_loss, poisson_nll_loss, smooth_l1_loss, soft_margin_loss,
)

__all__ += [
    "binary_cross_entropy", "cosine_embedding_loss", "cosine_similarity", "hinge_embedding_loss",
    "huber_loss", "kl_div", "margin_ranking_loss", "normalize", "pairwise_distance",
    "poisson_nll_loss", "smooth_l1_loss", "soft_margin_loss",
]

# --- convolution, pooling, normalization, resizing, attention (one file each) -------------------

from hybrid.nn import functional_attention as _functional_attention  # noqa: E402
from hybrid.nn import functional_conv as _functional_conv  # noqa: E402
from hybrid.nn import functional_convnd as _functional_convnd  # noqa: E402
from hybrid.nn import functional_norm as _functional_norm  # noqa: E402
from hybrid.nn import functional_pool as _functional_pool  # noqa: E402
from hybrid.nn import functional_resize as _functional_resize  # noqa: E402
from hybrid.nn.functional_attention import *  # noqa: E402, F403
from hybrid.nn.functional_conv import *  # noqa: E402, F403
from hybrid.nn.functional_convnd import *  # noqa: E402, F403
from hybrid.nn.functional_norm import *  # noqa: E402, F403
from hybrid.nn.functional_pool import *  # noqa: E402, F403
from hybrid.nn.functional_resize import *  # noqa: E402, F403

__all__ += (_functional_conv.__all__ + _functional_pool.__all__ + _functional_convnd.__all__
            + _functional_norm.__all__ + _functional_resize.__all__
            + _functional_attention.__all__)
