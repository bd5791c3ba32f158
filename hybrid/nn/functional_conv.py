"""Convolution, pooling, normalization and resizing functions of hybrid.nn.functional (PyTorch's
names and signatures), written as compositions of hybrid's primitive ops so they run eagerly and
compile through the existing lowering.

Every window op is built the same way (`_windows`): pad, then one strided slice per kernel
offset, stacked on a new axis. conv then is one batched matmul of the weight with those columns
(im2col), max pooling an amax and average pooling a sum over that axis; the gradients are those
of slice, pad, concat and matmul. 1-d forms add a height-1 axis and call the 2-d ones."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hybrid import errors
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
    "conv1d",
    "conv2d",
    "dropout1d",
    "dropout2d",
    "max_pool1d",
    "max_pool2d",
]


def _t(x: Any) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


def _fail(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(message))


def _pair(op: str, name: str, v: Any, n: int = 2) -> tuple[int, ...]:
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    if isinstance(v, (tuple, list)) and len(v) == 1 and n > 1:
        return (int(v[0]),) * n
    if isinstance(v, (tuple, list)) and len(v) == n and all(isinstance(i, int) for i in v):
        return tuple(int(i) for i in v)
    raise _fail(f"{op}: {name} must be an int or a tuple of {n} ints, got {v!r}")


def _need_input(op: str, x: Any, dims: int) -> None:
    if not hasattr(x, "dtype") or x.ndim not in (dims + 1, dims + 2):
        shape = _t(x) if hasattr(x, "dtype") else type(x).__name__
        raise _fail(f"{op}: expected a {dims + 1}-d (unbatched) or {dims + 2}-d (batched) input, "
                    f"got {shape}")
    if not x.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"{op}: expected a floating-point input, got {_t(x)}; use x.float()")
        )


def _out_size(op: str, n: int, k: int, s: int, p: int, d: int, ceil_mode: bool = False) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise _fail(f"{op}: the kernel (size {k}, dilation {d}) is larger than the padded input "
                    f"(size {n} + 2 * {p})")
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # the last window must start inside the input
        out -= 1
    return out


def _windows(x: Any, k: tuple, s: tuple, pads: tuple, d: tuple, out: tuple,
             value: float = 0.0) -> Any:
    """(N, C, H, W) -> (N, C, kh*kw, Ho, Wo): window offset (i, j) of every output position.
    `pads` is (top, bottom, left, right); the input is padded with `value`."""
    top, bottom, left, right = pads
    # the last window may reach past the padding (ceil_mode): pad the rest with `value` too
    bottom += max(0, (out[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (x.shape[2] + top + bottom))
    right += max(0, (out[1] - 1) * s[1] + d[1] * (k[1] - 1) + 1 - (x.shape[3] + left + right))
    xp = sh.pad(x, (left, right, top, bottom), value=value)
    cols = []
    for i in range(k[0]):
        rows = sh.slice_dim(xp, 2, i * d[0], i * d[0] + s[0] * (out[0] - 1) + 1, s[0])
        for j in range(k[1]):
            c = sh.slice_dim(rows, 3, j * d[1], j * d[1] + s[1] * (out[1] - 1) + 1, s[1])
            cols.append(sh.unsqueeze(c, 2))
    return cols[0] if len(cols) == 1 else sh.cat(cols, 2)


def _batched(x: Any, dims: int) -> tuple[Any, bool]:
    if x.ndim == dims + 1:
        return sh.unsqueeze(x, 0), True
    return x, False


# --- convolution ----------------------------------------------------------------------------------


def _conv_padding(op: str, padding: Any, k: tuple, s: tuple, d: tuple, n: int) -> tuple:
    """(top, bottom, left, right) for an int/tuple/'same'/'valid' padding."""
    if padding == "valid":
        return (0,) * 4
    if padding == "same":
        if any(v != 1 for v in s):
            raise _fail(f"{op}: padding='same' is not supported for strided convolutions "
                        f"(stride {s if n == 2 else s[1:]})")
        total = [d[i] * (k[i] - 1) for i in range(2)]
        return (total[0] // 2, total[0] - total[0] // 2, total[1] // 2, total[1] - total[1] // 2)
    if isinstance(padding, str):
        raise _fail(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    p = _pair(op, "padding", padding, n)
    if n == 1:
        p = (0,) + p
    if any(v < 0 for v in p):
        raise _fail(f"{op}: negative padding {padding!r}")
    return (p[0], p[0], p[1], p[1])


def _conv(op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any,
          groups: int, n: int) -> Any:
    _need_input(op, x, n)
    if weight.ndim != n + 2:
        raise _fail(f"{op}: weight must be {n + 2}-d (out_channels, in_channels / groups, "
                    f"*kernel), got {_t(weight)}")
    if x.dtype is not weight.dtype:
        raise errors.DTypeError(errors.at_user(f"{op}: input {_t(x)} and weight {_t(weight)} "
                                               f"have different dtypes; cast one with .to()"))
    x, unbatched = _batched(x, n)
    if not isinstance(groups, int) or groups < 1:
        raise _fail(f"{op}: groups must be a positive int, got {groups!r}")
    c_out, c_in_g = weight.shape[0], weight.shape[1]
    c_in = x.shape[1]
    if c_in % groups or c_out % groups:
        raise _fail(f"{op}: groups={groups} must divide in_channels ({c_in}) and out_channels "
                    f"({c_out})")
    if c_in_g * groups != c_in:
        raise _fail(f"{op}: input {_t(x)} has {c_in} channels but weight {_t(weight)} with "
                    f"groups={groups} expects {c_in_g * groups}")
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != c_out):
        raise _fail(f"{op}: bias must have shape [{c_out}], got {_t(bias)}")
    s, d = _pair(op, "stride", stride, n), _pair(op, "dilation", dilation, n)
    if any(v < 1 for v in s + d):
        raise _fail(f"{op}: stride and dilation must be positive, got {stride!r}, {dilation!r}")
    if n == 1:
        x, weight = sh.unsqueeze(x, 2), sh.unsqueeze(weight, 2)
        s, d = (1,) + s, (1,) + d
    k = tuple(weight.shape[2:])
    pads = _conv_padding(op, padding, k, s, d, n)
    h, w = x.shape[2], x.shape[3]
    out = (_out_size(op, h + pads[0] + pads[1], k[0], s[0], 0, d[0]),
           _out_size(op, w + pads[2] + pads[3], k[1], s[1], 0, d[1]))
    cols = _windows(x, k, s, pads, d, out)  # (N, C, K, Ho, Wo)
    nb, kk, length = x.shape[0], k[0] * k[1], out[0] * out[1]
    cols = sh.reshape(cols, (nb, groups, c_in_g * kk, length))
    wm = sh.reshape(weight, (groups, c_out // groups, c_in_g * kk))
    y = matmul(wm, cols)  # (N, G, O/G, L)
    y = sh.reshape(y, (nb, c_out) + out)
    if bias is not None:
        y = y + sh.reshape(bias, (1, c_out, 1, 1))
    if n == 1:
        y = sh.squeeze(y, 2)
    return sh.squeeze(y, 0) if unbatched else y


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """2-d cross-correlation of (N, C, H, W) with weight (O, C / groups, kh, kw)."""
    return _conv("conv2d", input, weight, bias, stride, padding, dilation, groups, 2)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """1-d cross-correlation of (N, C, L) with weight (O, C / groups, k)."""
    return _conv("conv1d", input, weight, bias, stride, padding, dilation, groups, 1)


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
