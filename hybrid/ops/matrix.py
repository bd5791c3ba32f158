"""Matrix ops composed of primitives: tril/triu, cross, einsum, addmm/addmv/baddbmm."""

from __future__ import annotations

import math
from typing import Any

from compiler.ir.types import DType
from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import linalg as la
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.creation import iota


def _tri_mask(op: str, x: Any, diagonal: int, lower: bool) -> Any:
    if x.ndim < 2:
        raise errors.ShapeError(
            errors.at_user(f"{op}: expects a tensor with at least 2 dims, got {list(x.shape)}")
        )
    shape = tuple(x.shape[-2:])
    rows = iota(shape, 0, DType.int64, like=x)
    cols = iota(shape, 1, DType.int64, like=x)
    return (cols - rows <= diagonal) if lower else (cols - rows >= diagonal)


def tril(x: Any, diagonal: int = 0) -> Any:
    """The lower triangle of the last two dims (entries with col - row <= diagonal), 0 above."""
    return ew.where(_tri_mask("tril", x, diagonal, True), x, ew.scalar(0, x.dtype, x))


def triu(x: Any, diagonal: int = 0) -> Any:
    """The upper triangle of the last two dims (entries with col - row >= diagonal), 0 below."""
    return ew.where(_tri_mask("triu", x, diagonal, False), x, ew.scalar(0, x.dtype, x))


def cross(a: Any, b: Any, dim: int | None = None) -> Any:
    """The 3-vector cross product along `dim` (default: the first dim of size 3, as torch.cross)."""
    a, b = sh.broadcast_tensors(a, b)
    if dim is None:
        dim = next((i for i, s in enumerate(a.shape) if s == 3), None)
        if dim is None:
            raise errors.ShapeError(
                errors.at_user(f"cross: no dim of size 3 in {list(a.shape)}; pass dim=")
            )
    d = rd.normalize_dim("cross", dim, a.ndim)
    if a.shape[d] != 3:
        raise errors.ShapeError(
            errors.at_user(f"cross: dim {dim} must have size 3, got {list(a.shape)}")
        )
    a1, a2, a3 = (sh.slice_dim(a, d, i, i + 1) for i in range(3))
    b1, b2, b3 = (sh.slice_dim(b, d, i, i + 1) for i in range(3))
    return sh.cat([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1], d)


def _scaled(x: Any, c: Any) -> Any:
    return x if c == 1 else x * c


def addmm(input: Any, mat1: Any, mat2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    """beta * input + alpha * (mat1 @ mat2); input is ignored when beta == 0 (as PyTorch)."""
    prod = _scaled(la.mm(mat1, mat2), alpha)
    return prod if beta == 0 else _scaled(input, beta) + prod


def addmv(input: Any, mat: Any, vec: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    """beta * input + alpha * (mat @ vec)."""
    if mat.ndim != 2 or vec.ndim != 1:
        raise errors.ShapeError(
            errors.at_user(f"addmv: expects a matrix and a vector, got {list(mat.shape)} and "
                           f"{list(vec.shape)}")
        )
    prod = _scaled(la.matmul(mat, vec), alpha)
    return prod if beta == 0 else _scaled(input, beta) + prod


def baddbmm(input: Any, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    """beta * input + alpha * bmm(batch1, batch2); input is ignored when beta == 0."""
    prod = _scaled(la.bmm(batch1, batch2), alpha)
    return prod if beta == 0 else _scaled(input, beta) + prod


def addbmm(input: Any, batch1: Any, batch2: Any, *, beta: Any = 1, alpha: Any = 1) -> Any:
    """beta * input + alpha * sum_b batch1[b] @ batch2[b]."""
    prod = _scaled(rd.sum(la.bmm(batch1, batch2), 0), alpha)
    return prod if beta == 0 else _scaled(input, beta) + prod


# --- einsum ---------------------------------------------------------------------------------------


def _parse(equation: str, operands: tuple) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise errors.ShapeError(
            errors.at_user(f"einsum: '{equation}' names {len(terms)} operands, got {len(operands)}")
        )
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    used = set(eq)
    free = [c for c in letters if c not in used]
    nell = 0
    for t, x in zip(terms, operands):
        if "..." in t:
            nell = max(nell, x.ndim - (len(t) - 3))
    ell = "".join(free[:nell])
    out_terms = []
    for t, x in zip(terms, operands):
        if "..." in t:
            k = x.ndim - (len(t) - 3)
            t = t.replace("...", ell[nell - k:] if k else "")
        if len(t) != x.ndim or not all(c.isalpha() for c in t):
            raise errors.ShapeError(
                errors.at_user(f"einsum: subscripts '{t}' do not match an operand of shape "
                               f"{list(x.shape)} in '{equation}'")
            )
        out_terms.append(t)
    if arrow:
        rhs = rhs.replace("...", ell)
    else:
        counts = {c: sum(t.count(c) for t in out_terms) for c in set("".join(out_terms))}
        rhs = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    for c in rhs:
        if not any(c in t for t in out_terms) or rhs.count(c) > 1:
            raise errors.ShapeError(errors.at_user(f"einsum: bad output subscript '{c}' in "
                                                   f"'{equation}'"))
    return out_terms, rhs


def _diagonal(x: Any, t: str) -> tuple[Any, str]:
    """A repeated subscript within one operand (ii, bii) takes the diagonal."""
    while len(set(t)) < len(t):
        c = next(ch for ch in t if t.count(ch) > 1)
        i, j = t.index(c), t.index(c, t.index(c) + 1)
        n = x.shape[i]
        eye = iota((n, n), 0, DType.int64, like=x) == iota((n, n), 1, DType.int64, like=x)
        shape = [1] * x.ndim
        shape[i], shape[j] = n, n
        x = rd.sum(ew.where(sh.reshape(eye, shape), x, ew.scalar(0, x.dtype, x)), j,
                   dtype=x.dtype)
        t = t[:j] + t[j + 1:]
    return x, t


def _sum_out(x: Any, t: str, keep: set) -> tuple[Any, str]:
    axes = [i for i, c in enumerate(t) if c not in keep]
    if axes:
        x = rd.sum(x, axes, dtype=x.dtype)
        t = "".join(c for c in t if c in keep)
    return x, t


def _pair(a: Any, ta: str, b: Any, tb: str, keep: set) -> tuple[Any, str]:
    """Contract two operands as one batched matmul: (batch, left, k) @ (batch, k, right)."""
    sizes = dict(zip(ta, a.shape)) | dict(zip(tb, b.shape))
    for c in set(ta) & set(tb):
        sa, sb = a.shape[ta.index(c)], b.shape[tb.index(c)]
        if sa != sb and 1 not in (sa, sb):
            raise errors.ShapeError(
                errors.at_user(f"einsum: subscript '{c}' has sizes {sa} and {sb}")
            )
        sizes[c] = max(sa, sb)
    batch = [c for c in ta if c in tb and c in keep]
    contr = [c for c in ta if c in tb and c not in keep]
    left = [c for c in ta if c not in tb]
    right = [c for c in tb if c not in ta]
    a = sh.expand(sh.permute(a, [ta.index(c) for c in batch + left + contr]),
                  [sizes[c] for c in batch + left + contr])
    b = sh.expand(sh.permute(b, [tb.index(c) for c in batch + contr + right]),
                  [sizes[c] for c in batch + contr + right])
    nb, nl, nk, nr = (math.prod(sizes[c] for c in g) for g in (batch, left, contr, right))
    a3 = sh.reshape(a, (nb, nl, nk))
    b3 = sh.reshape(b, (nb, nk, nr))
    if a3.dtype.is_floating and a3.dtype is b3.dtype:
        out = la.matmul(a3, b3)
    else:  # integer operands: a broadcast product summed over k (in the operands' dtype)
        prod = sh.unsqueeze(a3, 3) * sh.unsqueeze(b3, 1)
        out = rd.sum(prod, 2, dtype=prod.dtype)
    t = "".join(batch + left + right)
    return sh.reshape(out, [sizes[c] for c in t]), t


def einsum(equation: str, *operands: Any) -> Any:
    """Einstein summation (torch.einsum), contracted left to right with batched matmuls;
    supports '...', implicit output, repeated subscripts within an operand (diagonals)."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise errors.ShapeError(errors.at_user("einsum: needs at least one operand"))
    terms, rhs = _parse(equation, operands)
    xs = []
    for x, t in zip(operands, terms):
        x, t = _diagonal(x, t)
        xs.append((x, t))
    acc, ta = xs[0]
    for k in range(1, len(xs) + 1):
        later = set(rhs).union(*(t for _, t in xs[k:]))
        acc, ta = _sum_out(acc, ta, later | (set(xs[k][1]) if k < len(xs) else set()))
        if k == len(xs):
            break
        b, tb = xs[k]
        b, tb = _sum_out(b, tb, later | set(ta))
        acc, ta = _pair(acc, ta, b, tb, set(rhs).union(*(t for _, t in xs[k + 1:])))
    if ta != rhs:
        acc = sh.permute(acc, [ta.index(c) for c in rhs])
    return acc * 1 if acc is operands[0] else acc
