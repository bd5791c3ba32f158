"""Pooling (1-3 d, with indices, adaptive, unpooling) and channel dropout of hybrid.nn.functional
(PyTorch's names and signatures), built on
the window helpers of functional_conv.py: max pooling is an amax and average pooling a sum over
the window axis of `_windows`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hybrid.autograd import no_grad
from hybrid.nn.functional_conv import _batched, _fail, _need_input, _out_size, _pair, _t, _windows
from hybrid.ops import creation as cr
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.elementwise import maximum, where
from hybrid.ops.indexing import index_select, scatter_add, take
from hybrid.ops.linalg import matmul

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_unpool1d",
    "max_unpool2d",
]


# --- pooling --------------------------------------------------------------------------------------


def _pool_args(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
               ceil_mode: bool, n: int) -> tuple:
    """Kernel, stride, padding, dilation and output size over the last max(n, 2) dims of x."""
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
    m = len(k)
    first = x.ndim - m
    out = tuple(_out_size(op, x.shape[first + i], k[i], s[i], p[i], d[i], ceil_mode)
                for i in range(m))
    return k, s, p, d, out


def _pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
          ceil_mode: bool, n: int, reduce: Any) -> Any:
    """Batch and lift a 1-d input to 2-d, run `reduce(x, k, s, p, d, out)`, undo both; reduce
    may return a tuple (values, indices)."""
    _need_input(op, x, n)
    x, unbatched = _batched(x, n)
    if n == 1:
        x = sh.unsqueeze(x, 2)
    k, s, p, d, out = _pool_args(op, x, kernel_size, stride, padding, dilation, ceil_mode, n)
    ys = reduce(x, k, s, p, d, out)
    ys = ys if isinstance(ys, tuple) else (ys,)
    if n == 1:
        ys = tuple(sh.squeeze(y, 2) for y in ys)
    if unbatched:
        ys = tuple(sh.squeeze(y, 0) for y in ys)
    return ys if len(ys) > 1 else ys[0]


def _windows3d(x: Any, k: tuple, s: tuple, p: tuple, d: tuple, out: tuple,
               value: float = 0.0) -> Any:
    """(N, C, D, H, W) -> (N, C, kd*kh*kw, Do, Ho, Wo): the 2-d windows of one strided depth
    slice per depth offset, the input padded with `value` (offsets in (d, h, w) order)."""
    nb, c, h, w = x.shape[0], x.shape[1], x.shape[3], x.shape[4]
    extra = max(0, (out[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1 - (x.shape[2] + 2 * p[0]))
    if p[0] or extra:
        x = sh.pad(x, (0, 0, 0, 0, p[0], p[0] + extra), value=value)
    cols = []
    for a in range(k[0]):
        start = a * d[0]
        xa = sh.slice_dim(x, 2, start, start + s[0] * (out[0] - 1) + 1, s[0])
        wa = _windows(sh.reshape(xa, (nb, c * out[0], h, w)), k[1:], s[1:],
                      (p[1], p[1], p[2], p[2]), d[1:], out[1:], value)
        cols.append(sh.reshape(wa, (nb, c, out[0], k[1] * k[2]) + out[1:]))
    col = cols[0] if len(cols) == 1 else sh.cat(cols, 3)
    return sh.permute(col, 0, 1, 3, 2, 4, 5)


def _window_max(cols: Any) -> Any:
    """The max over axis 2 (the window elements) of cols (N, C, K, *out), its gradient going
    to the first maximum only, as PyTorch's max pools route it (a max reduction splits it
    among ties): the sum of the elements at the first argmax, each window's one non-zero
    term, so the value is the maximum exactly (NaN where the window holds one)."""
    first = rd.argmax(cols.detach(), 2, keepdim=True)
    k = cr.tensor(np.arange(cols.shape[2], dtype=np.int64).reshape(
        (1, 1, -1) + (1,) * (cols.ndim - 3)), device=cols.device)
    return rd.sum(where(k == first, cols, 0.0), 2)


def _flat_indices(cols: Any, table: np.ndarray) -> Any:
    """PyTorch's indices of a max pool: for cols (N, C, K, *out) and table (K, *out) (the flat
    index into each input plane of every window element), table[argmax over K, position]."""
    first = rd.argmax(cols, 2)  # the first maximum wins, NaN counts as the maximum
    cells = int(np.prod(table.shape[1:]))
    position = np.arange(cells, dtype=np.int64).reshape(table.shape[1:])
    lin = first * cells + cr.tensor(position, dtype=first.dtype, device=first.device)
    flat = cr.tensor(table.reshape(-1), dtype=first.dtype, device=first.device)
    return sh.reshape(take(flat, sh.reshape(lin, (-1,))), tuple(first.shape))


def _window_table(sizes: tuple, k: tuple, s: tuple, p: tuple, d: tuple, out: tuple) -> np.ndarray:
    """(prod(k), *out): flat index into an input plane of `sizes` of each window element."""
    table = np.zeros(tuple(k) + tuple(out), dtype=np.int64)
    m = len(k)
    for i in range(m):
        coord = (np.arange(k[i]) * d[i])[:, None] + (np.arange(out[i]) * s[i] - p[i])[None, :]
        shape = [1] * (2 * m)
        shape[i], shape[m + i] = k[i], out[i]
        table = table + coord.reshape(shape) * int(np.prod(sizes[i + 1:]))
    return table.reshape((-1,) + tuple(out))


def max_pool3d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The max over each (dilated) 3-d window of (N, C, D, H, W); padding counts as -inf."""
    return _max_pool("max_pool3d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, 3)


def max_pool2d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The max over each (dilated) window; padding counts as -inf."""
    return _max_pool("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, 2)


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False) -> Any:
    """The max over each (dilated) window of (N, C, L); padding counts as -inf."""
    return _max_pool("max_pool1d", input, kernel_size, stride, padding, dilation, ceil_mode,
                     return_indices, 1)


def _max_pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
              ceil_mode: bool, return_indices: bool, n: int) -> Any:
    def reduce(x, k, s, p, d, out):
        if n == 3:
            cols = _windows3d(x, k, s, p, d, out, value=-math.inf)
        else:
            cols = _windows(x, k, s, (p[0], p[0], p[1], p[1]), d, out, value=-math.inf)
        values = _window_max(cols)
        if not return_indices:
            return values
        table = _window_table(tuple(x.shape[2:]), k, s, p, d, out)
        return values, _flat_indices(cols, table)

    return _pool(op, x, kernel_size, stride, padding, dilation, ceil_mode, n, reduce)


def _counts(n: int, k: int, s: int, p: int, o: int, count_include_pad: bool) -> np.ndarray:
    """PyTorch's average-pool divisor along one dim: the window clipped to the padded input
    (or to the input itself without count_include_pad)."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, n + p)
    if count_include_pad:
        return end - start
    return np.minimum(end, n) - np.maximum(start, 0)


def _avg_divisor(sizes: tuple, k: tuple, s: tuple, p: tuple, out: tuple,
                 count_include_pad: bool) -> np.ndarray:
    """PyTorch's divisor per output cell: the product of the per-dim clipped window sizes."""
    div = np.ones(())
    for i in range(len(sizes)):
        div = np.multiply.outer(div, _counts(sizes[i], k[i], s[i], p[i], out[i],
                                             count_include_pad))
    return div


def _avg_pool(op: str, x: Any, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
              count_include_pad: bool, divisor_override: Any, n: int) -> Any:
    def reduce(x, k, s, p, d, out):
        if n == 3:
            cols = _windows3d(x, k, s, p, d, out)
        else:
            cols = _windows(x, k, s, (p[0], p[0], p[1], p[1]), d, out)
        total = rd.sum(cols, 2)
        if divisor_override is not None:
            return total / float(divisor_override)
        div = _avg_divisor(tuple(x.shape[2:]), k, s, p, out, count_include_pad)
        if np.all(div == div.flat[0]):
            return total / float(div.flat[0])
        return total * cr.tensor(1.0 / div, dtype=x.dtype, device=x.device)

    if divisor_override is not None and (not isinstance(divisor_override, (int, float))
                                         or divisor_override == 0):
        raise _fail(f"{op}: divisor_override must be a non-zero number, got {divisor_override!r}")
    return _pool(op, x, kernel_size, stride, padding, 1, ceil_mode, n, reduce)


def avg_pool3d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: Any = None) -> Any:
    """The mean over each 3-d window of (N, C, D, H, W) (PyTorch's divisor rules)."""
    return _avg_pool("avg_pool3d", input, kernel_size, stride, padding, ceil_mode,
                     count_include_pad, divisor_override, 3)


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


def _adaptive_size(op: str, output_size: Any, sizes: tuple) -> tuple:
    """output_size as a tuple over `sizes` (None keeps that dim)."""
    n = len(sizes)
    if isinstance(output_size, (tuple, list)) and len(output_size) == n:
        out = tuple(sizes[i] if output_size[i] is None else output_size[i] for i in range(n))
    else:
        out = _pair(op, "output_size", output_size, n)
    if any(not isinstance(o, int) or o < 1 for o in out):
        raise _fail(f"{op}: output_size must be positive, got {output_size!r}")
    return out


def _adaptive_rows(n: int, o: int) -> np.ndarray:
    """(K, o): row t holds min(start + t, end - 1) for PyTorch's windows [floor(i n / o),
    ceil((i + 1) n / o)), K the longest window; repeats of a window's last element never change
    its max, and they come after it, so the first maximum is the one PyTorch picks."""
    start = (np.arange(o) * n) // o
    end = -((-(np.arange(1, o + 1) * n)) // o)
    size = int((end - start).max())
    return np.minimum(start[None, :] + np.arange(size)[:, None], end[None, :] - 1)


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling to a fixed output size (None in output_size keeps that dim); with
    return_indices, also the flat index of each maximum in its (H*W) plane (int64)."""
    op = "adaptive_max_pool2d"
    _need_input(op, input, 2)
    x, unbatched = _batched(input, 2)
    h, w = x.shape[2], x.shape[3]
    oh, ow = _adaptive_size(op, output_size, (h, w))
    rows, cols = _adaptive_rows(h, oh), _adaptive_rows(w, ow)
    picks = []
    for r in rows:  # one gather per window offset (the longest window's length)
        xr = index_select(x, 2, cr.tensor(r, device=x.device))
        picks += [sh.unsqueeze(index_select(xr, 3, cr.tensor(c, device=x.device)), 2)
                  for c in cols]
    stacked = picks[0] if len(picks) == 1 else sh.cat(picks, 2)  # (N, C, K, oh, ow)
    values = _window_max(stacked)
    result = (values,)
    if return_indices:
        table = rows[:, None, :, None] * w + cols[None, :, None, :]  # (Kh, Kw, oh, ow)
        result += (_flat_indices(stacked, table.reshape((-1, oh, ow))),)
    if unbatched:
        result = tuple(sh.squeeze(y, 0) for y in result)
    return result if return_indices else result[0]


def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Max pooling of (N, C, L) to a fixed output length (indices into L with return_indices)."""
    _need_input("adaptive_max_pool1d", input, 1)
    o = output_size[0] if isinstance(output_size, (tuple, list)) and len(output_size) == 1 \
        else output_size
    if not isinstance(o, int) or isinstance(o, bool):
        raise _fail(f"adaptive_max_pool1d: output_size must be an int, got {output_size!r}")
    out = adaptive_max_pool2d(sh.unsqueeze(input, -2), (1, o), return_indices)
    if return_indices:
        return sh.squeeze(out[0], -2), sh.squeeze(out[1], -2)
    return sh.squeeze(out, -2)


def _unpool(op: str, x: Any, indices: Any, kernel_size: Any, stride: Any, padding: Any,
            output_size: Any, n: int) -> Any:
    """Zeros of the unpooled size with x's values at `indices` (flat per plane)."""
    _need_input(op, x, n)
    if not hasattr(indices, "dtype") or tuple(indices.shape) != tuple(x.shape) or \
            not indices.dtype.is_integer:
        got = _t(indices) if hasattr(indices, "dtype") else type(indices).__name__
        raise _fail(f"{op}: indices must be an integer tensor shaped like the input {_t(x)}, "
                    f"got {got}; pass the indices of max_pool{n}d(..., return_indices=True)")
    k = _pair(op, "kernel_size", kernel_size, n)
    s = k if stride is None else _pair(op, "stride", stride, n)
    p = _pair(op, "padding", padding, n)
    size = tuple((x.shape[x.ndim - n + i] - 1) * s[i] - 2 * p[i] + k[i] for i in range(n))
    if output_size is not None:
        size = tuple(int(v) for v in output_size)[-n:]
    lead = tuple(x.shape[:x.ndim - n])
    cells = int(np.prod(size))
    flat_x = sh.reshape(x, lead + (-1,))
    zeros = cr.zeros(lead + (cells,), dtype=x.dtype, device=x.device)
    index = sh.reshape(indices, lead + (-1,))
    y = scatter_add(zeros, len(lead), index, flat_x)
    # NOTE: overlapping pooling windows repeat an index (always with the same value); PyTorch
    # writes it once, so the sum is divided by the count (its gradient is then shared among
    # the repeats, where PyTorch gives each the whole gradient)
    with no_grad():
        count = scatter_add(zeros, len(lead), index, cr.ones_like(flat_x))
    y = where(count > 1, y / maximum(count, 1.0), y)
    return sh.reshape(y, lead + size)


def max_unpool2d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Any:
    """The partial inverse of max_pool2d: each value goes back to its index, zeros elsewhere."""
    return _unpool("max_unpool2d", input, indices, kernel_size, stride, padding, output_size, 2)


def max_unpool1d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Any:
    """The partial inverse of max_pool1d: each value goes back to its index, zeros elsewhere."""
    return _unpool("max_unpool1d", input, indices, kernel_size, stride, padding, output_size, 1)


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


def _dropout_nd(op: str, input: Any, p: float, training: bool, inplace: bool, dims: int) -> Any:
    out = _channel_dropout(op, input, p, training, dims)
    if inplace and out is not input:
        from hybrid.tensor import inplace_op

        return inplace_op(input, lambda _: out)
    return out


def dropout2d(input: Any, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, H, W) with probability p, scaling the rest by 1/(1-p)."""
    return _dropout_nd("dropout2d", input, p, training, inplace, 2)


def dropout1d(input: Any, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, L) with probability p, scaling the rest by 1/(1-p)."""
    return _dropout_nd("dropout1d", input, p, training, inplace, 1)


def dropout3d(input: Any, p: float = 0.5, training: bool = True,
              inplace: bool = False) -> Any:
    """Zero whole channels of (N, C, D, H, W) with probability p, scaling the rest by 1/(1-p)."""
    return _dropout_nd("dropout3d", input, p, training, inplace, 3)
