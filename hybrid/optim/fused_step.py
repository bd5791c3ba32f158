"""Eager `optimizer.step()` as one native call.

Every optimizer's update is written as in-place Tensor ops that trace (optimizer.py's rules).
Run eagerly they are ~10 numpy passes per parameter; here the whole loop over the parameters is
traced once by the `hybrid.compile` machinery (guards, hyperparameters read as runtime values so
an lr schedule never recompiles, in-place effects replayed onto the same tensors) and runs as one
compiled program from the third step on: the first steps create the optimizer state eagerly, as
before. Anything the compiler cannot run falls back to the eager loop (`fallback="eager"`).

Kept out of the optimizer's attributes: the compile key of a user's function that captures the
optimizer reads them.
"""

from __future__ import annotations

import weakref
from typing import Any

from hybrid import eager_kernels

AFTER = 2  # eager steps before the loop is compiled (the state exists after the first)

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_steps: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run(opt: Any, update_all: Any) -> bool:
    """Run `update_all()` (the optimizer's loop) compiled; False when the caller must run it
    eagerly (tracing, kernels off, the first steps, tensors off the CPU)."""
    if not eager_kernels.active():
        return False
    n = _steps.get(opt, 0) + 1
    _steps[opt] = n
    if n <= AFTER:
        return False
    fn = _compiled.get(opt)
    if fn is None:
        if not _all_cpu(opt):
            return False
        from hybrid.compile import CompiledFunction

        fn = _compiled[opt] = CompiledFunction(update_all, fallback="eager")
    fn()
    return True


def _all_cpu(opt: Any) -> bool:
    import numpy as np

    return all(p._value.__class__ is np.ndarray for g in opt.param_groups for p in g["params"])
