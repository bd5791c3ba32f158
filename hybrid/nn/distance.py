"""F.normalize, F.cosine_similarity and F.pairwise_distance, with their modules, composed of
hybrid ops (they differentiate and compile)."""

from __future__ import annotations

from typing import Any

from hybrid import errors
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.norms import vector_norm


def normalize(input: Any, p: float = 2.0, dim: int = 1, eps: float = 1e-12,
              out: Any = None) -> Any:
    """input / max(||input||_p over dim, eps)."""
    r = input / ew.maximum(vector_norm(input, p, dim, keepdim=True), eps)
    if out is not None:
        from hybrid.ops.out import write_out

        return write_out("normalize", out, r, [input])
    return r


def cosine_similarity(x1: Any, x2: Any, dim: int = 1, eps: float = 1e-8) -> Any:
    """sum(x1 x2) / (max(||x1||, eps) max(||x2||, eps)) over `dim`, broadcasting x1 and x2."""
    try:
        a, b = sh.broadcast_tensors(x1, x2)
    except errors.HybridError:
        raise errors.ShapeError(
            errors.at_user(f"cosine_similarity: shapes {list(x1.shape)} and {list(x2.shape)} do "
                           "not broadcast")
        ) from None
    d = rd.normalize_dim("cosine_similarity", dim, a.ndim)
    # NOTE: as PyTorch, each input is divided by its clamped norm before the dot product (more
    # precise than dividing the dot product by the product of the norms).
    na = ew.maximum(vector_norm(a, 2, d, keepdim=True), eps)
    nb = ew.maximum(vector_norm(b, 2, d, keepdim=True), eps)
    return rd.sum((a / na) * (b / nb), d)


def pairwise_distance(x1: Any, x2: Any, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Any:
    """||x1 - x2 + eps||_p over the last dim."""
    d = x1 - x2 + eps
    if d.ndim == 0:
        return ew.abs(d)
    return vector_norm(d, p, -1, keepdim)
