"""The tutorial check (issue 14): every self-contained script of PyTorch's beginner tutorials and
of pytorch/examples' regression and time_sequence_prediction, re-created as a scenario that runs
unchanged on `import hybrid as torch` and on PyTorch; eager, and with its training step under
@hybrid.compile. Summary table: `python benchmarks/tutorial_check.py`."""

from __future__ import annotations

import pytest
from tutorial_harness import (
    assert_same_run,
    assert_same_trend,
    assert_same_values,
    assert_trains,
    load_all,
    run,
)

import hybrid

SCRIPTS = load_all()


def _params(trains_only: bool) -> list:
    out = []
    for name, entry in SCRIPTS.items():
        if trains_only and not entry.trains:
            continue
        marks = [pytest.mark.xfail(strict=True, reason=entry.needs)] if entry.needs else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


@pytest.mark.parametrize("name", _params(False))
def test_eager(name):
    entry = SCRIPTS[name]
    got, _, _ = run(entry, hybrid)
    try:
        import torch
    except ImportError:
        if entry.trains:
            assert_trains(got)
        return
    want, _, _ = run(entry, torch)
    if entry.trains:
        assert_same_trend(got, want)
    assert_same_values(got, want)


@pytest.mark.parametrize("name", _params(True))
def test_compiled(name):
    entry = SCRIPTS[name]
    eager, _, _ = run(entry, hybrid)
    compiled, compiles, _ = run(entry, hybrid, compiled=True)
    assert compiles >= 1, "the scenario compiled nothing"
    assert compiles <= entry.max_compiles, f"{compiles} compiled variants: the step recompiles"
    assert_same_run(compiled, eager)
