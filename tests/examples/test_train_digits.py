"""The digits example runs end to end and reaches its advertised accuracy (the full run takes a
few seconds, so the test runs it as is)."""

from __future__ import annotations

import os
import sys

import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
sys.path.insert(0, os.path.abspath(EXAMPLES))

import train_digits


def test_full_run_reaches_95_percent(capsys):
    acc = train_digits.main(["--quiet"])  # its time is a benchmark (benchmarks/), not a test
    assert acc >= 0.95
    out = capsys.readouterr().out
    assert "test accuracy" in out and "training time" in out
    assert "Linear(in_features=64, out_features=128, bias=True)" in out


def test_train_step_returns_loss_and_updates():
    import hybrid

    hybrid.manual_seed(0)
    model = train_digits.MLP()
    opt = hybrid.optim.Adam(model.parameters(), lr=1e-2)
    x, y = hybrid.randn(16, 64), hybrid.randint(0, 10, (16,))
    first = train_digits.train_step(model, opt, x, y).item()
    for _ in range(20):
        last = train_digits.train_step(model, opt, x, y).item()
    assert last < first
    # zero_grad first (PyTorch's order): the last step's gradients stay, as in PyTorch
    assert all(p.grad is not None for p in model.parameters())
