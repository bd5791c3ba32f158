"""Pooling and channel dropout of hybrid.nn.functional (PyTorch's names and signatures), built on
the window helpers of functional_conv.py: max pooling is an amax and average pooling a sum over
the window axis of `_windows`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.nn.functional_conv import _batched, _fail, _need_input, _out_size, _pair, _t, _windows
from hybrid.ops import creation as cr
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.elementwise import where
from hybrid.ops.linalg import matmul

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "dropout1d",
    "dropout2d",
    "max_pool1d",
    "max_pool2d",
]


# --- pooling --------------------------------------------------------------------------------------


def _pool_args(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
               ceil_mode: bool, n: int) -> tuple:
    k = _pair(op, "kernel_size", kernel_size, n)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else \
        _pair(op, "stride", stride, n)
    p, d = _pair(op, "padding", padding, n), _pair(op, "dilation", dilation, n)
    if any(v < 1 for v in k + s + d):
        raise _fail(f"{op}: kernel_size, stride and dilation must be positive, got "
                    f"{kernel_size!r}, {stride!r}, {dilation!r}")
    if any(p[i] < 0 or 2 * p[i] > k[i] for i in range(n)):
        raise _fail(f"{op}: padding {padding!r} must be at most half the kernel size {k}")
    if n == 1:
        k, s, p, d = (1,) + k, (1,) + s, (0,) + p, (1,) + d
    out = tuple(_out_size(op, x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2))
    return k, s, p, d, out


def _pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
          ceil_mode: bool, n: int, reduce: Any) -> Any:
    _need_input(op, x, n)
    x, unbatched = _batched(x, n)
    if n == 1:
        x = sh.unsqueeze(x, 2)
    k, s, p, d, out = _pool_args(op, x, kernel_size, stride, padding, dilation, ceil_mode, n)
    y = reduce(x, k, s, p, d, out)
    if n == 1:
        y = sh.squeeze(y, 2)
    return sh.squeeze(y, 0) if unbatched else y


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The max over each (dilated) window; padding counts as -inf."""
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, 2)


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, 1)


def _max_pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool, return_indices: bool, n: int) -> Any:
    if return_indices:
        raise errors.HybridError(errors.at_user(
            f"{op}: return_indices=True is not supported yet; call it without return_indices"))

    def reduce(x, k, s, p, d, out):
        cols = _windows(x, k, s, (p[0], p[0], p[1], p[1]), d, out, value=-math.inf)
        return rd.amax(cols, 2)

    return _pool(op, x, kernel_size, stride, padding, dilation, ceil_mode, n, reduce)


def _avg_divisor(h: int, w: int, k: tuple, s: tuple, p: tuple, out: tuple,
                 count_include_pad: bool) -> np.ndarray:
    """PyTorch's divisor per output cell: the window clipped to the padded input (or to the
    input itself without count_include_pad)."""
    def counts(n, k_, s_, p_, o):
        start = np.arange(o) * s_ - p_
        end = np.minimum(start + k_, n + p_)
        if count_include_pad:
            return end - start
        return np.minimum(end, n) - np.maximum(start, 0)

    return np.outer(counts(h, k[0], s[0], p[0], out[0]), counts(w, k[1], s[1], p[1], out[1]))


def _avg_pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool, divisor_override: Any, n: int) -> Any:
    def reduce(x, k, s, p, d, out):
        cols = _windows(x, k, s, (p[0], p[0], p[1], p[1]), d, out)
        total = rd.sum(cols, 2)
        if divisor_override is not None:
            return total / float(divisor_override)
        div = _avg_divisor(x.shape[2], x.shape[3], k, s, p, out, count_include_pad)
        if np.all(div == div.flat[0]):
            return total / float(div.flat[0])
        return total * cr.tensor(1.0 / div, dtype=x.dtype, device=x.device)

    if divisor_override is not None and (not isinstance(divisor_override, (int, float))
                                         or divisor_override == 0):
        raise _fail(f"{op}: divisor_override must be a non-zero number, got {divisor_override!r}")
    return _pool(op, x, kernel_size, stride, padding, 1, ceil_mode, n, reduce)


def avg_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Any = None) -> Any:
    """The mean over each window (PyTorch's divisor rules for padding and ceil_mode)."""
    return _avg_pool("avg_pool2d", input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, 2)


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Any:
    return _avg_pool("avg_pool1d", input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, None, 1)


def _adaptive_matrix(n: int, o: int) -> np.ndarray:
    """(o, n): row i averages input [floor(i n / o), ceil((i + 1) n / o))."""
    m = np.zeros((o, n))
    for i in range(o):
        a, b = (i * n) // o, -(-((i + 1) * n) // o)
        m[i, a:b] = 1.0 / (b - a)
    return m


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Any:
    """Average pooling to a fixed output size (None in output_size keeps that dim)."""
    op = "adaptive_avg_pool2d"
    _need_input(op, input, 2)
    x, unbatched = _batched(input, 2)
    h, w = x.shape[2], x.shape[3]
    if isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        oh, ow = (h if output_size[0] is None else output_size[0],
                  w if output_size[1] is None else output_size[1])
    else:
        oh, ow = _pair(op, "output_size", output_size)
    if oh < 1 or ow < 1:
        raise _fail(f"{op}: output_size must be positive, got {output_size!r}")
    if h % oh == 0 and w % ow == 0:
        k = (h // oh, w // ow)
        y = rd.sum(_windows(x, k, k, (0,) * 4, (1, 1), (oh, ow)), 2) / float(k[0] * k[1])
    else:
        ph = cr.tensor(_adaptive_matrix(h, oh), dtype=x.dtype, device=x.device)
        pw = cr.tensor(_adaptive_matrix(w, ow).T.copy(), dtype=x.dtype, device=x.device)
        y = matmul(matmul(ph, x), pw)
    return sh.squeeze(y, 0) if unbatched else y


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Any:
    _need_input("adaptive_avg_pool1d", input, 1)
    o = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    return sh.squeeze(adaptive_avg_pool2d(sh.unsqueeze(input, -2), (1, o)), -2)


# --- channel dropout ------------------------------------------------------------------------------


def _channel_dropout(op: str, x: Any, p: float, training: bool, dims: int) -> Any:
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise _fail(f"{op}: probability has to be between 0 and 1, but got {p}")
    if x.ndim not in (dims + 1, dims + 2):
        raise _fail(f"{op}: expected a {dims + 1}-d or {dims + 2}-d input, got {_t(x)}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    from hybrid.random import bernoulli_mask

    keep_dims = 1 if x.ndim == dims + 1 else 2
    shape = tuple(x.shape[:keep_dims]) + (1,) * (x.ndim - keep_dims)
    keep = bernoulli_mask(shape, 1.0 - p, x)
    return where(keep, x * (1.0 / (1.0 - p)), 0.0)


def dropout2d(input: Any, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, H, W) with probability p, scaling the rest by 1/(1-p)."""
    out = _channel_dropout("dropout2d", input, p, training, 2)
    if inplace and out is not input:
        from hybrid.tensor import inplace_op

        return inplace_op(input, lambda _: out)
    return out


def dropout1d(input: Any, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Any:
    out = _channel_dropout("dropout1d", input, p, training, 1)
    if inplace and out is not input:
        from hybrid.tensor import inplace_op

        return inplace_op(input, lambda _: out)
    return out
