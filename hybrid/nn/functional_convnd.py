"""conv3d and the transposed convolutions of hybrid.nn.functional (PyTorch's names, signatures,
weight layouts and output sizes), written on top of conv2d/conv1d (functional_conv.py).

conv3d folds the depth axis into channels: the kd strided depth slices of the padded input are
stacked next to each group's channels, so one conv2d call (one GEMM per group) computes it.
A transposed convolution is the gradient of a convolution with respect to its input: the input
is dilated by the stride (zeros inserted), padded by dilation * (k - 1) - padding (plus
output_padding at the end), and convolved with stride 1 by the flipped, transposed weight."""

from __future__ import annotations

from typing import Any

from hybrid import errors
from hybrid.nn.functional_conv import (
    _batched,
    _fail,
    _need_input,
    _out_size,
    _pair,
    _t,
    conv1d,
    conv2d,
)
from hybrid.ops import shape as sh

__all__ = ["conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


def _check_weight(op: str, x: Any, weight: Any, bias: Any, groups: Any, n: int,
                  transposed: bool) -> None:
    """Shared checks of a (batched) input, its weight, bias and groups."""
    layout = ("(in_channels, out_channels / groups, *kernel)" if transposed else
              "(out_channels, in_channels / groups, *kernel)")
    if not hasattr(weight, "dtype") or weight.ndim != n + 2:
        got = _t(weight) if hasattr(weight, "dtype") else type(weight).__name__
        raise _fail(f"{op}: weight must be {n + 2}-d {layout}, got {got}")
    if x.dtype is not weight.dtype:
        raise errors.DTypeError(errors.at_user(f"{op}: input {_t(x)} and weight {_t(weight)} "
                                               f"have different dtypes; cast one with .to()"))
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise _fail(f"{op}: groups must be a positive int, got {groups!r}")
    c_in = x.shape[1]
    if transposed:
        if weight.shape[0] != c_in or c_in % groups:
            raise _fail(f"{op}: input {_t(x)} has {c_in} channels but weight {_t(weight)} "
                        f"(in_channels first) with groups={groups} expects {weight.shape[0]}, "
                        f"divisible by groups")
        c_out = weight.shape[1] * groups
    else:
        c_out = weight.shape[0]
        if c_in % groups or c_out % groups:
            raise _fail(f"{op}: groups={groups} must divide in_channels ({c_in}) and "
                        f"out_channels ({c_out})")
        if weight.shape[1] * groups != c_in:
            raise _fail(f"{op}: input {_t(x)} has {c_in} channels but weight {_t(weight)} with "
                        f"groups={groups} expects {weight.shape[1] * groups}")
    if bias is not None and (not hasattr(bias, "dtype") or bias.ndim != 1
                             or bias.shape[0] != c_out):
        got = _t(bias) if hasattr(bias, "dtype") else type(bias).__name__
        raise _fail(f"{op}: bias must have shape [{c_out}], got {got}")


def _positive(op: str, **values: tuple) -> None:
    for name, v in values.items():
        if any(i < 1 for i in v):
            raise _fail(f"{op}: {name} must be positive, got {v}")


# --- conv3d ---------------------------------------------------------------------------------------


def conv3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """3-d cross-correlation of (N, C, D, H, W) with weight (O, C / groups, kd, kh, kw)."""
    op = "conv3d"
    _need_input(op, input, 3)
    x, unbatched = _batched(input, 3)
    _check_weight(op, x, weight, bias, groups, 3, transposed=False)
    s, d = _pair(op, "stride", stride, 3), _pair(op, "dilation", dilation, 3)
    _positive(op, stride=s, dilation=d)
    k = tuple(weight.shape[2:])
    if padding == "valid":
        p_lo, p_hi, hw_pad = 0, 0, (0, 0)
    elif padding == "same":
        if any(v != 1 for v in s):
            raise _fail(f"{op}: padding='same' is not supported for strided convolutions "
                        f"(stride {s})")
        total = d[0] * (k[0] - 1)
        p_lo, p_hi, hw_pad = total // 2, total - total // 2, "same"
    elif isinstance(padding, str):
        raise _fail(f"{op}: padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    else:
        p = _pair(op, "padding", padding, 3)
        if any(v < 0 for v in p):
            raise _fail(f"{op}: negative padding {padding!r}")
        p_lo, p_hi, hw_pad = p[0], p[0], p[1:]
    for i in range(1, 3):  # conv2d would name itself: check the kernel fits here
        pad_i = 0 if isinstance(hw_pad, str) else 2 * hw_pad[i - 1]
        if hw_pad != "same":
            _out_size(op, x.shape[2 + i] + pad_i, k[i], s[i], 0, d[i])
    depth = _out_size(op, x.shape[2] + p_lo + p_hi, k[0], s[0], 0, d[0])
    nb, c_in = x.shape[0], x.shape[1]
    h, w = x.shape[3], x.shape[4]
    xp = sh.pad(x, (0, 0, 0, 0, p_lo, p_hi)) if p_lo or p_hi else x
    cg = c_in // groups
    # one strided depth slice per kernel depth offset: (N, G, 1, C/G, Do, H, W) each
    slices = [sh.unsqueeze(sh.reshape(
        sh.slice_dim(xp, 2, a * d[0], a * d[0] + s[0] * (depth - 1) + 1, s[0]),
        (nb, groups, cg, depth, h, w)), 2) for a in range(k[0])]
    col = slices[0] if k[0] == 1 else sh.cat(slices, 2)  # (N, G, kd, C/G, Do, H, W)
    col = sh.reshape(sh.permute(col, 0, 4, 1, 2, 3, 5, 6), (nb * depth, c_in * k[0], h, w))
    # weight (O, C/G, kd, kh, kw) -> (O, kd * C/G, kh, kw), the channel order of `col`
    w2 = sh.reshape(sh.permute(weight, 0, 2, 1, 3, 4), (weight.shape[0], k[0] * cg, k[1], k[2]))
    y = conv2d(col, w2, None, s[1:], hw_pad, d[1:], groups)  # (N*Do, O, Ho, Wo)
    y = sh.permute(sh.reshape(y, (nb, depth) + tuple(y.shape[1:])), 0, 2, 1, 3, 4)
    if bias is not None:
        y = y + sh.reshape(bias, (1, -1, 1, 1, 1))
    return sh.squeeze(y, 0) if unbatched else y


# --- transposed convolution -----------------------------------------------------------------------


def _dilate(x: Any, dim: int, s: int) -> Any:
    """Insert s - 1 zeros between neighbours along `dim`: size n -> (n - 1) * s + 1."""
    if s == 1:
        return x
    n = x.shape[dim]
    y = sh.pad(sh.unsqueeze(x, dim + 1), (0, 0) * (x.ndim - dim - 1) + (0, s - 1))
    y = sh.reshape(y, tuple(x.shape[:dim]) + (n * s,) + tuple(x.shape[dim + 1:]))
    return sh.slice_dim(y, dim, 0, (n - 1) * s + 1)


def _flip(x: Any, dim: int) -> Any:
    """x reversed along `dim` (a kernel axis: one slice per offset)."""
    n = x.shape[dim]
    if n == 1:
        return x
    return sh.cat([sh.slice_dim(x, dim, i, i + 1) for i in range(n - 1, -1, -1)], dim)


def _conv_transpose(op: str, x: Any, weight: Any, bias: Any, stride: Any, padding: Any,
                    output_padding: Any, groups: int, dilation: Any, n: int) -> Any:
    _need_input(op, x, n)
    x, unbatched = _batched(x, n)
    _check_weight(op, x, weight, bias, groups, n, transposed=True)
    s, d = _pair(op, "stride", stride, n), _pair(op, "dilation", dilation, n)
    _positive(op, stride=s, dilation=d)
    if isinstance(padding, str):
        raise _fail(f"{op}: padding must be an int or a tuple of {n} ints, got {padding!r}")
    p, op_ = _pair(op, "padding", padding, n), _pair(op, "output_padding", output_padding, n)
    if any(v < 0 for v in p + op_):
        raise _fail(f"{op}: negative padding {padding!r} or output_padding {output_padding!r}")
    if any(op_[i] >= max(s[i], d[i]) for i in range(n)):
        raise _fail(f"{op}: output_padding {op_} must be smaller than either stride {s} or "
                    f"dilation {d}")
    k = tuple(weight.shape[2:])
    for i in range(n):
        size = (x.shape[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op_[i] + 1
        if size < 1:
            raise _fail(f"{op}: input {_t(x)} with kernel {k}, stride {s}, padding {p} and "
                        f"dilation {d} gives a non-positive output size along spatial dim {i}")
    pads: tuple = ()
    for i in range(n):
        x = _dilate(x, 2 + i, s[i])
        q = d[i] * (k[i] - 1) - p[i]
        pads = (q, q + op_[i]) + pads  # F.pad order: last dim first; negative crops
    x = sh.pad(x, pads)
    c_in, og = weight.shape[0], weight.shape[1]
    # weight (C, O/G, *k) -> (O, C/G, *k), flipped along every kernel axis
    wt = sh.reshape(weight, (groups, c_in // groups, og) + k)
    wt = sh.reshape(sh.transpose(wt, 1, 2), (groups * og, c_in // groups) + k)
    for i in range(n):
        wt = _flip(wt, 2 + i)
    fn = {1: conv1d, 2: conv2d, 3: conv3d}[n]
    y = fn(x, wt, bias, 1, 0, d, groups)
    return sh.squeeze(y, 0) if unbatched else y


def conv_transpose1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """Transposed 1-d convolution of (N, C, L) with weight (C, O / groups, k)."""
    return _conv_transpose("conv_transpose1d", input, weight, bias, stride, padding,
                           output_padding, groups, dilation, 1)


def conv_transpose2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """Transposed 2-d convolution of (N, C, H, W) with weight (C, O / groups, kh, kw)."""
    return _conv_transpose("conv_transpose2d", input, weight, bias, stride, padding,
                           output_padding, groups, dilation, 2)


def conv_transpose3d(input: Any, weight: Any, bias: Any = None, stride: Any = 1,
                     padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                     dilation: Any = 1) -> Any:
    """Transposed 3-d convolution of (N, C, D, H, W) with weight (C, O / groups, kd, kh, kw)."""
    return _conv_transpose("conv_transpose3d", input, weight, bias, stride, padding,
                           output_padding, groups, dilation, 3)
