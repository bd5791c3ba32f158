"""hybrid.cuda: PyTorch's torch.cuda surface over CuPy. Queries answer False/0 without a GPU, the
calls that only act on a GPU (synchronize, manual_seed, empty_cache) do nothing then, and those
that must name a GPU (current_device, get_device_name, ...) raise a clear DeviceError."""

from __future__ import annotations

from typing import Any

from hybrid.device import _cupy, as_device, cuda_is_available
from hybrid.errors import DeviceError, at_user


def is_available() -> bool:
    """True when CuPy imports and sees at least one NVIDIA GPU."""
    return cuda_is_available()


def device_count() -> int:
    """The number of GPUs CuPy sees (0 without CuPy or a GPU)."""
    if not is_available():
        return 0
    return int(_cupy().cuda.runtime.getDeviceCount())


def _require(what: str) -> Any:
    if not is_available():
        raise DeviceError(at_user(
            f"hybrid.cuda.{what}: no NVIDIA GPU is available (CuPy missing or no device); "
            "check hybrid.cuda.is_available() first, or use device='cpu'"))
    return _cupy()


def _index(d: Any) -> int:
    if d is None:
        return current_device()
    if isinstance(d, int):
        return d
    return as_device(d).index or 0


def current_device() -> int:
    """The index of the current GPU (DeviceError without one)."""
    return int(_require("current_device()").cuda.runtime.getDevice())


def set_device(d: Any) -> None:
    """Make GPU `d` (an index, 'cuda:N' or a device) current."""
    _require("set_device()").cuda.runtime.setDevice(_index(d))


def get_device_name(d: Any = None) -> str:
    """The name of GPU `d` (the current one by default)."""
    cp = _require("get_device_name()")
    name = cp.cuda.runtime.getDeviceProperties(_index(d))["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def get_device_properties(d: Any = None) -> dict:
    """CUDA's properties of GPU `d` (a dict: name, totalGlobalMem, multiProcessorCount, ...)."""
    return dict(_require("get_device_properties()").cuda.runtime.getDeviceProperties(_index(d)))


def get_device_capability(d: Any = None) -> tuple[int, int]:
    """(major, minor) compute capability of GPU `d`."""
    props = get_device_properties(d)
    return int(props["major"]), int(props["minor"])


def synchronize(d: Any = None) -> None:
    """Wait for all work queued on the GPU (nothing to wait for without one)."""
    if is_available():
        _cupy().cuda.Device(_index(d)).synchronize()


def manual_seed(seed: int) -> None:
    """Seed GPU random numbers. hybrid has one counter-based generator for every device, so this
    seeds hybrid's default generator when a GPU is present and does nothing without one (as
    PyTorch, which seeds CUDA lazily); hybrid.manual_seed seeds every device."""
    if is_available():
        from hybrid.random import manual_seed as seed_all

        seed_all(seed)


manual_seed_all = manual_seed


def empty_cache() -> None:
    """Give CuPy's cached GPU blocks back to the driver (nothing to do without a GPU)."""
    if is_available():
        _cupy().get_default_memory_pool().free_all_blocks()


def memory_allocated(d: Any = None) -> int:
    """Bytes of GPU memory held by live tensors (0 without a GPU)."""
    if not is_available():
        return 0
    return int(_cupy().get_default_memory_pool().used_bytes())


def memory_reserved(d: Any = None) -> int:
    """Bytes of GPU memory CuPy's pool holds, in use or cached (0 without a GPU)."""
    if not is_available():
        return 0
    return int(_cupy().get_default_memory_pool().total_bytes())


def is_initialized() -> bool:
    """Whether the GPU has been set up (as is_available here: CuPy initializes on first use)."""
    return is_available()
