"""The tutorial check's machinery: each scenario is our own re-creation of one PyTorch tutorial
script's code paths, written as a function of the `torch` module (hybrid or PyTorch) and a
`compile` decorator (identity for PyTorch and hybrid eager, hybrid.compile for hybrid compiled).

A scenario returns a Result: the losses it saw while training (compared by trend with PyTorch,
and number by number between hybrid eager and hybrid compiled, which draw the same random
numbers) and/or deterministic values (compared with PyTorch number by number)."""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

GROUPS = ["examples_tensor", "examples_autograd", "examples_nn", "blitz", "nlp", "basics",
          "introyt", "pytorch_examples"]


@dataclass
class Result:
    """What a scenario reports: losses in training order, and deterministic values."""

    losses: list[float] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)

    def value(self, x: Any) -> None:
        """Record a deterministic result (a tensor, an array or a number)."""
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        self.values.append(np.asarray(x, dtype=np.float64) if not isinstance(x, (str, bool))
                           else x)


@dataclass
class Script:
    """One tutorial script: where it lives, its scenario, and what it needs that is missing."""

    name: str
    fn: Callable[[Any, Callable], Result]
    trains: bool
    needs: str | None = None  # e.g. "needs nn.Conv2d: issue 10" (the test is a strict xfail)
    max_compiles: int = 3  # compiled variants allowed (first calls see no .grad / no state yet)


SCRIPTS: dict[str, Script] = {}


def script(name: str, trains: bool = True, needs: str | None = None,
           max_compiles: int = 3) -> Callable:
    """Register a scenario for the tutorial script `name` ("blitz/tensor_tutorial")."""

    def register(fn: Callable) -> Callable:
        SCRIPTS[name] = Script(name, fn, trains, needs, max_compiles)
        return fn

    return register


def load_all() -> dict[str, Script]:
    """Import every scenario module (tutorial_<group>.py) and return the registry."""
    for group in GROUPS:
        importlib.import_module(f"tutorial_{group}")
    return SCRIPTS


class Compiler:
    """The `compile` passed to scenarios: hybrid.compile that remembers what it compiled."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.fns: list[Any] = []

    def __call__(self, fn: Callable) -> Callable:
        if not self.enabled:
            return fn
        import hybrid

        compiled = hybrid.compile(fn)
        self.fns.append(compiled)
        return compiled

    @property
    def compiles(self) -> int:
        return sum(f.cache_size() for f in self.fns)


def run(entry: Script, torch: Any, compiled: bool = False) -> tuple[Result, int, float]:
    """Run a scenario: (result, number of compiled variants, seconds)."""
    comp = Compiler(compiled)
    t0 = time.perf_counter()
    res = entry.fn(torch, comp)
    return res, comp.compiles, time.perf_counter() - t0


def assert_trains(res: Result) -> None:
    """The losses are finite and the last is below the first."""
    assert res.losses, "the scenario recorded no losses"
    assert all(math.isfinite(v) for v in res.losses), res.losses
    assert res.losses[-1] < res.losses[0], f"loss did not decrease: {res.losses}"


def assert_same_trend(got: Result, want: Result) -> None:
    """hybrid's loss falls at least about as far as PyTorch's (in log space: at least half of
    PyTorch's decrease, with a little slack for different random initializations)."""
    assert_trains(got)
    assert_trains(want)
    r_got = got.losses[-1] / got.losses[0]
    r_want = want.losses[-1] / want.losses[0]
    assert r_got <= math.sqrt(r_want) + 0.05, (
        f"hybrid's loss fell to {r_got:.3g} of its start, PyTorch's to {r_want:.3g}:\n"
        f"hybrid  {got.losses}\nPyTorch {want.losses}")


def assert_same_values(got: Result, want: Result, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """The deterministic values agree one by one."""
    assert len(got.values) == len(want.values), (len(got.values), len(want.values))
    for i, (a, b) in enumerate(zip(got.values, want.values)):
        if isinstance(a, (str, bool)) or isinstance(b, (str, bool)):
            assert a == b, f"value {i}: {a!r} != {b!r}"
            continue
        assert a.shape == b.shape, f"value {i}: shape {a.shape} != {b.shape}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=f"value {i}")


def assert_same_run(compiled: Result, eager: Result, rtol: float = 2e-3) -> None:
    """Compiled hybrid gives eager hybrid's losses (the same seeds, the same random numbers)."""
    np.testing.assert_allclose(compiled.losses, eager.losses, rtol=rtol, atol=1e-5)
    assert_same_values(compiled, eager, rtol=1e-4, atol=1e-5)
