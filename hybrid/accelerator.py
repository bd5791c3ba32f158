"""hybrid.accelerator (torch.accelerator) and hybrid.backends (mps, cudnn flags): the device
queries recent tutorials make before choosing where to run. hybrid's only accelerator is CUDA."""

from __future__ import annotations

from typing import Any

from hybrid import cuda
from hybrid.device import device


def is_available() -> bool:
    """True when an accelerator (a CUDA GPU through CuPy) is usable."""
    return cuda.is_available()


def current_accelerator(check_available: bool = False) -> device | None:
    """device('cuda') when a GPU is usable, else None (as torch.accelerator without one)."""
    return device("cuda") if cuda.is_available() else None


def device_count() -> int:
    """The number of accelerators (GPUs)."""
    return cuda.device_count()


def current_device_index() -> int:
    """The index of the current GPU (DeviceError without one)."""
    return cuda.current_device()


def synchronize(d: Any = None) -> None:
    """Wait for the accelerator's queued work (nothing to do without one)."""
    cuda.synchronize(d)


class _Mps:
    """torch.backends.mps: Apple's Metal backend, which hybrid does not have."""

    @staticmethod
    def is_available() -> bool:
        return False

    @staticmethod
    def is_built() -> bool:
        return False


class _Cudnn:
    """torch.backends.cudnn flags: accepted and kept; hybrid does not call cuDNN."""

    enabled = True
    benchmark = False
    deterministic = False

    @staticmethod
    def is_available() -> bool:
        return False


class backends:
    """Per-backend switches: `mps` (never available) and `cudnn` (flags only)."""

    mps = _Mps
    cudnn = _Cudnn
