"""The CNN example trains eager and compiled from the same seed to its advertised accuracy, with
the same loss curve (a 4-epoch run of the default 6, a few seconds)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("tqdm")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
sys.path.insert(0, os.path.abspath(EXAMPLES))

import train_cnn


def test_eager_and_compiled_reach_95_percent_with_the_same_loss_curve(capsys):
    results = train_cnn.main(["--quiet", "--epochs", "4"])  # time: a benchmark, not a test
    eager, compiled = results["eager"], results["compiled"]
    assert eager["accuracy"] >= 0.95 and compiled["accuracy"] >= 0.95
    assert len(eager["losses"]) == len(compiled["losses"]) == 4
    assert eager["losses"][-1] < 0.3 * eager["losses"][0]
    assert compiled["losses"][-1] < 0.3 * compiled["losses"][0]
    # same seed: same init, shuffling and dropout masks; only float rounding differs. NOTE:
    # rounding compounds over a few hundred batch-norm SGD steps (the epoch-2 losses of the two
    # have been 0.19 and 0.21, swapping when eager's summation order changed), so only the first
    # epoch's mean loss is held to 2%; the later ones to the same downward curve
    np.testing.assert_allclose(compiled["losses"][0], eager["losses"][0], rtol=2e-2)
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=0.25)
    assert abs(eager["accuracy"] - compiled["accuracy"]) <= 0.02
    out = capsys.readouterr().out
    assert "test accuracy" in out and "loss per epoch" in out
    assert "BatchNorm2d(16" in out and "Conv2d(1, 16, kernel_size=(3, 3)" in out


def test_train_step_returns_loss_and_updates_and_32px_model_shapes():
    import hybrid

    hybrid.manual_seed(0)
    model = train_cnn.SmallCNN(size=16)
    opt = hybrid.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = hybrid.randn(8, 1, 16, 16), hybrid.randint(0, 10, (8,))
    first = train_cnn.train_step(model, opt, x, y).item()
    for _ in range(10):
        last = train_cnn.train_step(model, opt, x, y).item()
    assert last < first
    assert all(p.grad is not None for p in model.parameters())
    assert model.features[1].num_batches_tracked.item() == 11
    big = train_cnn.SmallCNN(size=32)
    assert big.classifier[2].in_features == 32 * 8 * 8
    assert tuple(big(hybrid.randn(2, 1, 32, 32)).shape) == (2, 10)
    x_train, _, x_test, _ = train_cnn.load_data(0, 32)
    assert tuple(x_train.shape[1:]) == (1, 32, 32) and x_train.shape[0] + x_test.shape[0] == 1797
