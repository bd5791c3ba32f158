"""User-facing errors. Each names the op, the shapes and dtypes, the user's file:line, and what to do.

Messages are built only on failure; the helpers here find the first stack frame outside hybrid."""

from __future__ import annotations

import os
import sys

_PKG_DIRS = tuple(
    os.path.dirname(os.path.abspath(p)) + os.sep
    for p in (__file__, os.path.join(os.path.dirname(__file__), "..", "compiler", "x"))
)
# NOTE: the standard library's own frames (multiprocessing's worker bootstrap, threading) are
# never the user's line either; installed packages under it (site-packages) may be.
_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep
_SITE = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)


class HybridError(Exception):
    """Base class of every error hybrid raises on bad input."""


class ShapeError(HybridError, ValueError):
    """Shapes that do not fit an op."""


class DTypeError(HybridError, TypeError):
    """A dtype an op cannot take."""


class DeviceError(HybridError, RuntimeError):
    """Tensors on different devices, or a device that is not available."""


class HybridIndexError(HybridError, IndexError):
    """An index or dim out of range."""


class HybridZeroDivisionError(HybridError, ZeroDivisionError):
    """An integer division or remainder by zero (PyTorch raises ZeroDivisionError too)."""


class HybridMemoryError(HybridError, MemoryError):
    """A tensor too large to allocate (torch.OutOfMemoryError is the CUDA counterpart)."""


class StateDictError(HybridError, KeyError):
    """A state dict whose keys or shapes do not match the module."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class AutogradError(HybridError, RuntimeError):
    """A gradient that cannot be computed as asked."""


class TraceError(HybridError, RuntimeError):
    """A traced value was read by Python inside @hybrid.compile."""


class ArtifactError(HybridError, ValueError):
    """An exported program that cannot be written, loaded or run as given."""


def _in_package(filename: str) -> bool:
    f = os.path.abspath(filename)
    if f.startswith(_PKG_DIRS) or filename.startswith("<frozen"):
        return True
    return f.startswith(_STDLIB) and not any(s in f for s in _SITE)


def user_frame(skip: int = 1):
    """The innermost frame of user code (outside hybrid/ and compiler/), or None."""
    f = sys._getframe(skip)
    while f is not None and _in_package(f.f_code.co_filename):
        f = f.f_back
    return f


def user_location(skip: int = 1) -> str:
    """`file.py:12` of the innermost user frame ('' if there is none)."""
    f = user_frame(skip + 1)
    if f is None:
        return ""
    return f"{os.path.basename(f.f_code.co_filename)}:{f.f_lineno}"


def at_user(message: str) -> str:
    """`message` with ` at file.py:12` appended when a user frame is found."""
    loc = user_location(2)
    return f"{message} at {loc}" if loc else message


_KINDS = {ValueError: ShapeError, TypeError: DTypeError, IndexError: HybridIndexError,
          ZeroDivisionError: HybridZeroDivisionError}


def error(kind: type[Exception], message: str) -> HybridError:
    """A HybridError of the right Python family (ValueError/TypeError/IndexError) at the user's line."""
    cls = _KINDS.get(kind, kind if issubclass(kind, HybridError) else ShapeError)
    return cls(at_user(message))


_RUN_KINDS = {"index": HybridIndexError, "zero_division": HybridZeroDivisionError,
              "value": ShapeError}


def _run_error(kind: str, message: str, loc: str) -> HybridError:
    """The compiler's run-time errors (compiler/errors.py) as HybridErrors at the user's line:
    the op's traced line when known, else the innermost user frame (eager mode)."""
    cls = _RUN_KINDS.get(kind, ShapeError)
    return cls(f"{message} at {loc}" if loc else at_user(message))


def _install() -> None:
    from compiler import errors as compiler_errors

    compiler_errors.set_factory(_run_error)


_install()
