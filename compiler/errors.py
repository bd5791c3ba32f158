"""Errors raised while a graph runs (an index out of range, an integer division by zero).

The compiler cannot import the frontend (`hybrid` imports `compiler`, never the reverse), so the
frontend registers a factory here that turns a kind and a message into its own error classes
(hybrid.HybridIndexError, ...) with the user's file:line; without one, plain IndexError /
ZeroDivisionError / ValueError are raised."""

from __future__ import annotations

from collections.abc import Callable

# kind -> Python exception family, used when no frontend registered a factory
_FAMILY: dict[str, type[Exception]] = {
    "index": IndexError, "zero_division": ZeroDivisionError, "value": ValueError,
}


def _plain(kind: str, message: str, loc: str) -> Exception:
    return _FAMILY[kind](f"{message} at {loc}" if loc else message)


# flag[0] of a native run whose integer division or remainder met a zero divisor (an index check
# stores the 1-based position of its gather/scatter node instead)
DIV_BY_ZERO_CODE = -1

_factory: Callable[[str, str, str], Exception] = _plain


def set_factory(factory: Callable[[str, str, str], Exception]) -> None:
    """Install `factory(kind, message, loc) -> exception` (the frontend does, once, at import)."""
    global _factory
    _factory = factory


def run_error(kind: str, message: str, loc: str = "") -> Exception:
    """The exception to raise for a run-time failure of `kind` ('index', 'zero_division',
    'value'); `loc` is the user's file:line of the failing op when known ('' when the caller's
    own stack shows it, as in eager mode). The exception carries `.run_kind`, `.run_message` and
    `.run_loc` so an interpreter can re-raise it with a node's location."""
    err = _factory(kind, message, loc)
    err.run_kind, err.run_message, err.run_loc = kind, message, loc
    return err
