"""Attention functions of hybrid.nn.functional (PyTorch's names, signatures and semantics),
written as compositions of hybrid ops (matmul, softmax, where, dropout) so they run eagerly,
differentiate and compile through the existing lowering.

`scaled_dot_product_attention` is PyTorch's math path: softmax(q @ k^T * scale + mask) @ v, a
bool mask meaning "attend" and a float mask added to the scores; a row that attends to nothing
gives zeros (torch 2.13's safe softmax), not NaN. `multi_head_attention_forward` is
torch.nn.functional's function of that name, which nn.MultiheadAttention calls."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from compiler.ir.types import DType
from hybrid import errors
from hybrid.nn.functional import dropout, linear, softmax
from hybrid.ops import elementwise as ew
from hybrid.ops import reduce as rd
from hybrid.ops import shape as sh
from hybrid.ops.creation import iota, zeros
from hybrid.ops.linalg import matmul

__all__ = ["multi_head_attention_forward", "scaled_dot_product_attention"]


def _t(x: Any) -> str:
    return f"{x.dtype.short}[{','.join(map(str, x.shape))}]"


def _fail(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(message))


def _dtype_fail(message: str) -> errors.HybridError:
    return errors.DTypeError(errors.at_user(message))


def _check_sdpa(query: Any, key: Any, value: Any, attn_mask: Any, dropout_p: float,
                enable_gqa: bool) -> None:
    op = "scaled_dot_product_attention"
    for name, x in (("query", query), ("key", key), ("value", value)):
        if not hasattr(x, "dtype") or x.ndim < 2:
            got = _t(x) if hasattr(x, "dtype") else type(x).__name__
            raise _fail(f"{op}: {name} must be a tensor of at least 2 dims (..., L, E), got {got}")
        if not x.dtype.is_floating:
            raise _dtype_fail(f"{op}: {name} must be floating point, got {_t(x)}; use .float()")
    if not query.dtype is key.dtype is value.dtype:
        raise _dtype_fail(f"{op}: query {_t(query)}, key {_t(key)} and value {_t(value)} must "
                          "have the same dtype; cast them with .to()")
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise _fail(f"{op}: query {_t(query)}, key {_t(key)} and value {_t(value)} do not fit: "
                    "need query (..., L, E), key (..., S, E), value (..., S, Ev)")
    if not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p <= 1.0:
        raise _fail(f"{op}: dropout_p must be in [0, 1], got {dropout_p!r}")
    if attn_mask is not None and not (attn_mask.dtype.is_bool or attn_mask.dtype.is_floating):
        raise _dtype_fail(f"{op}: attn_mask must be bool or floating point, got {_t(attn_mask)}")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hk != hv or hq % hk:
            raise _fail(f"{op}: enable_gqa needs key and value with the same number of heads "
                        f"dividing query's; got query {_t(query)}, key {_t(key)}, "
                        f"value {_t(value)}")


def _repeat_heads(x: Any, times: int) -> Any:
    """(..., H, S, E) -> (..., H * times, S, E), each head repeated `times` times in a row."""
    shape = tuple(x.shape)
    y = sh.unsqueeze(x, -3)
    y = sh.expand(y, shape[:-2] + (times,) + shape[-2:])
    return sh.reshape(y, shape[:-3] + (shape[-3] * times,) + shape[-2:])


def _safe_softmax(scores: Any) -> Any:
    """softmax over the last dim, where a row of only -inf gives zeros (and zero gradients)
    instead of NaN, as PyTorch's sdpa does."""
    m = rd.amax(scores, -1, keepdim=True).detach()
    # NOTE: a fully masked row has max -inf; shifting it by 0 keeps exp(-inf) = 0 finite
    m = ew.where(ew.isinf(m), ew.scalar(0.0, m.dtype, m), m)
    e = ew.exp(scores - m)
    total = rd.sum(e, -1, keepdim=True)
    total = ew.where(total == 0.0, ew.scalar(1.0, total.dtype, total), total)
    return e * ew.reciprocal(total)


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False) -> Any:
    """softmax(query @ key^T * scale + mask) @ value over (..., L, E), (..., S, E), (..., S, Ev).

    A bool attn_mask is True where a query may attend, a float one is added to the scores;
    is_causal masks keys after the query (top-left aligned) and excludes attn_mask. Dropout
    (dropout_p > 0) applies to the attention weights whatever the mode."""
    _check_sdpa(query, key, value, attn_mask, dropout_p, enable_gqa)
    op = "scaled_dot_product_attention"
    if is_causal and attn_mask is not None:
        # NOTE: torch 2.13's float32 CPU kernel silently ANDs the two; its math path (float64)
        # and its documentation reject the pair: we reject it for every dtype
        raise _fail(f"{op}: attn_mask {_t(attn_mask)} and is_causal=True cannot both be given; "
                    "fold the causal mask into attn_mask instead")
    n_q, n_k = query.shape[-2], key.shape[-2]
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        times = query.shape[-3] // key.shape[-3]
        key, value = _repeat_heads(key, times), _repeat_heads(value, times)
    s = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    try:
        batch = np.broadcast_shapes(tuple(query.shape[:-2]), tuple(key.shape[:-2]),
                                    tuple(value.shape[:-2]))
    except ValueError:
        raise _fail(f"{op}: the batch dims of query {_t(query)}, key {_t(key)} and value "
                    f"{_t(value)} do not broadcast") from None
    scores = matmul(query, sh.transpose(key, -2, -1)) * s  # (..., L, S)
    if attn_mask is not None:
        want = tuple(batch) + (n_q, n_k)
        try:
            fits = np.broadcast_shapes(tuple(attn_mask.shape), want) == want
        except ValueError:
            fits = False
        if not fits:
            raise _fail(f"{op}: attn_mask {_t(attn_mask)} does not broadcast to the attention "
                        f"scores [{','.join(map(str, want))}] (..., L, S)")
        if attn_mask.dtype.is_bool:
            scores = ew.where(attn_mask, scores, ew.scalar(-math.inf, scores.dtype, scores))
        else:
            scores = scores + ew.cast(attn_mask, scores.dtype)
    elif is_causal:
        rows = iota((n_q, n_k), 0, DType.int64, like=query)
        cols = iota((n_q, n_k), 1, DType.int64, like=query)
        scores = ew.where(cols <= rows, scores, ew.scalar(-math.inf, scores.dtype, scores))
    weights = _safe_softmax(scores)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True)
    return matmul(weights, value)


# --- multi-head attention ---------------------------------------------------------------------


def _float_mask(op: str, name: str, mask: Any, dtype: DType) -> Any:
    """PyTorch's _canonical_mask: a bool mask (True = masked out) becomes 0 / -inf floats."""
    if mask is None:
        return None
    if mask.dtype.is_bool:
        return ew.where(mask, ew.scalar(-math.inf, dtype, mask), ew.scalar(0.0, dtype, mask))
    if not mask.dtype.is_floating:
        raise _dtype_fail(f"{op}: {name} must be bool or floating point, got {_t(mask)}")
    return mask


def _check_mha(op: str, query: Any, key: Any, value: Any, key_padding_mask: Any,
               attn_mask: Any, num_heads: int, batched: bool) -> None:
    dims = 3 if batched else 2
    if key.ndim != dims or value.ndim != dims:
        raise _fail(f"{op}: for a {dims}-d query {_t(query)}, key and value must be {dims}-d, "
                    f"got key {_t(key)} and value {_t(value)}")
    if batched and not query.shape[1] == key.shape[1] == value.shape[1]:
        raise _fail(f"{op}: query {_t(query)}, key {_t(key)} and value {_t(value)} must have "
                    "the same batch size (dim 1 of (L, N, E); dim 0 with batch_first=True)")
    if key_padding_mask is not None and key_padding_mask.ndim != dims - 1:
        raise _fail(f"{op}: key_padding_mask must be {dims - 1}-d (batch, S) for a {dims}-d "
                    f"query, got {_t(key_padding_mask)}")
    if attn_mask is not None and attn_mask.ndim not in (2, 3):
        raise _fail(f"{op}: attn_mask must be 2-d (L, S) or 3-d (N * num_heads, L, S), got "
                    f"{_t(attn_mask)}")


def _heads(x: Any, length: int, bsz: int, num_heads: int, head_dim: int) -> Any:
    """(length, bsz, E) -> (bsz * num_heads, length, head_dim)."""
    return sh.transpose(sh.reshape(x, (length, bsz * num_heads, head_dim)), 0, 1)


def _in_projection(query: Any, key: Any, value: Any, in_proj_weight: Any, in_proj_bias: Any,
                   separate: tuple | None) -> tuple[Any, Any, Any]:
    """q, k, v projected by the packed (3E, E) weight or the three separate weights."""
    if in_proj_bias is None:
        b_q = b_k = b_v = None
    else:
        b_q, b_k, b_v = sh.chunk(in_proj_bias, 3)
    if separate is not None:
        w_q, w_k, w_v = separate
    elif query is key and key is value:  # self-attention: one GEMM
        proj = linear(query, in_proj_weight, in_proj_bias)
        q, k, v = sh.chunk(proj, 3, -1)
        return q, k, v
    else:
        w_q, w_k, w_v = sh.chunk(in_proj_weight, 3)
    return linear(query, w_q, b_q), linear(key, w_k, b_k), linear(value, w_v, b_v)


def multi_head_attention_forward(
    query: Any, key: Any, value: Any, embed_dim_to_check: int, num_heads: int,
    in_proj_weight: Any, in_proj_bias: Any, bias_k: Any, bias_v: Any, add_zero_attn: bool,
    dropout_p: float, out_proj_weight: Any, out_proj_bias: Any, training: bool = True,
    key_padding_mask: Any = None, need_weights: bool = True, attn_mask: Any = None,
    use_separate_proj_weight: bool = False, q_proj_weight: Any = None, k_proj_weight: Any = None,
    v_proj_weight: Any = None, static_k: Any = None, static_v: Any = None,
    average_attn_weights: bool = True, is_causal: bool = False,
) -> tuple[Any, Any]:
    """PyTorch's multi-head attention on (L, N, E) query, (S, N, Ek) key, (S, N, Ev) value (or
    unbatched (L, E)); bool masks are True where attention is NOT allowed. Returns the output
    and, with need_weights, the attention weights (averaged over heads by default)."""
    op = "multi_head_attention_forward"
    if not hasattr(query, "ndim") or query.ndim not in (2, 3):
        got = _t(query) if hasattr(query, "dtype") else type(query).__name__
        raise _fail(f"{op}: query must be 3-d (L, N, E) or 2-d (L, E) unbatched, got {got}")
    batched = query.ndim == 3
    _check_mha(op, query, key, value, key_padding_mask, attn_mask, num_heads, batched)
    if not batched:
        q1 = sh.unsqueeze(query, 1)  # keep the identities: self-attention is one GEMM
        k1 = q1 if key is query else sh.unsqueeze(key, 1)
        query, key, value = q1, k1, k1 if value is key else sh.unsqueeze(value, 1)
        if key_padding_mask is not None:
            key_padding_mask = sh.unsqueeze(key_padding_mask, 0)
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    dt = query.dtype
    kpm_given = _t(key_padding_mask) if key_padding_mask is not None else ""
    key_padding_mask = _float_mask(op, "key_padding_mask", key_padding_mask, dt)
    if is_causal and attn_mask is None:
        raise _fail(f"{op}: is_causal is a hint that needs attn_mask too; pass "
                    "nn.Transformer.generate_square_subsequent_mask(L) as attn_mask")
    if is_causal and key_padding_mask is None and not need_weights:
        attn_mask = None  # sdpa builds the causal mask itself
    else:
        attn_mask = _float_mask(op, "attn_mask", attn_mask, dt)
        if key_padding_mask is not None:
            is_causal = False
    if embed_dim != embed_dim_to_check:
        raise _fail(f"{op}: query {_t(query)} has embed_dim {embed_dim}, expected "
                    f"{embed_dim_to_check}")
    head_dim = embed_dim // num_heads
    if head_dim * num_heads != embed_dim:
        raise _fail(f"{op}: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
    if use_separate_proj_weight:
        if tuple(key.shape[:2]) != tuple(value.shape[:2]):
            raise _fail(f"{op}: key {_t(key)} and value {_t(value)} differ in (S, N)")
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise _fail(f"{op}: use_separate_proj_weight needs q/k/v_proj_weight")
        separate = (q_proj_weight, k_proj_weight, v_proj_weight)
    else:
        if tuple(key.shape) != tuple(value.shape):
            raise _fail(f"{op}: key {_t(key)} and value {_t(value)} must have the same shape")
        if in_proj_weight is None:
            raise _fail(f"{op}: in_proj_weight is None and use_separate_proj_weight is False")
        separate = None
    q, k, v = _in_projection(query, key, value, in_proj_weight, in_proj_bias, separate)

    if attn_mask is not None:
        want = (tgt_len, src_len) if attn_mask.ndim == 2 else (bsz * num_heads, tgt_len, src_len)
        if tuple(attn_mask.shape) != want:
            raise _fail(f"{op}: the {attn_mask.ndim}-d attn_mask is {_t(attn_mask)}, should be "
                        f"[{','.join(map(str, want))}]")
        if attn_mask.ndim == 2:
            attn_mask = sh.unsqueeze(attn_mask, 0)
    if (bias_k is None) != (bias_v is None):
        raise _fail(f"{op}: bias_k and bias_v must both be given or both be None")
    if bias_k is not None:
        if static_k is not None or static_v is not None:
            raise _fail(f"{op}: bias_k/bias_v cannot be added to static_k/static_v")
        k = sh.cat([k, sh.expand(bias_k, (1, bsz, embed_dim))])
        v = sh.cat([v, sh.expand(bias_v, (1, bsz, embed_dim))])
        attn_mask = sh.pad(attn_mask, (0, 1)) if attn_mask is not None else None
        key_padding_mask = (sh.pad(key_padding_mask, (0, 1)) if key_padding_mask is not None
                            else None)

    q = _heads(q, tgt_len, bsz, num_heads, head_dim)
    for name, static in (("static_k", static_k), ("static_v", static_v)):
        if static is not None and (static.shape[0] != bsz * num_heads
                                   or static.shape[2] != head_dim):
            raise _fail(f"{op}: {name} must be [{bsz * num_heads},S,{head_dim}], got "
                        f"{_t(static)}")
    k = _heads(k, k.shape[0], bsz, num_heads, head_dim) if static_k is None else static_k
    v = _heads(v, v.shape[0], bsz, num_heads, head_dim) if static_v is None else static_v
    if add_zero_attn:
        z = zeros((bsz * num_heads, 1, head_dim), dtype=k.dtype, device=k.device)
        k, v = sh.cat([k, z], 1), sh.cat([v, z], 1)
        attn_mask = sh.pad(attn_mask, (0, 1)) if attn_mask is not None else None
        key_padding_mask = (sh.pad(key_padding_mask, (0, 1)) if key_padding_mask is not None
                            else None)
    src_len = k.shape[1]
    if key_padding_mask is not None:
        if tuple(key_padding_mask.shape) != (bsz, src_len):
            raise _fail(f"{op}: key_padding_mask {kpm_given} should be "
                        f"[{bsz},{src_len}] (batch, S)")
        kpm = sh.expand(sh.reshape(key_padding_mask, (bsz, 1, 1, src_len)),
                        (bsz, num_heads, 1, src_len))
        kpm = sh.reshape(kpm, (bsz * num_heads, 1, src_len))
        attn_mask = kpm if attn_mask is None else attn_mask + kpm
    if not training:
        dropout_p = 0.0

    if need_weights:
        # NOTE: a plain softmax here, as PyTorch: a fully masked row gives NaN weights
        scores = matmul(q * math.sqrt(1.0 / head_dim), sh.transpose(k, -2, -1))
        if attn_mask is not None:
            scores = scores + attn_mask
        weights = softmax(scores, -1)
        if dropout_p > 0.0:
            weights = dropout(weights, dropout_p)
        out = matmul(weights, v)  # (N * H, L, head_dim)
        out = sh.reshape(sh.transpose(out, 0, 1), (tgt_len * bsz, embed_dim))
    else:
        if attn_mask is not None:
            if attn_mask.shape[0] == 1:
                attn_mask = sh.unsqueeze(attn_mask, 0)
            else:
                attn_mask = sh.reshape(attn_mask, (bsz, num_heads, -1, src_len))
        q4 = sh.reshape(q, (bsz, num_heads, tgt_len, head_dim))
        k4 = sh.reshape(k, (bsz, num_heads, src_len, head_dim))
        v4 = sh.reshape(v, (bsz, num_heads, src_len, head_dim))
        out = scaled_dot_product_attention(q4, k4, v4, attn_mask, dropout_p, is_causal)
        out = sh.reshape(sh.permute(out, 2, 0, 1, 3), (bsz * tgt_len, embed_dim))
        weights = None
    out = sh.reshape(linear(out, out_proj_weight, out_proj_bias), (tgt_len, bsz, -1))
    if weights is not None:
        weights = sh.reshape(weights, (bsz, num_heads, tgt_len, src_len))
        if average_attn_weights:
            weights = rd.mean(weights, 1)
    if not batched:
        out = sh.squeeze(out, 1)
        weights = sh.squeeze(weights, 0) if weights is not None else None
    return out, weights
