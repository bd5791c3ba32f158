"""nn.Embedding's PyTorch constructor and Embedding.from_pretrained (hybrid/nn/layers.py):
shared weights, freezing, padding rows, training through it eager and compiled, against torch."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_matches_eager

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.errors import HybridError


def _weights() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)


def test_from_pretrained_shares_the_weights_and_freezes_them():
    w = hybrid.tensor(_weights())
    e = nn.Embedding.from_pretrained(w)
    assert (e.num_embeddings, e.embedding_dim) == (6, 4) and not e.weight.requires_grad
    idx = hybrid.tensor([[1, 5], [0, 1]])
    np.testing.assert_array_equal(e(idx).numpy(), _weights()[[[1, 5], [0, 1]]])
    with hybrid.no_grad():
        w[2] = 9.0  # the module holds the same storage, as PyTorch's
    assert e.weight[2].tolist() == [9.0] * 4
    assert list(e.state_dict()) == ["weight"]


def test_from_pretrained_against_torch_with_padding_and_training():
    torch = pytest.importorskip("torch")
    idx = [[1, 2, 2], [0, 5, 2]]
    cot = np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)
    t = torch.nn.Embedding.from_pretrained(torch.tensor(_weights()), freeze=False, padding_idx=2)
    h = nn.Embedding.from_pretrained(hybrid.tensor(_weights()), freeze=False, padding_idx=2)
    assert repr(h) == repr(t) and h.weight.requires_grad
    t(torch.tensor(idx)).backward(torch.tensor(cot))
    h(hybrid.tensor(idx)).backward(hybrid.tensor(cot))
    np.testing.assert_allclose(h.weight.grad.numpy(), t.weight.grad.numpy(), rtol=1e-6)
    assert not h.weight.grad.numpy()[2].any()  # the padding row gets no gradient
    np.testing.assert_array_equal(h.weight.detach().numpy()[2], _weights()[2])  # nor zeros


def test_constructor_weight_and_freeze_as_torch():
    torch = pytest.importorskip("torch")
    w = _weights()
    t = torch.nn.Embedding(6, 4, _weight=torch.tensor(w), _freeze=True)
    h = nn.Embedding(6, 4, _weight=hybrid.tensor(w), _freeze=True)
    assert t.weight.requires_grad == h.weight.requires_grad is False
    np.testing.assert_array_equal(h.weight.numpy(), t.weight.detach().numpy())
    h2 = nn.Embedding(6, 4)
    assert h2.weight.requires_grad and h2.weight.shape == (6, 4)


def test_compiled_training_through_an_unfrozen_pretrained_table(compiled_backend):
    def run(compiled):
        e = nn.Embedding.from_pretrained(hybrid.tensor(_weights()), freeze=False)
        lin = nn.Linear(4, 3)
        with hybrid.no_grad():
            lin.weight.copy_(hybrid.tensor(np.full((3, 4), 0.1, np.float32)))
            lin.bias.zero_()
        opt = hybrid.optim.SGD(list(e.parameters()) + list(lin.parameters()), lr=0.5)

        def step(idx, y):
            opt.zero_grad()
            loss = F.cross_entropy(lin(e(idx)), y)
            loss.backward()
            opt.step()
            return loss.detach()

        step = hybrid.compile(step) if compiled else step
        idx, y = hybrid.tensor([0, 3, 3, 5]), hybrid.tensor([0, 1, 2, 1])
        losses = [step(idx, y) for _ in range(3)]
        return losses + [e.weight.detach()]

    for g, w in zip(run(True), run(False)):
        assert_matches_eager(g, w)


def test_bad_input_names_the_layer():
    with pytest.raises(HybridError, match="from_pretrained: embeddings must be 2-d"):
        nn.Embedding.from_pretrained(hybrid.zeros(3))
    with pytest.raises(HybridError, match="_weight has shape"):
        nn.Embedding(6, 5, _weight=hybrid.tensor(_weights()))
    with pytest.raises(HybridError, match="max_norm is not supported.*test_embedding.py"):
        nn.Embedding(6, 4, max_norm=1.0)
    with pytest.raises(HybridError, match="sparse"):
        nn.Embedding.from_pretrained(hybrid.tensor(_weights()), sparse=True)
