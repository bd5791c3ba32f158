"""Resizing and patch functions of hybrid.nn.functional (PyTorch's names and signatures):
interpolate (and the deprecated upsample aliases), unfold/fold (im2col/col2im), pixel_shuffle
and pixel_unshuffle, written as compositions of hybrid's primitive ops.

interpolate is separable: along each spatial dim, from the last to the first (PyTorch's order),
the output is a weighted sum of K `index_select`s of the input (K = 1 nearest, 2 linear, 4 cubic,
more with antialias); 'area' is adaptive average pooling (5-d: over (H, W), then over D). The
indices and weights depend only on the static sizes, so they are computed here with numpy, in
the precision of PyTorch's CPU kernels (UpSampleKernel.cpp: float32 for float32 and float16
inputs, float64 for float64; `floorf` rounds to float32 first), and enter a compiled graph as
constants. Gradients are those of index_select (a scatter-add) and the
products. fold places each kernel offset's block with one interior-padded pad (stride - 1 zeros
between elements), so its gradient is a strided slice per offset."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from compiler.ir.ops import Op
from hybrid import errors
from hybrid.nn.functional_conv import _fail, _out_size, _pair, _t, _windows
from hybrid.ops import shape as sh
from hybrid.ops.core import apply
from hybrid.ops.creation import tensor
from hybrid.ops.indexing import index_select

__all__ = [
    "fold",
    "interpolate",
    "pixel_shuffle",
    "pixel_unshuffle",
    "unfold",
    "upsample",
    "upsample_bilinear",
    "upsample_nearest",
]

# mode -> number of spatial dims it needs (None: any of 1, 2, 3)
_MODES = {"nearest": None, "nearest-exact": None, "area": None, "linear": 1, "bilinear": 2,
          "bicubic": 2, "trilinear": 3}
_CUBIC_A = -0.75  # PyTorch's bicubic coefficient (antialiased bicubic uses Keys' -0.5)


def _need_tensor(op: str, x: Any, floating: bool = False) -> None:
    if not hasattr(x, "dtype") or not hasattr(x, "ndim"):
        raise errors.DTypeError(errors.at_user(f"{op}: expected a tensor, got "
                                               f"{type(x).__name__}"))
    if floating and not x.dtype.is_floating:
        raise errors.DTypeError(errors.at_user(
            f"{op}: expected a floating-point input, got {_t(x)}; use x.float()"))


# --- source indices and weights (numpy, static sizes only) ----------------------------------------


def _scale(opm: type, n_in: int, n_out: int, align_corners: bool, scale: float | None) -> Any:
    """area_pixel_compute_scale: the input step per output step, in the kernel's precision."""
    if align_corners:
        return opm(n_in - 1) / opm(n_out - 1) if n_out > 1 else opm(0)
    if scale is not None and scale > 0:
        return opm(1.0 / scale)
    return opm(n_in) / opm(n_out)


def _source(opm: type, step: Any, n_out: int, align_corners: bool, cubic: bool) -> np.ndarray:
    """area_pixel_compute_source_index for every output position."""
    i = np.arange(n_out).astype(opm)
    if align_corners:
        return step * i
    src = step * (i + opm(0.5)) - opm(0.5)
    return src if cubic else np.where(src < 0, opm(0), src)


def _floorf(v: np.ndarray) -> np.ndarray:
    """C's floorf: the argument is rounded to float32 first."""
    return np.floor(v.astype(np.float32)).astype(np.int64)


def _cubic_weights(t: np.ndarray, a: float, opm: type) -> np.ndarray:
    """The four cubic-convolution coefficients at fractional offsets t: (n, 4)."""
    a = opm(a)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    one = opm(1)
    return np.stack([far(t + one), near(t), near(one - t), far(one - t + one)], axis=1)


def _nearest_2d(mode: str, n_in: int, n_out: int, scale: float | None) -> np.ndarray:
    """PyTorch's 2-d nearest kernels (nearest_idx, nearest_exact_idx): a float32 step, and for
    'nearest' a copy when the size is kept and i // 2 when it doubles (whatever the scale)."""
    i = np.arange(n_out)
    step = _scale(np.float32, n_in, n_out, False, scale)
    if mode == "nearest-exact":
        return np.minimum(_floorf((i + 0.5) * np.float64(step)), n_in - 1)[:, None]
    if n_out == n_in:
        return i[:, None]
    if n_out == 2 * n_in:
        return (i >> 1)[:, None]
    return np.minimum(_floorf(i.astype(np.float32) * step), n_in - 1)[:, None]


def _taps(mode: str, n_in: int, n_out: int, align_corners: bool, scale: float | None,
          opm: type, dims: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices (n_out, K), weights (n_out, K) or None) of one spatial dim, as PyTorch's CPU
    kernels compute them (HelperInterpNearest/NearestExact/Linear/Cubic)."""
    step = _scale(opm, n_in, n_out, align_corners, scale)
    if mode in ("nearest", "nearest-exact") and dims == 2:
        return _nearest_2d(mode, n_in, n_out, scale), None
    if mode == "nearest":
        src = _source(opm, _scale(opm, n_in, n_out, False, scale), n_out, True, False)
        return np.minimum(_floorf(src), n_in - 1)[:, None], None
    if mode == "nearest-exact":
        src = _source(opm, _scale(opm, n_in, n_out, False, scale), n_out, False, False)
        return np.minimum(_floorf(src.astype(np.float64) + 0.5), n_in - 1)[:, None], None
    if mode == "linear":
        if n_out == n_in:  # PyTorch copies (whatever the scale factor)
            return np.arange(n_in)[:, None], np.ones((n_in, 1), opm)
        src = _source(opm, step, n_out, align_corners, False)
        i0 = np.minimum(_floorf(src), n_in - 1)
        l1 = np.clip(src - i0.astype(opm), opm(0), opm(1)).astype(opm)
        i1 = i0 + (i0 < n_in - 1)
        return np.stack([i0, i1], 1), np.stack([opm(1) - l1, l1], 1)
    # bicubic
    src = _source(opm, step, n_out, align_corners, True)
    i0 = np.minimum(_floorf(src), n_in - 1)
    t = np.clip(src - i0.astype(opm), opm(0), opm(1)).astype(opm)
    idx = np.clip(i0[:, None] - 1 + np.arange(4)[None, :], 0, n_in - 1)
    return idx, _cubic_weights(t, _CUBIC_A, opm)


def _aa_filter(mode: str, x: np.ndarray, opm: type) -> np.ndarray:
    x = np.abs(x)
    if mode == "bilinear":
        return np.where(x < 1, opm(1) - x, opm(0)).astype(opm)
    a = opm(-0.5)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x < 1, near, np.where(x < 2, far, opm(0))).astype(opm)


def _aa_taps(mode: str, n_in: int, n_out: int, align_corners: bool, scale: float | None,
             opm: type) -> tuple[np.ndarray, np.ndarray]:
    """Antialiased taps (_compute_indices_min_size_weights_aa): a filter stretched by the
    downscaling factor, normalized to sum 1 per output; unused taps get weight 0."""
    step = _scale(opm, n_in, n_out, align_corners, scale)
    size = 2 if mode == "bilinear" else 4
    support = opm(size * 0.5 * step) if step >= 1 else opm(size * 0.5)
    k = math.ceil(support) * 2 + 1
    center = (step.astype(np.float64) * (np.arange(n_out) + 0.5)).astype(opm)
    invscale = opm(1.0 / float(step)) if step >= 1 else opm(1)
    lo = np.maximum(np.trunc((center - support).astype(np.float64) + 0.5).astype(np.int64), 0)
    hi = np.minimum(np.trunc((center + support).astype(np.float64) + 0.5).astype(np.int64),
                    n_in)
    count = np.clip(hi - lo, 0, k)
    j = np.arange(k)[None, :]
    offset = (j + lo[:, None]).astype(opm) - center[:, None]
    w = _aa_filter(mode, ((offset.astype(np.float64) + 0.5) * invscale).astype(opm), opm)
    w = np.where(j < count[:, None], w, opm(0)).astype(opm)
    total = np.cumsum(w, axis=1, dtype=opm)[:, -1:]  # in order, as the kernel accumulates
    w = np.where(total != 0, w / np.where(total != 0, total, opm(1)), w).astype(opm)
    return np.minimum(j + lo[:, None], n_in - 1), w


# --- interpolate ----------------------------------------------------------------------------------


def _output_size(x: Any, size: Any, scale_factor: Any, recompute: Any,
                 dims: int) -> tuple[list[int], list[float | None]]:
    """PyTorch's size/scale_factor rules: (output sizes, the scales the kernel is given)."""
    spatial = list(x.shape[2:])
    if size is not None and scale_factor is not None:
        raise _fail("interpolate: only one of size or scale_factor should be defined")
    if size is not None:
        if recompute:
            raise _fail("interpolate: recompute_scale_factor is not meaningful with an explicit "
                        "size; pass size or scale_factor with recompute_scale_factor, not both")
        sizes = list(size) if isinstance(size, (list, tuple)) else [size] * dims
        if len(sizes) != dims:
            raise _fail(f"interpolate: input {_t(x)} has {dims} spatial dims {spatial} but size "
                        f"is {size!r}; give one output size per spatial dim")
        if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
            raise errors.DTypeError(errors.at_user(
                f"interpolate: size must be an int or a tuple of ints, got {size!r}"))
        return [int(s) for s in sizes], [None] * dims
    if scale_factor is None:
        raise _fail("interpolate: either size or scale_factor should be defined")
    scales = list(scale_factor) if isinstance(scale_factor, (list, tuple)) else \
        [scale_factor] * dims
    if len(scales) != dims:
        raise _fail(f"interpolate: input {_t(x)} has {dims} spatial dims {spatial} but "
                    f"scale_factor is {scale_factor!r}; give one factor per spatial dim")
    if not all(isinstance(s, (int, float, np.number)) and not isinstance(s, bool)
               for s in scales):
        raise errors.DTypeError(errors.at_user(
            f"interpolate: scale_factor must be a number or a tuple of numbers, got "
            f"{scale_factor!r}"))
    # NOTE: the output size truncates in * scale (double); the kernel is then given the scale
    # itself (its source step is 1 / scale), unless recompute_scale_factor asks for out / in.
    out = [int(float(n) * float(s)) for n, s in zip(spatial, scales)]
    return out, [None] * dims if recompute else [float(s) for s in scales]


def _resize_dim(x: Any, dim: int, idx: np.ndarray, w: np.ndarray | None) -> Any:
    """sum_k index_select(x, dim, idx[:, k]) * w[:, k] (w broadcast along `dim`)."""
    if w is None and np.array_equal(idx[:, 0], np.arange(x.shape[dim])):
        return x
    if (w is not None and idx.shape[1] == 1 and np.all(w == 1)
            and np.array_equal(idx[:, 0], np.arange(x.shape[dim]))):
        return x
    wshape = [1] * x.ndim
    wshape[dim] = idx.shape[0]
    out = None
    for k in range(idx.shape[1]):
        term = index_select(x, dim, tensor(np.ascontiguousarray(idx[:, k]), device=x.device))
        if w is not None:
            wk = w[:, k].astype(x.dtype.np).reshape(wshape)
            term = term * tensor(wk, device=x.device)
        out = term if out is None else out + term
    return out


def interpolate(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Any:
    """Resize (N, C, *spatial) by size or scale_factor: nearest, nearest-exact, area, linear
    (3-d), bilinear/bicubic (4-d), trilinear (5-d); antialias for bilinear/bicubic."""
    _need_tensor("interpolate", input)
    if mode not in _MODES:
        raise _fail(f"interpolate: unknown mode {mode!r}; expected one of "
                    f"{' | '.join(_MODES)}")
    if mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise _fail(f"interpolate: align_corners can only be set with the interpolating "
                        f"modes linear | bilinear | bicubic | trilinear, not mode={mode!r}; "
                        "leave it None")
    elif align_corners is None:
        align_corners = False
    dims = input.ndim - 2
    if dims not in (1, 2, 3) or _MODES[mode] not in (None, dims):
        need = _MODES[mode]
        want = f"a {need + 2}-d input" if need else "a 3-d, 4-d or 5-d input"
        raise _fail(f"interpolate: mode={mode!r} needs {want} (N, C, *spatial), got "
                    f"{_t(input)}")
    if antialias and not (mode in ("bilinear", "bicubic") and input.ndim == 4):
        raise _fail(f"interpolate: antialias is restricted to bilinear and bicubic modes and a "
                    f"4-d input, got mode={mode!r} and {_t(input)}")
    if mode not in ("nearest", "nearest-exact") and not input.dtype.is_floating:
        raise errors.DTypeError(errors.at_user(
            f"interpolate: mode={mode!r} needs a floating-point input, got {_t(input)}; use "
            "x.float()"))
    # NOTE: 'area' always works from the output size (its scales are not used)
    out, scales = _output_size(input, size, scale_factor, recompute_scale_factor, dims)
    if min(out) <= 0 or min(input.shape[2:]) <= 0:
        raise _fail(f"interpolate: input and output sizes should be greater than 0, got input "
                    f"{_t(input)} and output size {out}")
    if mode == "area":
        from hybrid.nn import functional_pool as pool

        if dims == 1:
            return pool.adaptive_avg_pool1d(input, out[0])
        if dims == 2:
            return pool.adaptive_avg_pool2d(input, tuple(out))
        # 3-d: adaptive averages are separable; (H, W) first, then D with H * W kept
        n, c, d, h, w = input.shape
        y = pool.adaptive_avg_pool2d(sh.reshape(input, (n, c * d, h, w)), (out[1], out[2]))
        y = pool.adaptive_avg_pool2d(sh.reshape(y, (n, c, d, out[1] * out[2])),
                                     (out[0], out[1] * out[2]))
        return sh.reshape(y, (n, c, *out))
    opm = np.float64 if input.dtype.np == np.float64 else np.float32
    kind = {"bilinear": "linear", "trilinear": "linear", "bicubic": "bicubic"}.get(mode, mode)
    y = input
    for d in reversed(range(dims)):  # the last (contiguous) dim first, as PyTorch
        n_in = input.shape[2 + d]
        if antialias:
            if n_in == out[d]:  # PyTorch's separable aa kernel skips an unresized dim
                continue
            idx, w = _aa_taps(mode, n_in, out[d], align_corners, scales[d], opm)
        else:
            idx, w = _taps(kind, n_in, out[d], bool(align_corners), scales[d], opm, dims)
        y = _resize_dim(y, 2 + d, idx, w)
    return y


def upsample(input: Any, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Any:
    """Deprecated alias of interpolate."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` "
                  "instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Any, size: Any = None, scale_factor: Any = None) -> Any:
    """Deprecated: interpolate(..., mode='nearest')."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Any, size: Any = None, scale_factor: Any = None) -> Any:
    """Deprecated: interpolate(..., mode='bilinear', align_corners=True)."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use "
                  "`nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


# --- unfold / fold --------------------------------------------------------------------------------


def _patch_args(op: str, kernel_size: Any, dilation: Any, padding: Any,
                stride: Any) -> tuple[tuple, tuple, tuple, tuple]:
    k, d = _pair(op, "kernel_size", kernel_size), _pair(op, "dilation", dilation)
    p, s = _pair(op, "padding", padding), _pair(op, "stride", stride)
    if any(v < 1 for v in k + d + s) or any(v < 0 for v in p):
        raise _fail(f"{op}: kernel_size, dilation and stride must be positive and padding "
                    f"non-negative, got kernel_size={kernel_size!r}, dilation={dilation!r}, "
                    f"padding={padding!r}, stride={stride!r}")
    return k, d, p, s


def _blocks(op: str, spatial: tuple, k: tuple, d: tuple, p: tuple, s: tuple) -> tuple[int, int]:
    return (_out_size(op, spatial[0], k[0], s[0], p[0], d[0]),
            _out_size(op, spatial[1], k[1], s[1], p[1], d[1]))


def unfold(input: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
           stride: Any = 1) -> Any:
    """im2col: (N, C, H, W) -> (N, C * kh * kw, L), one column per sliding block."""
    _need_tensor("unfold", input, floating=True)
    if input.ndim not in (3, 4) or 0 in input.shape[-3:]:
        raise _fail(f"unfold: expected a 3-d (unbatched) or 4-d (batched) input with non-zero "
                    f"channel and spatial sizes, got {_t(input)}")
    k, d, p, s = _patch_args("unfold", kernel_size, dilation, padding, stride)
    x = sh.unsqueeze(input, 0) if input.ndim == 3 else input
    out = _blocks("unfold", tuple(x.shape[2:]), k, d, p, s)
    cols = _windows(x, k, s, (p[0], p[0], p[1], p[1]), d, out)  # (N, C, kh*kw, Ho, Wo)
    y = sh.reshape(cols, (x.shape[0], x.shape[1] * k[0] * k[1], out[0] * out[1]))
    return sh.squeeze(y, 0) if input.ndim == 3 else y


def fold(input: Any, output_size: Any, kernel_size: Any, dilation: Any = 1, padding: Any = 0,
         stride: Any = 1) -> Any:
    """col2im: (N, C * kh * kw, L) -> (N, C, H, W), summing where sliding blocks overlap."""
    _need_tensor("fold", input, floating=True)
    if input.ndim not in (2, 3) or 0 in input.shape[-2:]:
        raise _fail(f"fold: expected a 2-d (unbatched) or 3-d (batched) input (N, C * kh * kw, "
                    f"L) with non-zero sizes, got {_t(input)}")
    size = _pair("fold", "output_size", output_size)
    k, d, p, s = _patch_args("fold", kernel_size, dilation, padding, stride)
    x = sh.unsqueeze(input, 0) if input.ndim == 2 else input
    kk = k[0] * k[1]
    if x.shape[1] % kk:
        raise _fail(f"fold: input {_t(input)}: the channel dim ({x.shape[1]}) must be "
                    f"divisible by the product of kernel_size {k} ({kk})")
    out = _blocks("fold", size, k, d, p, s)
    if x.shape[2] != out[0] * out[1]:
        raise _fail(f"fold: input {_t(input)} has {x.shape[2]} blocks, but output_size={size}, "
                    f"kernel_size={k}, dilation={d}, padding={p}, stride={s} give "
                    f"{out[0]} * {out[1]} = {out[0] * out[1]} sliding blocks")
    n, c = x.shape[0], x.shape[1] // kk
    hp, wp = size[0] + 2 * p[0], size[1] + 2 * p[1]
    blocks = sh.unbind(sh.reshape(x, (n, c, kk, out[0], out[1])), 2)
    y = None
    for i in range(k[0]):
        for j in range(k[1]):
            top, left = i * d[0], j * d[1]
            bottom = hp - top - (out[0] - 1) * s[0] - 1
            right = wp - left - (out[1] - 1) * s[1] - 1
            pads = ((0, 0, 0), (0, 0, 0), (top, bottom, s[0] - 1), (left, right, s[1] - 1))
            term = apply(Op.PAD, blocks[i * k[1] + j], pads=pads, value=0.0)
            y = term if y is None else y + term
    y = sh.pad(y, (-p[1], -p[1], -p[0], -p[0]))  # crop the padding
    return sh.squeeze(y, 0) if input.ndim == 2 else y


# --- pixel shuffle --------------------------------------------------------------------------------


def _factor(op: str, name: str, r: Any) -> int:
    if not isinstance(r, (int, np.integer)) or isinstance(r, bool):
        raise errors.DTypeError(errors.at_user(f"{op}: {name} must be a positive int, got "
                                               f"{type(r).__name__} {r!r}"))
    if r < 1:
        raise _fail(f"{op}: {name} must be a positive int, got {r!r}")
    return int(r)


def _shuffle_input(op: str, input: Any, name: str, r: Any) -> tuple:
    """The checked factor and (batch dims, C, H, W) of a pixel (un)shuffle's input."""
    _need_tensor(op, input)
    r = _factor(op, name, r)
    if input.ndim < 3:
        raise _fail(f"{op}: expected an input with at least 3 dims (*, C, H, W), got "
                    f"{_t(input)}")
    *batch, c, h, w = input.shape
    return r, batch, c, h, w


def pixel_shuffle(input: Any, upscale_factor: int) -> Any:
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r)."""
    r, batch, c, h, w = _shuffle_input("pixel_shuffle", input, "upscale_factor", upscale_factor)
    if c % (r * r):
        raise _fail(f"pixel_shuffle: the channel dim of {_t(input)} ({c}) must be divisible by "
                    f"upscale_factor ** 2 = {r * r}")
    b = len(batch)
    y = sh.reshape(input, (*batch, c // (r * r), r, r, h, w))
    y = sh.permute(y, *range(b + 1), b + 3, b + 1, b + 4, b + 2)
    return sh.reshape(y, (*batch, c // (r * r), h * r, w * r))


def pixel_unshuffle(input: Any, downscale_factor: int) -> Any:
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W)."""
    r, batch, c, h, w = _shuffle_input("pixel_unshuffle", input, "downscale_factor",
                                       downscale_factor)
    if h % r or w % r:
        raise _fail(f"pixel_unshuffle: height ({h}) and width ({w}) of {_t(input)} must be "
                    f"divisible by downscale_factor {r}")
    b = len(batch)
    y = sh.reshape(input, (*batch, c, h // r, r, w // r, r))
    y = sh.permute(y, *range(b + 1), b + 2, b + 4, b + 1, b + 3)
    return sh.reshape(y, (*batch, c * r * r, h // r, w // r))
