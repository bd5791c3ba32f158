"""Layers: Linear, Embedding, LayerNorm, Dropout, Flatten, Identity and the activation modules.
Each holds its parameters and calls hybrid.nn.functional in forward()."""

from __future__ import annotations

import math
from typing import Any

from hybrid import errors
from hybrid.nn import functional as F
from hybrid.nn import init
from hybrid.nn.module import Module, Parameter
from hybrid.ops import creation as cr
from hybrid.ops import shape as sh


class Identity(Module):
    """Returns its input unchanged (accepts and ignores any constructor arguments)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, x: Any) -> Any:
        return x


class Linear(Module):
    """y = x @ weight.T + bias, weight (out_features, in_features), PyTorch's default init."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(cr.empty((out_features, in_features), dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(cr.empty((out_features,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Any) -> Any:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table of num_embeddings vectors of size embedding_dim, initialized N(0, 1)
    (or `_weight`); `Embedding.from_pretrained(weights)` wraps given vectors, frozen by
    default."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False, _weight: Any = None,
                 _freeze: bool = False, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        _embedding_options(max_norm, scale_grad_by_freq, sparse)
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise errors.HybridIndexError(
                    errors.at_user(f"Embedding: padding_idx {padding_idx} is out of range for "
                                   f"{num_embeddings} embeddings")
                )
            padding_idx %= num_embeddings
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(cr.empty((num_embeddings, embedding_dim), dtype=dtype,
                                             device=device), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise errors.ShapeError(errors.at_user(
                    f"Embedding: _weight has shape {list(_weight.shape)}, expected "
                    f"[{num_embeddings}, {embedding_dim}] (num_embeddings, embedding_dim)"))
            self.weight = Parameter(_weight.detach(), requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings: Any, freeze: bool = True,
                        padding_idx: int | None = None, max_norm: float | None = None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding holding the 2-d `embeddings` (shared, not copied, as PyTorch's); it
        gets no gradient when `freeze`. The padding row keeps its given values."""
        if getattr(embeddings, "ndim", None) != 2:
            shape = list(getattr(embeddings, "shape", ()))
            raise errors.ShapeError(errors.at_user(
                f"Embedding.from_pretrained: embeddings must be 2-d (num_embeddings, "
                f"embedding_dim), got shape {shape}"))
        rows, dim = embeddings.shape
        return cls(rows, dim, padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                   scale_grad_by_freq=scale_grad_by_freq, sparse=sparse, _weight=embeddings,
                   _freeze=freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            from hybrid.autograd import no_grad

            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, x: Any) -> Any:
        return F.embedding(x, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


def _embedding_options(max_norm: Any, scale_grad_by_freq: bool, sparse: bool) -> None:
    """PyTorch's Embedding options hybrid does not implement: a clear error, never ignored."""
    given = [name for name, on in (("max_norm", max_norm is not None),
                                   ("scale_grad_by_freq", scale_grad_by_freq),
                                   ("sparse", sparse)) if on]
    if given:
        raise errors.HybridError(errors.at_user(
            f"Embedding: {', '.join(given)} is not supported (hybrid's embedding gradient is "
            "dense and rows are not renormalized); leave the default, or renormalize the "
            "weight yourself under no_grad()"))


class LayerNorm(Module):
    """Normalizes over the trailing `normalized_shape` dims, then an elementwise affine."""

    def __init__(self, normalized_shape: Any, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        if isinstance(normalized_shape, int):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(cr.ones(self.normalized_shape, dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(cr.zeros(self.normalized_shape, dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Any) -> Any:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class Dropout(Module):
    """Zeroes elements with probability p during training (identity in eval mode)."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise errors.ShapeError(
                errors.at_user(f"Dropout: probability has to be between 0 and 1, but got {p}")
            )
        self.p = p
        self.inplace = inplace

    def forward(self, x: Any) -> Any:
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Flatten(Module):
    """Flattens dims start_dim..end_dim (by default all but the batch dim)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, x: Any) -> Any:
        return sh.flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class _Activation(Module):
    """An elementwise activation without parameters; `inplace` is accepted for compatibility."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Activation):
    def forward(self, x: Any) -> Any:
        return F.relu(x)


class SiLU(_Activation):
    def forward(self, x: Any) -> Any:
        return F.silu(x)


class Sigmoid(Module):
    def forward(self, x: Any) -> Any:
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x: Any) -> Any:
        return F.tanh(x)


class GELU(Module):
    """GELU, exact (approximate='none') or with the tanh approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise errors.ShapeError(
                errors.at_user(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
            )
        self.approximate = approximate

    def forward(self, x: Any) -> Any:
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(Module):
    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Any) -> Any:
        return F.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Any) -> Any:
        return F.log_softmax(x, self.dim)
