"""Parameter initializers (in place, under no_grad), with PyTorch's names, gains and fan rules."""

from __future__ import annotations

import math
from typing import Any

from hybrid import errors
from hybrid.autograd import no_grad

_GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "conv1d": 1.0, "conv2d": 1.0,
          "conv3d": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table)."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise errors.ShapeError(errors.at_user(f"calculate_gain: unsupported nonlinearity "
                                               f"{nonlinearity!r}"))
    return _GAINS[nonlinearity]


def _calculate_fan_in_and_fan_out(t: Any) -> tuple[int, int]:
    if t.ndim < 2:
        raise errors.ShapeError(
            errors.at_user(f"fan in and fan out can not be computed for a tensor with fewer than "
                           f"2 dims (shape {list(t.shape)})")
        )
    receptive = math.prod(t.shape[2:])
    return t.shape[1] * receptive, t.shape[0] * receptive


def uniform_(t: Any, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Any:
    """Fill with values uniform in [a, b)."""
    with no_grad():
        return t.uniform_(a, b, generator=generator)


def normal_(t: Any, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Any:
    """Fill with normal values N(mean, std^2)."""
    with no_grad():
        return t.normal_(mean, std, generator=generator)


def constant_(t: Any, val: float) -> Any:
    with no_grad():
        return t.fill_(val)


def zeros_(t: Any) -> Any:
    return constant_(t, 0.0)


def ones_(t: Any) -> Any:
    return constant_(t, 1.0)


def kaiming_uniform_(t: Any, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu", generator: Any = None) -> Any:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan). nn.Linear uses a=sqrt(5)."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    if mode not in ("fan_in", "fan_out"):
        raise errors.ShapeError(errors.at_user(f"kaiming_uniform_: mode must be 'fan_in' or "
                                               f"'fan_out', got {mode!r}"))
    fan = fan_in if mode == "fan_in" else fan_out
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan) if fan else 0.0
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t: Any, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu", generator: Any = None) -> Any:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    fan = fan_in if mode == "fan_in" else fan_out
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def xavier_uniform_(t: Any, gain: float = 1.0, generator: Any = None) -> Any:
    """Glorot uniform: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(t: Any, gain: float = 1.0, generator: Any = None) -> Any:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(t)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)
