"""Devices: "cpu" (numpy) and "cuda" (CuPy). A clear error when CuPy or a GPU is missing."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from hybrid.errors import DeviceError, at_user


class device:  # noqa: N801  (PyTorch's spelling: hybrid.device("cuda:0"))
    """A device: type 'cpu' or 'cuda', and an index for cuda."""

    __slots__ = ("type", "index")

    def __init__(self, spec: str | device = "cpu", index: int | None = None):
        if isinstance(spec, device):
            self.type, self.index = spec.type, spec.index
            return
        kind, _, num = str(spec).partition(":")
        if kind not in ("cpu", "cuda"):
            raise DeviceError(at_user(f"device: unknown device {spec!r}; use 'cpu' or 'cuda[:N]'"))
        if num:
            if not num.isdigit():
                raise DeviceError(at_user(f"device: bad device index in {spec!r}; use "
                                          "'cuda:N' with N a non-negative integer"))
            index = int(num)
        self.type = kind
        self.index = (index or 0) if kind == "cuda" else None

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = device(other)
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        if self.index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self.index})"


CPU = device("cpu")


@functools.cache
def _cupy() -> Any:
    try:
        import cupy
    except ImportError as e:
        raise DeviceError(
            at_user(
                "device 'cuda' needs CuPy: install it with `pip install hybrid[cuda]` "
                f"(cupy-cuda13x) on a machine with an NVIDIA GPU ({e})"
            )
        ) from None
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDA driver missing or no device
        raise DeviceError(at_user(f"device 'cuda': no usable NVIDIA GPU was found ({e})")) from None
    if n == 0:
        raise DeviceError(at_user("device 'cuda': no NVIDIA GPU was found; use device='cpu'"))
    return cupy


def cuda_is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _cupy()
    except DeviceError:
        return False
    return True


def array_module(a: Any) -> Any:
    """The array module of an array: numpy for a numpy array, else CuPy (the only other kind a
    Tensor holds). The one place the frontend picks between them from a value."""
    if a.__class__ is np.ndarray or isinstance(a, (np.ndarray, np.generic)):
        return np
    return _cupy()


def xp_of(dev: device) -> Any:
    """The array module of a device: numpy for cpu, cupy for cuda."""
    if dev.type == "cpu":
        return np
    cp = _cupy()
    if dev.index >= cp.cuda.runtime.getDeviceCount():
        raise DeviceError(at_user(f"device {dev}: there is no GPU with index {dev.index}"))
    return cp


_DEFAULT = [CPU]  # the device factories use when given none (hybrid.set_default_device)


def set_default_device(d: object) -> None:
    """The device that tensor factories (zeros, randn, tensor, ...) use when none is given;
    None restores 'cpu'. A 'cuda' default without a GPU fails at the first factory call."""
    _DEFAULT[0] = CPU if d is None else as_device(d)


def get_default_device() -> device:
    """The device tensor factories use when none is given (see set_default_device)."""
    return _DEFAULT[0]


def as_device(d: object) -> device:
    """A device from a device, a string, an int (cuda:N), or None (the default device)."""
    if d is None:
        return _DEFAULT[0]
    if isinstance(d, device):
        return d
    if isinstance(d, int):
        return device("cuda", d)
    return device(d)
