"""Normalization layers of hybrid.nn (PyTorch's names, constructor signatures, parameter and
buffer names, default init): BatchNorm1d/2d/3d, InstanceNorm1d/2d, GroupNorm and
LocalResponseNorm. Each calls hybrid.nn.functional_norm in forward()."""

from __future__ import annotations

import warnings
from typing import Any

from hybrid import errors
from hybrid.dtypes import int64
from hybrid.nn import functional_norm as FN
from hybrid.nn import init
from hybrid.nn.module import Module, Parameter
from hybrid.ops import creation as cr

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "GroupNorm",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LocalResponseNorm",
]


def _fail(message: str) -> errors.HybridError:
    return errors.ShapeError(errors.at_user(message))


class _NormBase(Module):
    """PyTorch's _NormBase: weight/bias (affine) and running_mean/running_var/
    num_batches_tracked buffers (track_running_stats)."""

    _dims: tuple[int, ...] = (4,)
    _dims_text = "4D"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(cr.empty((num_features,), dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(cr.empty((num_features,), dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean",
                                 cr.zeros((num_features,), dtype=dtype, device=device))
            self.register_buffer("running_var",
                                 cr.ones((num_features,), dtype=dtype, device=device))
            self.register_buffer("num_batches_tracked",
                                 cr.zeros((), dtype=int64, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Reset the running statistics; weight = 1, bias = 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, x: Any) -> None:
        if not hasattr(x, "ndim") or x.ndim not in self._dims:
            got = f"{x.ndim}D input" if hasattr(x, "ndim") else type(x).__name__
            shape = f" of shape {list(x.shape)}" if hasattr(x, "shape") else ""
            raise _fail(f"{type(self).__name__}: expected {self._dims_text} input (got {got}"
                        f"{shape})")

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    def forward(self, x: Any) -> Any:
        self._check_input_dim(x)
        factor: Any = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average: 1 / batches seen
                factor = 1.0 / self.num_batches_tracked.double()
        use_batch = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        return FN.batch_norm(x, self.running_mean if keep else None,
                             self.running_var if keep else None, self.weight, self.bias,
                             use_batch, factor, self.eps)


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input over N (and L)."""

    _dims, _dims_text = (2, 3), "2D or 3D"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input over N, H and W."""

    _dims, _dims_text = (4,), "4D"


class BatchNorm3d(_BatchNorm):
    """Batch normalization of (N, C, D, H, W) input over N, D, H and W."""

    _dims, _dims_text = (5,), "5D"


class _InstanceNorm(_NormBase):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False, device: Any = None,
                 dtype: Any = None, *, bias: bool = True) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype,
                         bias=bias)

    def forward(self, x: Any) -> Any:
        self._check_input_dim(x)
        unbatched = x.ndim == self._dims[0]
        feature_dim = 0 if unbatched else 1
        if x.shape[feature_dim] != self.num_features:
            if self.affine:
                raise _fail(f"{type(self).__name__}: expected input's size at dim={feature_dim} "
                            f"to match num_features ({self.num_features}), but got: "
                            f"{x.shape[feature_dim]}.")
            warnings.warn(errors.at_user(
                f"input's size at dim={feature_dim} does not match num_features. You can "
                "silence this warning by not passing in num_features, which is not used "
                "because affine=False"), stacklevel=3)
        if unbatched:
            x = x.unsqueeze(0)
        out = FN.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                               self.training or not self.track_running_stats,
                               self.momentum if self.momentum is not None else 0.0, self.eps)
        return out.squeeze(0) if unbatched else out


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) or unbatched (C, L) input over L."""

    _dims, _dims_text = (2, 3), "2D or 3D"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) or unbatched (C, H, W) input over H and W."""

    _dims, _dims_text = (3, 4), "3D or 4D"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of (N, C, D, H, W) or unbatched (C, D, H, W) input over D, H, W."""

    _dims, _dims_text = (4, 5), "4D or 5D"


class GroupNorm(Module):
    """Group normalization: channels split into num_groups groups, each normalized over its
    channels and the spatial dims; per-channel weight (ones) and bias (zeros) if affine."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device: Any = None, dtype: Any = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        if num_groups < 1 or num_channels % num_groups:
            raise _fail(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                        f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        if affine:
            self.weight = Parameter(cr.empty((num_channels,), dtype=dtype, device=device))
            if bias:
                self.bias = Parameter(cr.empty((num_channels,), dtype=dtype, device=device))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight = 1, bias = 0."""
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def forward(self, x: Any) -> Any:
        return FN.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Local response normalization across channels (AlexNet's LRN)."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 1.0) -> None:
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: Any) -> Any:
        return FN.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
