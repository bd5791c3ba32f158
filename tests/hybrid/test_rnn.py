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


@pytest.mark.parametrize("cls", ["RNNCell", "LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch(cls, batched):
    """A cell stepped over 4 inputs (state carried), output and every gradient vs PyTorch."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    t = getattr(torch.nn, cls)(5, 7).double()
    m = getattr(hybrid.nn, cls)(5, 7).double()
    m.load_state_dict({k: hybrid.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    xs = np.random.default_rng(3).standard_normal((4, 3, 5) if batched else (4, 5))
    st, sm = None, None
    for x in xs:
        st = t(torch.tensor(x), st)
        sm = m(hybrid.tensor(x), sm)
    for a, b in zip(_as_tuple(sm), _as_tuple(st)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    sum(s.sum() * (i + 1) for i, s in enumerate(_as_tuple(st))).backward()
    sum(s.sum() * (i + 1) for i, s in enumerate(_as_tuple(sm))).backward()
    for name, p in t.named_parameters():
        np.testing.assert_allclose(m.get_parameter(name).grad.numpy(), p.grad.numpy(),
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def _sequence_model(cls):
    hybrid.manual_seed(0)
    rnn = getattr(hybrid.nn, cls)(3, 8, num_layers=2, batch_first=True)
    head = hybrid.nn.Linear(8, 1)
    params = list(rnn.parameters()) + list(head.parameters())
    return rnn, head, hybrid.optim.Adam(params, lr=1e-2)


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_compiled_training_step_matches_eager(cls, compiled_backend):
    """zero_grad; a 2-layer batch_first RNN over 6 steps + a linear head; MSE; backward; Adam —
    compiled as one step, 5 steps against eager: loss, parameters, gradients."""
    rng = np.random.default_rng(4)
    batches = [(hybrid.tensor(rng.standard_normal((4, 6, 3)).astype(np.float32)),
                hybrid.tensor(rng.standard_normal((4, 1)).astype(np.float32)))
               for _ in range(5)]

    def step(rnn, head, opt, x, y):
        opt.zero_grad()
        out, _ = rnn(x)
        loss = hybrid.nn.functional.mse_loss(head(out[:, -1]), y)
        loss.backward()
        opt.step()
        return loss

    eager, comp = _sequence_model(cls), _sequence_model(cls)
    cstep = hybrid.compile(step)
    for x, y in batches:
        le = step(*eager, x, y)
        lc = cstep(*comp, x, y)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=2e-5, atol=1e-6)
    for m_e, m_c in zip(eager[:2], comp[:2]):
        for (name, pe), pc in zip(m_e.named_parameters(), m_c.parameters()):
            np.testing.assert_allclose(pc.detach().numpy(), pe.detach().numpy(), rtol=2e-5,
                                       atol=1e-6, err_msg=name)
            np.testing.assert_allclose(pc.grad.numpy(), pe.grad.numpy(), rtol=1e-4,
                                       atol=1e-6, err_msg=name + ".grad")
    assert cstep.compile_count <= 2


def test_compiled_cell_inside_an_eager_loop_trains_like_eager(compiled_backend):
    """An LSTMCell compiled on its own and stepped by an eager Python loop (the state carries
    eager autograd history into each compiled call); backward through all 5 calls."""
    def run(compile_it):
        hybrid.manual_seed(0)
        cell = hybrid.nn.LSTMCell(3, 4)
        fn = hybrid.compile(cell) if compile_it else cell
        xs = hybrid.tensor(np.random.default_rng(5).standard_normal((5, 2, 3)).astype(
            np.float32))
        state = None
        for x in xs:
            state = fn(x, state)
        (state[0].sum() + (state[1] ** 2).sum()).backward()
        return [p.grad.numpy() for p in cell.parameters()], state[0].detach().numpy(), fn

    ge, he, _ = run(False)
    gc, hc, fn = run(True)
    np.testing.assert_allclose(hc, he, rtol=2e-5, atol=1e-6)
    for a, b in zip(gc, ge):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert fn.forward.compile_count <= 2  # the first call has no state, the others carry one
