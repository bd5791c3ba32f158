"""Convolution functions of hybrid.nn.functional (PyTorch's names and signatures), and the window
helpers that pooling (functional_pool.py) shares, written as compositions of hybrid's primitive
ops so they run eagerly and compile through the existing lowering.

Every window op is built the same way (`_windows`): pad, then one strided slice per kernel
offset, stacked on a new axis. conv then is one batched matmul of the weight with those columns
(im2col), max pooling an amax and average pooling a sum over that axis; the gradients are those
of slice, pad, concat and matmul. 1-d forms add a height-1 axis and call the 2-d ones."""

from __future__ import annotations

from typing import Any

from compiler.ir.ops import Op
from hybrid import errors
from hybrid.ops import shape as sh
from hybrid.ops.core import apply
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
    cols = [sh.unsqueeze(_window(xp, (2, 3), (i * d[0], j * d[1]), out, s), 2)
            for i in range(k[0]) for j in range(k[1])]
    return cols[0] if len(cols) == 1 else sh.cat(cols, 2)


def _window(x: Any, dims: tuple, starts: tuple, counts: tuple, steps: tuple) -> Any:
    """One strided window of x: `counts[i]` elements from `starts[i]` by `steps[i]` along each of
    `dims`, as a single slice (its gradient is one pad, so the gradients of all the windows of a
    conv or pool fuse into one sum of shifted reads)."""
    lo, hi, st = [0] * x.ndim, list(x.shape), [1] * x.ndim
    for dim, start, count, step in zip(dims, starts, counts, steps):
        lo[dim], hi[dim], st[dim] = start, start + step * (count - 1) + 1, step
    if lo == [0] * x.ndim and hi == list(x.shape) and st == [1] * x.ndim:
        return x
    return sh._view(apply(Op.SLICE, x, starts=tuple(lo), stops=tuple(hi), steps=tuple(st)), x)


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
    y = _conv_channels_last(x, weight, k, s, pads, d, out, groups, bias)
    if n == 1:
        y = sh.squeeze(y, 2)
    return sh.squeeze(y, 0) if unbatched else y


def _conv_channels_last(x: Any, weight: Any, k: tuple, s: tuple, pads: tuple, d: tuple,
                        out: tuple, groups: int, bias: Any = None) -> Any:
    """(N, C, H, W) conv (O, C / G, kh, kw) -> (N, O, Ho, Wo), computed channels-last: the input
    goes to (N, H, W, C) once, the im2col columns are (N*Ho*Wo, kh*kw*C/G) rows per group, and
    the product with the weight is one GEMM per group whose rows are every output position of
    the whole batch. Its gradients are single GEMMs too (the weight gradient's K is N*Ho*Wo),
    where the NCHW form needs one small GEMM per sample and a sum over the batch. The bias is
    added channels-last; the result is row-major NCHW, as PyTorch's (x.view(n, -1) works):
    eager pays one transposing copy; compiled, the copy is an elementwise node fused into its
    consumers (a tiled transposing store where it must be written)."""
    nb = x.shape[0]
    c_out, c_in_g = weight.shape[0], weight.shape[1]
    top, bottom, left, right = pads
    xp = sh.pad(sh.permute(x, 0, 2, 3, 1), (0, 0, left, right, top, bottom))  # (N, Hp, Wp, C)
    # NOTE: each window is reshaped after its slice, so the slice's gradient (a pad) is read
    # through no reshape and the pads of all windows fuse into one sum (see fuse._padded_under)
    cols = [sh.reshape(_window(xp, (1, 2), (i * d[0], j * d[1]), out, s),
                       (nb, out[0], out[1], groups, 1, c_in_g))
            for i in range(k[0]) for j in range(k[1])]
    kk, positions = k[0] * k[1], nb * out[0] * out[1]
    col = cols[0] if kk == 1 else sh.cat(cols, 4)  # (N, Ho, Wo, G, kh*kw, C/G)
    col = sh.reshape(col, (positions, groups, kk * c_in_g))
    og = c_out // groups
    # weight (O, C/G, kh, kw) -> (G, kh*kw*C/G, O/G), matching the column order
    wm = sh.permute(sh.reshape(weight, (groups, og, c_in_g, kk)), 0, 3, 2, 1)
    wm = sh.reshape(wm, (groups, kk * c_in_g, og))
    if groups == 1:
        y = matmul(sh.reshape(col, (positions, kk * c_in_g)), sh.reshape(wm, wm.shape[1:]))
    else:
        y = sh.permute(matmul(sh.permute(col, 1, 0, 2), wm), 1, 0, 2)  # (N*L, G, O/G)
    y = sh.reshape(y, (nb, out[0], out[1], c_out))
    if bias is not None:
        y = y + bias
    return sh.contiguous(sh.permute(y, 0, 3, 1, 2))


def conv2d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """2-d cross-correlation of (N, C, H, W) with weight (O, C / groups, kh, kw)."""
    return _conv("conv2d", input, weight, bias, stride, padding, dilation, groups, 2)


def conv1d(input: Any, weight: Any, bias: Any = None, stride: Any = 1, padding: Any = 0,
           dilation: Any = 1, groups: int = 1) -> Any:
    """1-d cross-correlation of (N, C, L) with weight (O, C / groups, k)."""
    return _conv("conv1d", input, weight, bias, stride, padding, dilation, groups, 1)
