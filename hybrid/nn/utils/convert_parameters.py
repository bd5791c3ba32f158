"""Parameters as one flat vector and back (PyTorch's `parameters_to_vector`)."""

from __future__ import annotations

from collections.abc import Iterable

from hybrid import errors
from hybrid.autograd import no_grad
from hybrid.ops import shape as sh
from hybrid.tensor import Tensor

__all__ = ["parameters_to_vector", "vector_to_parameters"]


def _params(parameters: Iterable[Tensor] | Tensor, what: str) -> list[Tensor]:
    items = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    devices = set()
    for p in items:
        if not isinstance(p, Tensor):
            raise errors.DTypeError(errors.at_user(
                f"{what}: expected Tensors (e.g. model.parameters()), got {type(p).__name__}"))
        devices.add(str(p.device))
    if len(devices) > 1:
        raise errors.DeviceError(errors.at_user(
            f"{what}: the parameters are on several devices ({sorted(devices)}); move them to "
            "one device first"))
    return items


def parameters_to_vector(parameters: Iterable[Tensor] | Tensor) -> Tensor:
    """All parameters flattened and concatenated into one 1-d tensor (differentiable)."""
    params = _params(parameters, "parameters_to_vector")
    if not params:
        raise errors.ShapeError(errors.at_user("parameters_to_vector: got no parameters"))
    return sh.cat([sh.reshape(p, (-1,)) for p in params], 0)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor] | Tensor) -> None:
    """Copy consecutive slices of the 1-d `vec` into the parameters (in place, without grad)."""
    if not isinstance(vec, Tensor):
        raise errors.DTypeError(errors.at_user(
            f"vector_to_parameters: expected vec to be a Tensor, got {type(vec).__name__}"))
    params = _params(parameters, "vector_to_parameters")
    total = sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise errors.ShapeError(errors.at_user(
            f"vector_to_parameters: vec has shape {list(vec.shape)}, the parameters need a 1-d "
            f"vector of {total} elements"))
    # NOTE: PyTorch rebinds each param.data to a view of vec; hybrid copies the values instead,
    # so the parameters keep their own storage (and their identity in optimizers and compiled
    # functions)
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.copy_(sh.reshape(vec[offset:offset + n], p.shape))
            offset += n
