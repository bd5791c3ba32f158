"""Loads the native runtime extension (`hybrid_runtime`) and re-exports it as `runtime`."""

from __future__ import annotations


class NativeExtensionMissingError(ImportError):
    """The compiled extension `hybrid_runtime` could not be imported."""


def _missing_message(err: BaseException) -> str:
    return (
        "hybrid's native runtime extension `hybrid_runtime` is not built or cannot be loaded. "
        'Build it from the repo root with `pip install .` (or, for development, '
        "`pip install --no-build-isolation -e . -Cbuild-dir=build/{wheel_tag}`; "
        "see runtime_cpp/CMakeLists.txt). "
        f"Original error: {type(err).__name__}: {err}"
    )


try:
    import hybrid_runtime as runtime
except ImportError as _err:
    raise NativeExtensionMissingError(_missing_message(_err)) from _err

set_num_threads = runtime.set_num_threads
get_num_threads = runtime.get_num_threads

__all__ = ["NativeExtensionMissingError", "runtime", "set_num_threads", "get_num_threads"]
