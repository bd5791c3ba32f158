"""The character LSTM example: packed variable-length batches, the model learns, eager and
compiled agree step for step from the same seed, and the compiled step compiles once per length
bucket (tiny sizes: compiling unrolls the time loop, so the compiled run uses 1 layer and
buckets of 4 and 6 characters; about 10 s in all)."""

from __future__ import annotations

import math
import os
import sys

import numpy as np
import pytest

pytest.importorskip("tqdm")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
sys.path.insert(0, os.path.abspath(EXAMPLES))

import char_lstm

TINY = ["--quiet", "--epochs", "2", "--max-batches", "8", "--buckets", "4,6", "--layers", "1",
        "--hidden", "16", "--embed", "8", "--batch-size", "4", "--sample-length", "20",
        "--lr", "0.02"]


def test_eager_and_compiled_agree_and_compile_one_variant_per_bucket(capsys):
    eager = char_lstm.main(TINY)
    compiled = char_lstm.main(TINY + ["--compile"])
    assert eager["mode"] == "eager" and compiled["mode"] == "compiled"
    assert len(eager["batch_losses"]) == len(compiled["batch_losses"]) == 16
    # same seed: same init and batches; the first step's loss differs only by float rounding
    np.testing.assert_allclose(compiled["batch_losses"][0], eager["batch_losses"][0], rtol=1e-5)
    np.testing.assert_allclose(compiled["batch_losses"], eager["batch_losses"], rtol=1e-3)
    np.testing.assert_allclose(compiled["losses"], eager["losses"], rtol=1e-3)
    # one variant per lengths profile (both buckets were drawn), plus Adam's first step (no
    # moment buffers yet); nothing recompiled beyond that
    assert compiled["length_profiles"] == 2
    assert compiled["compiled_variants"] == compiled["compile_count"] == 3
    assert compiled["compiled_variants"] <= len(compiled["buckets"]) + 1
    assert compiled["compile_seconds"] > 0 and eager["compiled_variants"] is None
    for r in (eager, compiled):
        assert len(r["sample"]) == 20 and set(r["sample"]) <= set(r["vocab"])
    out = capsys.readouterr().out
    assert "compiled 3 variants (3 compiles" in out and "for 2 length buckets [4, 6]" in out
    assert out.count("sample (temperature 0.7): def ") == 2


def test_two_layer_model_learns_well_below_the_uniform_loss():
    r = char_lstm.main(["--quiet", "--epochs", "1", "--max-batches", "40", "--buckets", "8,12",
                        "--hidden", "48", "--batch-size", "8", "--lr", "0.02",
                        "--sample-length", "30"])
    first, last = np.mean(r["batch_losses"][:3]), np.mean(r["batch_losses"][-10:])
    assert r["uniform_loss"] == pytest.approx(math.log(len(r["vocab"])))
    assert first == pytest.approx(r["uniform_loss"], abs=0.15)  # an untrained model: ~uniform
    assert last < first - 1.0 and last < r["uniform_loss"] - 1.0
    assert r["perplexities"][0] == pytest.approx(math.exp(r["losses"][0]))
    assert len(r["sample"]) == 30 and set(r["sample"]) <= set(r["vocab"])


def test_batches_are_consecutive_chunks_with_shifted_targets():
    ids = np.arange(1000)
    batches = char_lstm.make_batches(ids, [8, 12], 4, np.random.default_rng(0))
    assert len(batches) > 10
    for x, y, lengths in batches:
        assert lengths == char_lstm.length_profile(x.shape[1], 4)
        assert lengths == sorted(lengths, reverse=True) and lengths[0] == x.shape[1]
        assert len(set(lengths)) > 1  # variable lengths within every batch
        for row, n in enumerate(lengths):
            assert (y[row, :n - 1] == x[row, 1:n]).all()  # targets: the next characters
            assert (x[row, n:] == 0).all() and (y[row, n:] == char_lstm.IGNORE).all()
    starts = [x[0, 0] for x, _, _ in batches]
    assert starts[1] == batches[0][0][-1, batches[0][2][-1] - 1] + 1  # consecutive text
    assert char_lstm.length_profile(16, 16)[-1] == 4 and char_lstm.length_profile(3, 1) == [3]


def test_packing_ignores_padding_and_matches_the_unpadded_sequences():
    import hybrid

    hybrid.manual_seed(0)
    model = char_lstm.CharLSTM(20, embed=6, hidden=10, layers=2)
    lengths = [7, 5, 2]
    x = np.random.default_rng(0).integers(1, 20, (3, 7))
    noise = x.copy()
    for row, n in enumerate(lengths):
        x[row, n:] = 0
        noise[row, n:] = 19  # other padding: must change nothing
    with hybrid.no_grad():
        logits, (h, _) = model(hybrid.tensor(x), lengths)
        other, _ = model(hybrid.tensor(noise), lengths)
        np.testing.assert_array_equal(logits.numpy(), other.numpy())
        for row, n in enumerate(lengths):
            alone, (h1, _) = model(hybrid.tensor(x[row:row + 1, :n]))
            np.testing.assert_allclose(logits.numpy()[row, :n], alone.numpy()[0], atol=1e-5)
            assert (logits.numpy()[row, n:] == 0).all()
            np.testing.assert_allclose(h.numpy()[:, row], h1.numpy()[:, 0], atol=1e-5)
    assert tuple(logits.shape) == (3, 7, 20) and tuple(h.shape) == (2, 3, 10)
