"""Convolution functions of hybrid.nn.functional (PyTorch's names and signatures), and the window
helpers that pooling (functional_pool.py) shares, written as compositions of hybrid's primitive
ops so they run eagerly and compile through the existing lowering.

Every window op is built the same way (`_windows`): pad, then one strided slice per kernel
offset, stacked on a new axis. conv then is one batched matmul of the weight with those columns
(im2col), max pooling an amax and average pooling a sum over that axis; the gradients are those
of slice, pad, concat and matmul. 1-d forms add a height-1 axis and call the 2-d ones."""

from __future__ import annotations

from typing import Any

from hybrid import errors
from hybrid.ops import shape as sh
from hybrid.ops.linalg import matmul

__all__ = ["conv1d", "conv2d"]


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
