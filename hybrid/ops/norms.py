"""Vector and matrix norms (torch.norm, linalg.vector_norm / matrix_norm / norm, dist), composed
of primitives; the gradient at a zero vector is 0, as PyTorch's."""

from __future__ import annotations

import math
from typing import Any

from hybrid import errors
from hybrid.dtypes import as_dtype
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd


def _float(op: str, x: Any, dtype: Any) -> Any:
    if dtype is not None:
        x = ew.cast(x, as_dtype(dtype))
    if not x.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"{op}: expects a floating-point tensor, got {x.dtype.name}; "
                           "use x.float() or dtype=")
        )
    return x


def _root(s: Any, p: float) -> Any:
    """s ** (1/p) with gradient 0 where s == 0 (instead of inf * 0 = NaN)."""
    nz = s != 0
    safe = ew.where(nz, s, 1.0)
    r = ew.sqrt(safe) if p == 2 else ew.pow(safe, 1.0 / p)
    return ew.where(nz, r, 0.0)


def vector_norm(x: Any, ord: Any = 2, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Any:
    """The p-norm of `x` over `dim` (all elements when None): ord 2, 1, inf, -inf, 0 or any p."""
    x = _float("vector_norm", x, dtype)
    if isinstance(ord, str):
        raise errors.ShapeError(
            errors.at_user(f"vector_norm: ord must be a number, got {ord!r} (use matrix_norm)")
        )
    axes = rd.normalize_dims("vector_norm", dim, x.ndim)
    if x.numel() == 0 and ord in (math.inf, -math.inf) and any(x.shape[a] == 0 for a in axes):
        raise errors.ShapeError(
            errors.at_user(f"vector_norm: ord={ord} of an empty tensor {list(x.shape)} is "
                           "undefined")
        )
    if ord == math.inf:
        return rd.amax(ew.abs(x), axes, keepdim)
    if ord == -math.inf:
        return rd.amin(ew.abs(x), axes, keepdim)
    if ord == 0:
        return rd.sum(ew.cast(x != 0, x.dtype), axes, keepdim)
    if ord == 1:
        return rd.sum(ew.abs(x), axes, keepdim)
    if ord == 2:
        return _root(rd.sum(x * x, axes, keepdim), 2)
    a = ew.abs(x)
    if ord < 0:  # sum(|x|^p)^(1/p) with p < 0: a zero entry makes the norm 0
        return ew.pow(rd.sum(ew.pow(a, float(ord)), axes, keepdim), 1.0 / ord)
    return _root(rd.sum(ew.pow(a, float(ord)), axes, keepdim), float(ord))


def _matrix_dims(op: str, x: Any, dim: Any) -> tuple[int, int]:
    if x.ndim < 2:
        raise errors.ShapeError(
            errors.at_user(f"{op}: expects a matrix (at least 2 dims), got {list(x.shape)}")
        )
    if len(dim) != 2:
        raise errors.ShapeError(errors.at_user(f"{op}: dim must be two dims, got {dim}"))
    r, c = (rd.normalize_dim(op, d, x.ndim) for d in dim)
    if r == c:
        raise errors.ShapeError(errors.at_user(f"{op}: dims {dim} must be different"))
    return r, c


def matrix_norm(x: Any, ord: Any = "fro", dim: Any = (-2, -1),  # noqa: A002
                keepdim: bool = False, *, dtype: Any = None) -> Any:
    """Matrix norms over `dim`: 'fro', 'nuc', 1, -1, inf, -inf, 2, -2 (nuc/2/-2 via the SVD,
    not differentiable here)."""
    x = _float("matrix_norm", x, dtype)
    r, c = _matrix_dims("matrix_norm", x, dim)
    if ord == "fro":
        return vector_norm(x, 2, (r, c), keepdim)
    if ord in ("nuc", 2, -2):
        from hybrid.linalg import svdvals
        from hybrid.ops import shape as sh

        rest = [d for d in range(x.ndim) if d not in (r, c)]
        s = svdvals(sh.permute(x, rest + [r, c]))
        out = rd.sum(s, -1) if ord == "nuc" else (rd.amax(s, -1) if ord == 2 else rd.amin(s, -1))
        if keepdim:
            for d in sorted((r, c)):
                out = out.unsqueeze(d)
        return out
    if ord in (1, -1):  # max / min over columns of the column sums of |x|
        sums = rd.sum(ew.abs(x), r, keepdim=True)
        red = rd.amax if ord == 1 else rd.amin
        out = red(sums, c, keepdim=True)
    elif ord in (math.inf, -math.inf):
        sums = rd.sum(ew.abs(x), c, keepdim=True)
        red = rd.amax if ord == math.inf else rd.amin
        out = red(sums, r, keepdim=True)
    else:
        raise errors.ShapeError(
            errors.at_user(f"matrix_norm: ord must be 'fro', 'nuc', 1, -1, 2, -2, inf or -inf, "
                           f"got {ord!r}")
        )
    if keepdim:
        return out
    return out.reshape(tuple(n for i, n in enumerate(out.shape) if i not in (r, c)))


def linalg_norm(x: Any, ord: Any = None, dim: Any = None, keepdim: bool = False, *,  # noqa: A002
                dtype: Any = None) -> Any:
    """torch.linalg.norm: a vector norm for one dim (or 1-d input), a matrix norm for two."""
    if isinstance(dim, int):
        dim = (dim,)
    if ord is None:
        if dim is not None and len(dim) == 2:
            return matrix_norm(x, "fro", dim, keepdim, dtype=dtype)
        return vector_norm(x, 2, dim, keepdim, dtype=dtype)
    if dim is None:
        if x.ndim == 1:
            return vector_norm(x, ord, None, keepdim, dtype=dtype)
        if x.ndim == 2:
            return matrix_norm(x, ord, (0, 1), keepdim, dtype=dtype)
        raise errors.ShapeError(
            errors.at_user(f"linalg.norm: with ord={ord!r} the input must be 1-d or 2-d, got "
                           f"{list(x.shape)}; pass dim=")
        )
    if len(dim) == 1:
        return vector_norm(x, ord, dim, keepdim, dtype=dtype)
    return matrix_norm(x, ord, dim, keepdim, dtype=dtype)


def norm(x: Any, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Any:
    """torch.norm / Tensor.norm: 'fro' (2-norm over dim, or all), 'nuc', or a number p."""
    if p == "fro":
        if dim is not None and not isinstance(dim, int) and len(dim) == 2:
            return matrix_norm(x, "fro", dim, keepdim, dtype=dtype)
        return vector_norm(x, 2, dim, keepdim, dtype=dtype)
    if p == "nuc":
        return matrix_norm(x, "nuc", (-2, -1) if dim is None else dim, keepdim, dtype=dtype)
    if isinstance(p, str):
        raise errors.ShapeError(
            errors.at_user(f"norm: p must be 'fro', 'nuc' or a number, got {p!r}"))
    return vector_norm(x, p, dim, keepdim, dtype=dtype)


def dist(a: Any, b: Any, p: float = 2) -> Any:
    """The p-norm of a - b (broadcast)."""
    return vector_norm(a - b, p)
