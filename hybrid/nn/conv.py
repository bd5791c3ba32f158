"""Convolution (plain and transposed, 1-3 d, PyTorch's padding modes), pooling and channel
dropout layers of hybrid.nn (PyTorch's names, parameter shapes and default init). Each calls
hybrid.nn.functional in forward()."""

from __future__ import annotations

import math
from typing import Any

from hybrid import errors
from hybrid.nn import functional as FC
from hybrid.nn import init
from hybrid.nn.functional_conv import _t
from hybrid.nn.module import Module, Parameter
from hybrid.ops import creation as cr
from hybrid.ops import shape as sh

__all__ = [
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool1d",
    "AdaptiveMaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "Conv1d",
    "Conv2d",
    "Conv3d",
    "ConvTranspose1d",
    "ConvTranspose2d",
    "ConvTranspose3d",
    "Dropout1d",
    "Dropout2d",
    "Dropout3d",
    "MaxPool1d",
    "MaxPool2d",
    "MaxPool3d",
    "MaxUnpool1d",
    "MaxUnpool2d",
]


def _tuple(v: Any, n: int) -> tuple:
    if isinstance(v, (tuple, list)):
        return tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _n = 2
    _fn = staticmethod(FC.conv2d)
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None,
                 output_padding: Any = 0) -> None:
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise errors.ShapeError(errors.at_user(
                f"{name}: groups={groups} must be positive and divide in_channels "
                f"({in_channels}) and out_channels ({out_channels})"))
        if padding_mode not in _PADDING_MODES or (self._transposed and padding_mode != "zeros"):
            allowed = "'zeros'" if self._transposed else ", ".join(map(repr, _PADDING_MODES))
            raise errors.ShapeError(errors.at_user(
                f"{name}: padding_mode must be one of {allowed}, got {padding_mode!r}"))
        if isinstance(padding, str) and (padding not in ("same", "valid") or self._transposed):
            allowed = "an int or a tuple" if self._transposed else \
                "an int, a tuple, 'same' or 'valid'"
            raise errors.ShapeError(errors.at_user(
                f"{name}: padding must be {allowed}, got {padding!r}"))
        n = self._n
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _tuple(kernel_size, n)
        self.stride, self.dilation = _tuple(stride, n), _tuple(dilation, n)
        if padding == "same" and any(v != 1 for v in self.stride):
            raise errors.ShapeError(errors.at_user(
                f"{name}: padding='same' is not supported for strided convolutions (stride "
                f"{self.stride}); use an explicit padding"))
        self.padding = padding if isinstance(padding, str) else _tuple(padding, n)
        self.padding_mode = padding_mode
        self.transposed, self.output_padding = self._transposed, _tuple(output_padding, n)
        if padding == "same":  # PyTorch's F.pad order: last dim first, (left, right) each
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            self._reversed_padding_repeated_twice = [
                v for t in reversed(totals) for v in (t // 2, t - t // 2)]
        elif padding == "valid":
            self._reversed_padding_repeated_twice = [0, 0] * n
        else:
            self._reversed_padding_repeated_twice = [v for p in reversed(self.padding)
                                                     for v in (p, p)]
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(cr.empty(shape, dtype=dtype, device=device))
        if bias:
            self.bias = Parameter(cr.empty((out_channels,), dtype=dtype, device=device))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * math.prod(self.kernel_size)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Any) -> Any:
        if self.padding_mode != "zeros":
            x = sh.pad_mode(type(self).__name__, x, tuple(self._reversed_padding_repeated_twice),
                            self.padding_mode, "padding_mode")
            return type(self)._fn(x, self.weight, self.bias, self.stride, 0, self.dilation,
                                  self.groups)
        return type(self)._fn(x, self.weight, self.bias, self.stride, self.padding,
                              self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"  # PyTorch prints padding=same unquoted
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * self._n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    """A (not transposed) convolution: PyTorch's constructor, without output_padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)


class Conv3d(_Conv):
    """3-d convolution: weight (out, in / groups, kd, kh, kw), bias (out,)."""

    _n = 3
    _fn = staticmethod(FC.conv3d)


class Conv2d(_Conv):
    """2-d convolution: weight (out, in / groups, kh, kw), bias (out,)."""

    _n = 2
    _fn = staticmethod(FC.conv2d)


class Conv1d(_Conv):
    """1-d convolution: weight (out, in / groups, k), bias (out,)."""

    _n = 1
    _fn = staticmethod(FC.conv1d)


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any = 1,
                 padding: Any = 0, output_padding: Any = 0, groups: int = 1, bias: bool = True,
                 dilation: Any = 1, padding_mode: str = "zeros", device: Any = None,
                 dtype: Any = None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype, output_padding)

    def _output_padding(self, x: Any, output_size: Any) -> tuple:
        """PyTorch's rule: the output_padding that gives `output_size` (spatial or full)."""
        n, name = self._n, type(self).__name__
        if output_size is None:
            return self.output_padding
        size = [int(v) for v in output_size]
        lead = x.ndim - n
        if len(size) == lead + n:
            size = size[lead:]
        if len(size) != n:
            raise errors.ShapeError(errors.at_user(
                f"{name}: output_size must have {n} or {lead + n} elements (got "
                f"{len(output_size)})"))
        result = []
        for i in range(n):
            least = ((x.shape[lead + i] - 1) * self.stride[i] - 2 * self.padding[i]
                     + self.dilation[i] * (self.kernel_size[i] - 1) + 1)
            if not least <= size[i] <= least + self.stride[i] - 1:
                raise errors.ShapeError(errors.at_user(
                    f"{name}: requested an output size of {size}, but valid sizes range from "
                    f"{least} to {least + self.stride[i] - 1} along spatial dim {i} (for an "
                    f"input of {_t(x)})"))
            result.append(size[i] - least)
        return tuple(result)

    def forward(self, x: Any, output_size: Any = None) -> Any:
        return type(self)._fn(x, self.weight, self.bias, self.stride, self.padding,
                              self._output_padding(x, output_size), self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-d convolution: weight (in, out / groups, k), bias (out,)."""

    _n = 1
    _fn = staticmethod(FC.conv_transpose1d)


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-d convolution: weight (in, out / groups, kh, kw), bias (out,)."""

    _n = 2
    _fn = staticmethod(FC.conv_transpose2d)


class ConvTranspose3d(_ConvTransposeNd):
    """Transposed 3-d convolution: weight (in, out / groups, kd, kh, kw), bias (out,)."""

    _n = 3
    _fn = staticmethod(FC.conv_transpose3d)


class _MaxPoolNd(Module):
    _fn = staticmethod(FC.max_pool2d)

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0, dilation: Any = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x: Any) -> Any:
        return type(self)._fn(x, self.kernel_size, self.stride, self.padding, self.dilation,
                              ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool2d(_MaxPoolNd):
    _fn = staticmethod(FC.max_pool2d)


class MaxPool1d(_MaxPoolNd):
    _fn = staticmethod(FC.max_pool1d)


class MaxPool3d(_MaxPoolNd):
    _fn = staticmethod(FC.max_pool3d)


class AvgPool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Any = None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, x: Any) -> Any:
        return FC.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool3d(AvgPool2d):
    def forward(self, x: Any) -> Any:
        return FC.avg_pool3d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad, self.divisor_override)


class AvgPool1d(Module):
    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, x: Any) -> Any:
        return FC.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                             self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: Any) -> Any:
        return FC.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    def forward(self, x: Any) -> Any:
        return FC.adaptive_avg_pool1d(x, self.output_size)


class AdaptiveMaxPool2d(Module):
    _fn = staticmethod(FC.adaptive_max_pool2d)

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x: Any) -> Any:
        return type(self)._fn(x, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    _fn = staticmethod(FC.adaptive_max_pool1d)


class Dropout2d(Module):
    """Zeroes whole channels with probability p in training mode."""

    _fn = staticmethod(FC.dropout2d)

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise errors.ShapeError(errors.at_user(
                f"{type(self).__name__}: dropout probability has to be between 0 and 1, but got {p}"))
        self.p, self.inplace = p, inplace

    def forward(self, x: Any) -> Any:
        return type(self)._fn(x, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout2d):
    _fn = staticmethod(FC.dropout1d)


class Dropout3d(Dropout2d):
    _fn = staticmethod(FC.dropout3d)


class MaxUnpool2d(Module):
    """The partial inverse of MaxPool2d: forward(input, indices, output_size=None) puts each
    value back at its index (return_indices=True of the pool), zeros elsewhere."""

    _n = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        n = type(self)._n
        self.kernel_size = _tuple(kernel_size, n)
        self.stride = _tuple(stride if stride is not None else kernel_size, n)
        self.padding = _tuple(padding, n)

    def forward(self, input: Any, indices: Any, output_size: Any = None) -> Any:
        fn = FC.max_unpool2d if type(self)._n == 2 else FC.max_unpool1d
        return fn(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(MaxUnpool2d):
    _n = 1
