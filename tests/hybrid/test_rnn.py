"""nn.RNN/LSTM/GRU and their cells against PyTorch: outputs, final states and every gradient."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid


def _as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("layout", ["seq_first", "batch_first", "unbatched"])
def test_matches_torch(cls, num_layers, bidirectional, layout):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    kw = dict(num_layers=num_layers, bidirectional=bidirectional,
              batch_first=layout == "batch_first")
    t = getattr(torch.nn, cls)(5, 7, **kw).double()
    m = getattr(hybrid.nn, cls)(5, 7, **kw).double()
    m.load_state_dict({k: hybrid.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    shape = {"seq_first": (4, 3, 5), "batch_first": (3, 4, 5), "unbatched": (4, 5)}[layout]
    x = np.random.default_rng(1).standard_normal(shape)
    ot, st = t(torch.tensor(x))
    om, sm = m(hybrid.tensor(x))
    np.testing.assert_allclose(om.detach().numpy(), ot.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(_as_tuple(sm), _as_tuple(st)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    w = np.random.default_rng(2).standard_normal(ot.shape)
    ((ot * torch.tensor(w)).sum() + _as_tuple(st)[0].sum()).backward()
    ((om * hybrid.tensor(w)).sum() + _as_tuple(sm)[0].sum()).backward()
    for name, p in t.named_parameters():
        np.testing.assert_allclose(m.get_parameter(name).grad.numpy(), p.grad.numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def test_wrong_input_size_names_layer_and_shapes():
    m = hybrid.nn.LSTM(5, 7)
    with pytest.raises(hybrid.errors.HybridError, match=r"LSTM.*Expected 5, got 4"):
        m(hybrid.randn(3, 2, 4))
