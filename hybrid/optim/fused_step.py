"""Eager `optimizer.step()` as one native call.

Every optimizer's update is written as in-place Tensor ops that trace (optimizer.py's rules).
Run eagerly they are ~10 numpy passes per parameter; here the whole loop over the parameters is
traced once by the `hybrid.compile` machinery (guards, hyperparameters read as runtime values so
an lr schedule never recompiles, in-place effects replayed onto the same tensors) and runs as one
compiled program once the loop is hot (MIN_STEPS, MIN_ELEMENTS below): the first steps create
the optimizer state eagerly, as before. Anything the compiler cannot run falls back to the eager
loop (`fallback="eager"`).

Kept out of the optimizer's attributes: the compile key of a user's function that captures the
optimizer reads them.
"""

from __future__ import annotations

import weakref
from typing import Any

from hybrid import eager_kernels

# The loop compiles once the eager steps so far have updated MIN_ELEMENTS parameter elements
# and at least MIN_STEPS steps ran (the state exists after the first): a compile costs about
# what numpy steps over that many elements do (0.1-0.2 s cold), so a tiny model trained for a
# few steps never compiles, and a 784-512-512-10 MLP (0.67 M parameters) compiles on its third.
MIN_STEPS = 2
MIN_ELEMENTS = 1 << 20

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run(opt: Any, update_all: Any) -> bool:
    """Run `update_all()` (the optimizer's loop) compiled; False when the caller must run it
    eagerly (tracing, kernels off, the first steps, tensors off the CPU)."""
    if not eager_kernels.active():
        return False
    n, elements = _steps.get(opt, (0, 0))
    if n < MIN_STEPS or elements < MIN_ELEMENTS:
        _steps[opt] = (n + 1, elements + _parameter_elements(opt))
        return False
    fn = _compiled.get(opt)
    if fn is None:
        if not _all_cpu(opt):
            return False
        from hybrid.compile import CompiledFunction

        fn = _compiled[opt] = CompiledFunction(update_all, fallback="eager")
    fn()
    return True


def _parameter_elements(opt: Any) -> int:
    return sum(p._value.size for g in opt.param_groups for p in g["params"])


def _all_cpu(opt: Any) -> bool:
    import numpy as np

    return all(p._value.__class__ is np.ndarray for g in opt.param_groups for p in g["params"])
