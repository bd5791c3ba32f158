"""hybrid.linalg (torch.linalg): norms composed of primitives, and decompositions / solvers run
eagerly through numpy's (or CuPy's) LAPACK.

inv, det, slogdet and solve are differentiable: custom autograd Functions whose backward is
written with differentiable ops (inv, solve, matmul), so second derivatives work too. svd, qr,
eigh, cholesky and svdvals are not differentiable yet: an input that requires grad gives an
AutogradError. Inside @hybrid.compile every LAPACK op raises a TraceError (run it eagerly or use fallback='eager')."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from hybrid import errors
from hybrid.autograd_function import Function
from hybrid.ops import elementwise as ew
from hybrid.ops import linalg as la
from hybrid.ops import shape as sh
from hybrid.ops.core import STATE, wrap
from hybrid.ops.matrix import cross as _cross
from hybrid.ops.norms import linalg_norm as norm  # noqa: F401  (public)
from hybrid.ops.norms import matrix_norm, vector_norm  # noqa: F401  (public)
from hybrid.ops.sorting import _xp, eager_only

svd_result = namedtuple("svd", ["U", "S", "Vh"])
qr_result = namedtuple("qr", ["Q", "R"])
eigh_result = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
slogdet_result = namedtuple("slogdet", ["sign", "logabsdet"])

matmul = la.matmul


def _square(op: str, a: Any) -> None:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise errors.ShapeError(
            errors.at_user(f"linalg.{op}: expects square matrices (..., n, n), got {list(a.shape)}")
        )
    if not a.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"linalg.{op}: expects a floating-point tensor, got {a.dtype.name}")
        )


def _lapack(op: str, fn, *arrays: Any) -> Any:
    """Run numpy/CuPy LAPACK routine `fn`; a singular or non-convergent input is a clear error."""
    xp = _xp(arrays[0])
    try:
        return fn(xp.linalg, *arrays)
    except xp.linalg.LinAlgError as e:
        raise errors.error(
            ValueError, f"linalg.{op}: {e} (the input is singular or not positive-definite)"
        ) from None


def _grad_on(*xs: Any) -> bool:
    return STATE.grad and any(x._rg for x in xs)


def _no_grad_op(op: str, *xs: Any) -> None:
    if _grad_on(*xs):
        raise errors.AutogradError(
            errors.at_user(f"linalg.{op} is not differentiable in hybrid yet; call it on "
                           ".detach() of the input or under hybrid.no_grad()")
        )


def _t(x: Any) -> Any:
    return sh.transpose(x, -1, -2)


class _Inv(Function):
    @staticmethod
    def forward(ctx: Any, A: Any) -> Any:
        (a,) = eager_only("linalg.inv", A)
        C = wrap(_lapack("inv", lambda L, x: L.inv(x), a))
        ctx.save_for_backward(C)
        return C

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        (C,) = ctx.saved_tensors
        Ct = _t(C)
        return -la.matmul(la.matmul(Ct, g), Ct)


def inv(A: Any) -> Any:
    """The inverse of square matrices (batched); differentiable (d inv = -inv dA inv)."""
    _square("inv", A)
    return _Inv.apply(A)


def _adjugate(a: Any) -> Any:
    """adj(a) through the SVD, so singular matrices have a gradient of det too."""
    xp = _xp(a)
    u, s, vh = xp.linalg.svd(a)
    n = s.shape[-1]
    others = xp.stack([xp.prod(xp.delete(s, i, axis=-1), axis=-1) for i in range(n)], -1)
    sign = xp.linalg.det(u) * xp.linalg.det(vh)
    adj = xp.swapaxes(vh, -1, -2) @ (others[..., :, None] * xp.swapaxes(u, -1, -2))
    return adj * sign[..., None, None]


class _Det(Function):
    @staticmethod
    def forward(ctx: Any, A: Any) -> Any:
        (a,) = eager_only("linalg.det", A)
        d = wrap(_lapack("det", lambda L, x: L.det(x), a).astype(a.dtype))
        ctx.save_for_backward(A, d)
        return d

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        A, d = ctx.saved_tensors
        gd = sh.unsqueeze(sh.unsqueeze(g * d, -1), -1)
        if bool((d._value != 0).all()):
            return gd * _t(inv(A))  # d det / dA = det A^-T (differentiable again)
        # NOTE: a singular matrix: the cofactor matrix through the SVD (first order only)
        cof = wrap(_xp(A._value).swapaxes(_adjugate(A._value), -1, -2).astype(A._value.dtype))
        return sh.unsqueeze(sh.unsqueeze(g, -1), -1) * cof


def det(A: Any) -> Any:
    """The determinant (batched); differentiable (d det = det A^-T dA; singular A too)."""
    _square("det", A)
    return _Det.apply(A)


class _LogAbsDet(Function):
    @staticmethod
    def forward(ctx: Any, A: Any) -> Any:
        (a,) = eager_only("linalg.slogdet", A)
        sign, logabs = _lapack("slogdet", lambda L, x: L.slogdet(x), a)
        ctx.save_for_backward(A)
        sign_t = wrap(sign.astype(a.dtype))
        ctx.mark_non_differentiable(sign_t)
        return wrap(logabs.astype(a.dtype)), sign_t

    @staticmethod
    def backward(ctx: Any, g: Any, _g_sign: Any) -> Any:
        (A,) = ctx.saved_tensors
        return sh.unsqueeze(sh.unsqueeze(g, -1), -1) * _t(inv(A))


def slogdet(A: Any) -> Any:
    """(sign, log|det|) of square matrices; log|det| is differentiable (d = A^-T dA)."""
    _square("slogdet", A)
    logabs, sign = _LogAbsDet.apply(A)
    return slogdet_result(sign, logabs)


def logdet(A: Any) -> Any:
    """log(det(A)): NaN for a negative determinant, -inf for a singular matrix."""
    sign, logabs = slogdet(A)
    return ew.where(sign < 0, float("nan"), ew.where(sign == 0, -float("inf"), logabs))


class _Solve(Function):
    @staticmethod
    def forward(ctx: Any, A: Any, B: Any) -> Any:
        a, b = eager_only("linalg.solve", A, B)
        xp = _xp(a)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a_b = xp.broadcast_to(a, batch + a.shape[-2:])
        b_b = xp.broadcast_to(b, batch + b.shape[-2:])
        X = wrap(_lapack("solve", lambda L, m, r: L.solve(m, r), a_b, b_b))
        ctx.save_for_backward(A, X)
        return X

    @staticmethod
    def backward(ctx: Any, g: Any) -> Any:
        A, X = ctx.saved_tensors
        gB = solve(_t(A), g)  # A^-T g
        return -la.matmul(gB, _t(X)), gB


def solve(A: Any, B: Any, *, left: bool = True) -> Any:
    """X with A X = B (or X A = B when left=False); B may be a vector (..., n). Differentiable
    in A and B (dX = A^-1 (dB - dA X))."""
    _square("solve", A)
    if not left:
        return _t(solve(_t(A), _t(B)))
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))
    B2 = sh.unsqueeze(B, -1) if vector else B
    if B2.ndim < 2 or B2.shape[-2] != A.shape[-1]:
        raise errors.ShapeError(
            errors.at_user(f"linalg.solve: A {list(A.shape)} and B {list(B.shape)} do not match "
                           f"(B needs {A.shape[-1]} rows)")
        )
    if B2.dtype is not A.dtype:
        raise errors.DTypeError(
            errors.at_user(f"linalg.solve: A is {A.dtype.name}, B is {B2.dtype.name}; cast one")
        )
    X = _Solve.apply(A, B2)
    return sh.squeeze(X, -1) if vector else X


def _plain(op: str, fn, A: Any, *more: Any) -> Any:
    _no_grad_op(op, A)
    if not A.dtype.is_floating:
        raise errors.DTypeError(
            errors.at_user(f"linalg.{op}: expects a floating-point tensor, got {A.dtype.name}")
        )
    (a,) = eager_only(f"linalg.{op}", A)
    out = _lapack(op, fn, a, *more)
    return tuple(wrap(o) for o in out) if isinstance(out, tuple) else wrap(out)


def svd(A: Any, full_matrices: bool = True) -> Any:
    """(U, S, Vh) with A = U diag(S) Vh (not differentiable yet)."""
    return svd_result(*_plain("svd", lambda L, x: tuple(L.svd(x, full_matrices=full_matrices)), A))


def svdvals(A: Any) -> Any:
    """The singular values, descending (not differentiable yet)."""
    return _plain("svdvals", lambda L, x: L.svd(x, compute_uv=False), A)


def qr(A: Any, mode: str = "reduced") -> Any:
    """(Q, R) with A = Q R; mode 'reduced' or 'complete' (not differentiable yet)."""
    if mode not in ("reduced", "complete"):
        raise errors.ShapeError(errors.at_user(f"linalg.qr: mode must be 'reduced' or "
                                               f"'complete', got {mode!r}"))
    return qr_result(*_plain("qr", lambda L, x: tuple(L.qr(x, mode=mode)), A))


def eigh(A: Any, UPLO: str = "L") -> Any:  # noqa: N803  (PyTorch's name)
    """Eigenvalues (ascending) and eigenvectors of symmetric matrices (not differentiable yet)."""
    _square("eigh", A)
    return eigh_result(*_plain("eigh", lambda L, x: tuple(L.eigh(x, UPLO=UPLO)), A))


def eigvalsh(A: Any, UPLO: str = "L") -> Any:  # noqa: N803
    """Eigenvalues (ascending) of symmetric matrices (not differentiable yet)."""
    _square("eigvalsh", A)
    return _plain("eigvalsh", lambda L, x: L.eigvalsh(x, UPLO=UPLO), A)


def cholesky(A: Any, *, upper: bool = False) -> Any:
    """The Cholesky factor L (A = L L^T), or U = L^T when upper (not differentiable yet)."""
    _square("cholesky", A)
    Lt = _plain("cholesky", lambda L, x: L.cholesky(x), A)
    return _t(Lt).contiguous() if upper else Lt


def cross(a: Any, b: Any, *, dim: int = -1) -> Any:
    """The 3-vector cross product along `dim` (default the last, as torch.linalg.cross)."""
    return _cross(a, b, dim)


def pinv(A: Any) -> Any:
    """The Moore-Penrose pseudo-inverse (not differentiable yet)."""
    return _plain("pinv", lambda L, x: L.pinv(x), A)
