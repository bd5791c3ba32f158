"""Packed sequences (hybrid.nn.utils.rnn) and RNN/LSTM/GRU over them, LSTM proj_size: against
PyTorch (outputs, final states, every gradient), a float64 numpy LSTM, compiled vs eager, and
the errors PyTorch raises."""

from __future__ import annotations

import numpy as np
import pytest
from tolerance import assert_matches_eager

import hybrid
from hybrid.nn.utils import rnn as hr

torch = pytest.importorskip("torch")
tr = torch.nn.utils.rnn

HIDDEN = 6
CLASSES = {"rnn_tanh": ("RNN", {}), "rnn_relu": ("RNN", {"nonlinearity": "relu"}),
           "lstm": ("LSTM", {}), "lstm_proj": ("LSTM", {"proj_size": 4}), "gru": ("GRU", {})}


def _np(x):
    return x.detach().numpy()


def _close(a, b, msg="", rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(_np(a), _np(b), rtol=rtol, atol=atol, err_msg=msg)


def _tuple(s):
    return s if isinstance(s, tuple) else (s,)


def _pair(kind, **kw):
    """(torch module, hybrid module) of `kind` in float64 with torch's parameters in both."""
    cls, extra = CLASSES[kind]
    torch.manual_seed(0)
    t = getattr(torch.nn, cls)(3, HIDDEN, **extra, **kw).double()
    m = getattr(hybrid.nn, cls)(3, HIDDEN, **extra, **kw).double()
    m.load_state_dict({k: hybrid.tensor(_np(v)) for k, v in t.state_dict().items()})
    return t, m


def _fields_equal(ph, pt):
    """PackedSequence fields: data values, batch_sizes, sorted/unsorted indices as torch's."""
    _close(ph.data, pt.data, "data")
    np.testing.assert_array_equal(ph.batch_sizes.numpy(), pt.batch_sizes.numpy())
    assert ph.batch_sizes.dtype == hybrid.int64
    for name in ("sorted_indices", "unsorted_indices"):
        a, b = getattr(ph, name), getattr(pt, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)


# -- the packing functions ------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths", [[5, 4, 4, 2], [2, 5, 1, 4], [3, 3, 3, 3], [2, 4, 2, 4]])
def test_pack_pad_roundtrip_matches_torch(batch_first, lengths):
    """pack_padded_sequence (enforce_sorted both ways) -> fields equal torch's;
    pad_packed_sequence with total_length and padding_value; gradients through both."""
    rng = np.random.default_rng(0)
    shape = (4, 5, 2) if batch_first else (5, 4, 2)
    x = rng.standard_normal(shape)
    sorted_ = lengths == sorted(lengths, reverse=True)
    for enforce in [True, False] if sorted_ else [False]:
        xt = torch.tensor(x, requires_grad=True)
        xh = hybrid.tensor(x, requires_grad=True)
        pt = tr.pack_padded_sequence(xt, torch.tensor(lengths), batch_first, enforce)
        ph = hr.pack_padded_sequence(xh, lengths, batch_first, enforce)
        assert isinstance(ph, hr.PackedSequence)
        _fields_equal(ph, pt)
        for total in (None, 7):
            at, lt = tr.pad_packed_sequence(pt, batch_first, padding_value=-2.5,
                                            total_length=total)
            ah, lh = hr.pad_packed_sequence(ph, batch_first, padding_value=-2.5,
                                            total_length=total)
            assert tuple(ah.shape) == tuple(at.shape)
            _close(ah, at, f"padded total_length={total}")
            np.testing.assert_array_equal(lh.numpy(), lt.numpy())
            assert lh.dtype == hybrid.int64
        w = rng.standard_normal(at.shape)
        (at * torch.tensor(w)).sum().backward()
        (ah * hybrid.tensor(w)).sum().backward()
        _close(xh.grad, xt.grad, "input grad")


def test_pack_padded_accepts_a_length_tensor_and_packed_sequence_roundtrip():
    x = np.random.default_rng(1).standard_normal((4, 3, 2))
    ph = hr.pack_padded_sequence(hybrid.tensor(x), hybrid.tensor([2, 4, 3]),
                                 enforce_sorted=False)
    pt = tr.pack_padded_sequence(torch.tensor(x), torch.tensor([2, 4, 3]), enforce_sorted=False)
    _fields_equal(ph, pt)
    # a PackedSequence rebuilt from its tensors (no Python copy of the sizes) pads the same
    again = hr.PackedSequence(ph.data, ph.batch_sizes, ph.sorted_indices)
    _fields_equal(again, pt)
    _close(hr.pad_packed_sequence(again)[0], tr.pad_packed_sequence(pt)[0])


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_matches_torch(batch_first, padding_side):
    rng = np.random.default_rng(2)
    seqs = [rng.standard_normal((n, 2, 3)) for n in (3, 5, 1)]
    st = [torch.tensor(s, requires_grad=True) for s in seqs]
    sh_ = [hybrid.tensor(s, requires_grad=True) for s in seqs]
    at = tr.pad_sequence(st, batch_first, 1.5, padding_side)
    ah = hr.pad_sequence(sh_, batch_first=batch_first, padding_value=1.5,
                         padding_side=padding_side)
    assert tuple(ah.shape) == tuple(at.shape)
    _close(ah, at)
    w = rng.standard_normal(at.shape)
    (at * torch.tensor(w)).sum().backward()
    (ah * hybrid.tensor(w)).sum().backward()
    for a, b in zip(sh_, st):
        _close(a.grad, b.grad)


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_and_unpack_match_torch(enforce_sorted):
    rng = np.random.default_rng(3)
    lens = [4, 3, 3, 1] if enforce_sorted else [2, 4, 1, 3]
    seqs = [rng.standard_normal((n, 3)) for n in lens]
    pt = tr.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted)
    ph = hr.pack_sequence([hybrid.tensor(s) for s in seqs], enforce_sorted)
    _fields_equal(ph, pt)
    for a, b in zip(hr.unpack_sequence(ph), tr.unpack_sequence(pt)):
        _close(a, b)
    for batch_first in (False, True):
        padded = tr.pad_sequence([torch.tensor(s) for s in seqs], batch_first)
        got = hr.unpad_sequence(hybrid.tensor(_np(padded)), lens, batch_first)
        want = tr.unpad_sequence(padded, torch.tensor(lens), batch_first)
        assert len(got) == len(want)
        for a, b in zip(got, want):
            _close(a, b)


# -- recurrent layers over PackedSequences ----------------------------------------------------

# (kind, num_layers, bidirectional, batch_first, enforce_sorted, initial state)
LAYER_CASES = [
    (kind, layers, bidir, batch_first, enforce, init)
    for kind in CLASSES
    for layers, bidir, batch_first, enforce, init in [
        (1, False, False, True, False),
        (1, True, True, False, True),
        (2, False, True, False, True),
        (2, True, False, True, True),
        (2, True, True, False, False),
    ]
]


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first,enforce_sorted,init",
                         LAYER_CASES)
def test_layer_on_packed_input_matches_torch(kind, num_layers, bidirectional, batch_first,
                                             enforce_sorted, init):
    """Packed output, h_n (c_n), pad_packed_sequence of the output, and the gradients of the
    padded input, the initial states and every parameter, against torch."""
    t, m = _pair(kind, num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=batch_first)
    rng = np.random.default_rng(4)
    lengths = [5, 4, 2, 2] if enforce_sorted else [2, 5, 1, 4]
    x = rng.standard_normal((4, 5, 3) if batch_first else (5, 4, 3))
    xt, xh = torch.tensor(x, requires_grad=True), hybrid.tensor(x, requires_grad=True)
    dirs = 2 if bidirectional else 1
    states_t = states_h = None
    if init:
        out_size = 4 if kind == "lstm_proj" else HIDDEN
        sizes = [out_size] + ([HIDDEN] if kind.startswith("lstm") else [])
        s0 = [rng.standard_normal((num_layers * dirs, 4, n)) for n in sizes]
        st0 = [torch.tensor(s, requires_grad=True) for s in s0]
        sh0 = [hybrid.tensor(s, requires_grad=True) for s in s0]
        states_t = tuple(st0) if len(s0) == 2 else st0[0]
        states_h = tuple(sh0) if len(s0) == 2 else sh0[0]
    pt = tr.pack_padded_sequence(xt, lengths, batch_first, enforce_sorted)
    ph = hr.pack_padded_sequence(xh, lengths, batch_first, enforce_sorted)
    ot, nt = t(pt, states_t)
    oh, nh = m(ph, states_h)
    assert isinstance(oh, hr.PackedSequence)
    _fields_equal(oh, ot)
    for a, b in zip(_tuple(nh), _tuple(nt)):
        _close(a, b, "final state")
    at, _ = tr.pad_packed_sequence(ot, batch_first, padding_value=0.5, total_length=6)
    ah, _ = hr.pad_packed_sequence(oh, batch_first, padding_value=0.5, total_length=6)
    _close(ah, at, "padded output")
    w = rng.standard_normal(at.shape)
    ws = [rng.standard_normal(s.shape) for s in _tuple(nt)]
    loss_t = (at * torch.tensor(w)).sum() + sum((s * torch.tensor(v)).sum()
                                                for s, v in zip(_tuple(nt), ws))
    loss_h = (ah * hybrid.tensor(w)).sum() + sum((s * hybrid.tensor(v)).sum()
                                                 for s, v in zip(_tuple(nh), ws))
    loss_t.backward()
    loss_h.backward()
    _close(xh.grad, xt.grad, "input grad", rtol=1e-9)
    if init:
        for a, b in zip(sh0, st0):
            _close(a.grad, b.grad, "initial state grad", rtol=1e-9)
    for name, p in t.named_parameters():
        _close(m.get_parameter(name).grad, p.grad, name, rtol=1e-9)


def test_user_built_packed_sequence_matches_torch():
    """PackedSequence(data, batch_sizes, sorted_indices) built by hand (float32, then .double())
    into LSTM(proj_size, bias=False): output fields, states, data and parameter gradients."""
    t, m = _pair("lstm_proj", bias=False)
    d = np.random.default_rng(9).standard_normal((6, 3)).astype(np.float32)
    dt = torch.tensor(d.astype(np.float64), requires_grad=True)
    dh = hybrid.tensor(d, requires_grad=True)
    pt = tr.PackedSequence(dt, torch.tensor([3, 2, 1]), torch.tensor([2, 0, 1]))
    ph = hr.PackedSequence(dh, hybrid.tensor([3, 2, 1]), hybrid.tensor([2, 0, 1])).double()
    assert ph.data.dtype == hybrid.float64 and ph.batch_sizes.dtype == hybrid.int64
    _fields_equal(ph, pt)
    ot, (ht, ct) = t(pt)
    oh, (hh, ch) = m(ph)
    _fields_equal(oh, ot)
    _close(hh, ht, "h_n")
    _close(ch, ct, "c_n")
    (ot.data.sum() + ht.sum() + (ct * ct).sum()).backward()
    (oh.data.sum() + hh.sum() + (ch * ch).sum()).backward()
    _close(dh.grad, dt.grad.float(), "data grad", rtol=1e-6, atol=1e-7)
    for name, p in t.named_parameters():
        _close(m.get_parameter(name).grad, p.grad, name, rtol=1e-9)


@pytest.mark.parametrize("num_layers,bidirectional,layout", [
    (1, False, "seq_first"), (2, True, "batch_first"), (2, False, "unbatched")])
def test_lstm_proj_size_unpacked_matches_torch(num_layers, bidirectional, layout):
    """LSTM(proj_size) on plain tensors with (h_0, c_0): parameter shapes and order, output,
    (h_n, c_n), gradients of the input, the initial states and every parameter."""
    t, m = _pair("lstm_proj", num_layers=num_layers, bidirectional=bidirectional,
                 batch_first=layout == "batch_first")
    for name, p in t.named_parameters():
        assert tuple(m.get_parameter(name).shape) == tuple(p.shape), name
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in t.named_parameters()]
    shape = {"seq_first": (4, 3, 3), "batch_first": (3, 4, 3), "unbatched": (4, 3)}[layout]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    xt, xh = torch.tensor(x, requires_grad=True), hybrid.tensor(x, requires_grad=True)
    batch = () if layout == "unbatched" else (3,)
    layers = num_layers * (2 if bidirectional else 1)
    s0 = [rng.standard_normal((layers, *batch, n)) for n in (4, HIDDEN)]  # h_0 is proj_size
    st0 = [torch.tensor(v, requires_grad=True) for v in s0]
    sh0 = [hybrid.tensor(v, requires_grad=True) for v in s0]
    ot, (ht, ct) = t(xt, tuple(st0))
    oh, (hh, ch) = m(xh, tuple(sh0))
    _close(oh, ot, "output")
    _close(hh, ht, "h_n")
    _close(ch, ct, "c_n")
    w = rng.standard_normal(ot.shape)
    ((ot * torch.tensor(w)).sum() + ht.sum() + 2 * ct.sum()).backward()
    ((oh * hybrid.tensor(w)).sum() + hh.sum() + 2 * ch.sum()).backward()
    _close(xh.grad, xt.grad, "input grad", rtol=1e-9)
    for a, b in zip(sh0, st0):
        _close(a.grad, b.grad, "initial state grad", rtol=1e-9)
    for name, p in t.named_parameters():
        _close(m.get_parameter(name).grad, p.grad, name, rtol=1e-9)


# -- independent references -----------------------------------------------------------------


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def _numpy_lstm(x, lengths, params, proj):
    """A one-layer LSTM (with projection w_hr when proj) over padded x (T, B, I) in float64,
    each sequence stopped at its own length: (outputs (T, B, H_out) zero past the end, h_n, c_n)."""
    w_ih, w_hh, b_ih, b_hh = (params[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0",
                                                  "bias_hh_l0"))
    w_hr = params.get("weight_hr_l0")
    steps, batch, _ = x.shape
    hidden = w_hh.shape[0] // 4
    out = np.zeros((steps, batch, w_hh.shape[1]))
    h_n, c_n = np.zeros((batch, w_hh.shape[1])), np.zeros((batch, hidden))
    for b in range(batch):
        h, c = np.zeros(w_hh.shape[1]), np.zeros(hidden)
        for t in range(lengths[b]):
            g = w_ih @ x[t, b] + b_ih + w_hh @ h + b_hh
            i, f, gg, o = np.split(g, 4)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
            h = _sigmoid(o) * np.tanh(c)
            if proj:
                h = w_hr @ h
            out[t, b] = h
        h_n[b], c_n[b] = h, c
    return out, h_n, c_n


@pytest.mark.parametrize("proj", [False, True])
def test_packed_lstm_matches_numpy_loop(proj):
    """Unsorted packed LSTM against a float64 numpy loop over each sequence on its own."""
    hybrid.manual_seed(1)
    m = hybrid.nn.LSTM(3, 5, proj_size=2 if proj else 0).double()
    params = {k: _np(v) for k, v in m.state_dict().items()}
    x = np.random.default_rng(6).standard_normal((4, 3, 3))
    lengths = [2, 4, 1]
    want, h_want, c_want = _numpy_lstm(x, lengths, params, proj)
    out, (h_n, c_n) = m(hr.pack_padded_sequence(hybrid.tensor(x), lengths,
                                                enforce_sorted=False))
    padded, lens = hr.pad_packed_sequence(out)
    np.testing.assert_allclose(_np(padded), want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(_np(h_n)[0], h_want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(_np(c_n)[0], c_want, rtol=1e-12, atol=1e-13)
    assert lens.tolist() == lengths


def test_packed_bidirectional_gru_gradient_matches_finite_differences():
    """d/d(input, h_0) of a packed bidirectional GRU, by central differences in float64."""
    from gradcheck import gradcheck

    hybrid.manual_seed(2)
    m = hybrid.nn.GRU(2, 3, bidirectional=True).double()
    rng = np.random.default_rng(7)

    def fn(x, h0):
        out, h_n = m(hr.pack_padded_sequence(x, [1, 3], enforce_sorted=False), h0)
        return hr.pad_packed_sequence(out, padding_value=0.3)[0], h_n

    gradcheck(fn, rng.standard_normal((3, 2, 2)), rng.standard_normal((2, 2, 3)))


# -- compiled -------------------------------------------------------------------------------


def test_packed_lstm_compiled_matches_eager(compiled_backend):
    """pack (unsorted) -> bidirectional LSTM(proj_size) -> pad, forward and backward
    inside @hybrid.compile, against eager: output, states, input and parameter gradients."""
    lengths = [3, 4, 2]
    x = np.random.default_rng(8).standard_normal((3, 4, 4)).astype(np.float32)

    def step(m, x):
        packed = hr.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, c_n) = m(packed)
        padded, _ = hr.pad_packed_sequence(out, batch_first=True, total_length=5)
        loss = (padded * padded).sum() + h_n.sum() + c_n.sum()
        loss.backward()
        return padded, h_n, c_n

    def run(fn):
        hybrid.manual_seed(3)
        m = hybrid.nn.LSTM(4, 5, bidirectional=True, batch_first=True, proj_size=3)
        xs = hybrid.tensor(x, requires_grad=True)
        outs = fn(m, xs)
        return outs, xs.grad, [(n, p.grad) for n, p in m.named_parameters()]

    oe, ge, pe = run(step)
    oc, gc, pc = run(hybrid.compile(step))
    for a, b in zip(oc, oe):
        assert_matches_eager(a, b)
    assert_matches_eager(gc, ge, "input grad")
    for (name, a), (_, b) in zip(pc, pe):
        assert_matches_eager(a, b, name)


def test_compiled_function_rebuilds_and_returns_a_packed_sequence(compiled_backend):
    """Inside @hybrid.compile: PackedSequence(f(p.data), p.batch_sizes, ...) and _replace (the
    idiom for a layer on packed data) into a GRU; the returned PackedSequence's fields and its
    padding equal eager's, for two lengths lists (each its own graph)."""
    hybrid.manual_seed(4)
    lin, m = hybrid.nn.Linear(3, 3), hybrid.nn.GRU(3, 4)
    x = hybrid.tensor(np.random.default_rng(10).standard_normal((4, 3, 3)).astype(np.float32))

    def run(x, lengths):
        p = hr.pack_padded_sequence(x, lengths, enforce_sorted=False)
        p = hr.PackedSequence(lin(p.data), p.batch_sizes, p.sorted_indices, p.unsorted_indices)
        return m(p._replace(data=p.data.tanh()))[0]

    compiled = hybrid.compile(run)
    for lengths in ([2, 4, 3], [4, 1, 3]):
        got, want = compiled(x, lengths), run(x, lengths)
        assert isinstance(got, hr.PackedSequence) and got.batch_sizes.device.type == "cpu"
        for name in hr.PackedSequence._fields:
            assert_matches_eager(getattr(got, name), getattr(want, name), name)
        assert_matches_eager(hr.pad_packed_sequence(got)[0], hr.pad_packed_sequence(want)[0])
    assert compiled.compile_count == 2


# -- errors ---------------------------------------------------------------------------------


def _both_raise(call_h, call_t, match):
    """hybrid raises a HybridError naming the op; torch raises too."""
    with pytest.raises(hybrid.errors.HybridError, match=match):
        call_h()
    with pytest.raises((RuntimeError, ValueError)):
        call_t()


def test_unsorted_lengths_with_enforce_sorted_raise():
    x = np.zeros((4, 3, 2))
    _both_raise(lambda: hr.pack_padded_sequence(hybrid.tensor(x), [2, 4, 1]),
                lambda: tr.pack_padded_sequence(torch.tensor(x), [2, 4, 1]),
                r"pack_padded_sequence.*sorted in decreasing order")
    seqs = [np.zeros((n, 2)) for n in (1, 3)]
    _both_raise(lambda: hr.pack_sequence([hybrid.tensor(s) for s in seqs]),
                lambda: tr.pack_sequence([torch.tensor(s) for s in seqs]),
                r"pack_padded_sequence.*enforce_sorted")


@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_longer_than_the_sequence_raise(batch_first):
    x = np.zeros((3, 4, 2) if batch_first else (4, 3, 2))
    # NOTE: torch 2.13 on the CPU does not check this; it reads past the end of the input
    with pytest.raises(hybrid.errors.HybridError, match=r"pack_padded_sequence.*5.*longer.*4 "
                       r"steps"):
        hr.pack_padded_sequence(hybrid.tensor(x), [5, 2, 1], batch_first)


def test_bad_lengths_raise():
    x = np.zeros((4, 3, 2))
    _both_raise(lambda: hr.pack_padded_sequence(hybrid.tensor(x), [3, 2]),
                lambda: tr.pack_padded_sequence(torch.tensor(x), [3, 2]),
                r"pack_padded_sequence.*len\(lengths\).*batch_size")
    _both_raise(lambda: hr.pack_padded_sequence(hybrid.tensor(x), [3, 2, 0]),
                lambda: tr.pack_padded_sequence(torch.tensor(x), [3, 2, 0]),
                r"pack_padded_sequence.*greater than 0")
    p = np.zeros((4, 3, 2))
    _both_raise(lambda: hr.pad_packed_sequence(hr.pack_padded_sequence(hybrid.tensor(p),
                                                                       [4, 2, 1]),
                                               total_length=3),
                lambda: tr.pad_packed_sequence(tr.pack_padded_sequence(torch.tensor(p),
                                                                       [4, 2, 1]),
                                               total_length=3),
                r"pad_packed_sequence.*total_length")


def test_bad_pad_sequence_arguments_raise():
    _both_raise(lambda: hr.pad_sequence([hybrid.zeros(2)], padding_side="up"),
                lambda: tr.pad_sequence([torch.zeros(2)], padding_side="up"),
                r"pad_sequence: Expected padding_side to be one of left or right")
    _both_raise(lambda: hr.pad_sequence([]), lambda: tr.pad_sequence([]),
                r"pad_sequence: received an empty list")


@pytest.mark.parametrize("proj_size", [6, 7])
def test_proj_size_not_smaller_than_hidden_raises(proj_size):
    _both_raise(lambda: hybrid.nn.LSTM(3, 6, proj_size=proj_size),
                lambda: torch.nn.LSTM(3, 6, proj_size=proj_size),
                r"LSTM.*proj_size.*smaller than hidden_size")


@pytest.mark.parametrize("cls", ["RNN", "GRU"])
def test_proj_size_on_rnn_or_gru_raises(cls):
    _both_raise(lambda: getattr(hybrid.nn, cls)(3, 6, proj_size=2),
                lambda: getattr(torch.nn, cls)(3, 6, proj_size=2),
                rf"{cls}: proj_size argument is only supported for LSTM")


def test_packed_sequence_or_length_tensor_passed_into_compile_raises():
    """Their values would be baked into the graph (the cache key sees shapes only): a later
    call with other lengths of the same shapes would reuse them."""
    m = hybrid.nn.GRU(3, 4)
    x = hybrid.randn(4, 3, 3)
    run = hybrid.compile(lambda p: m(p)[1])
    for lengths in ([4, 2, 2], [4, 3, 1]):  # same shapes, other batch sizes
        with pytest.raises(hybrid.errors.TraceError, match=r"PackedSequence.*pack_padded_seq"):
            run(hr.pack_padded_sequence(x, lengths))
    pack = hybrid.compile(lambda x, n: hr.pack_padded_sequence(x, n).data)
    with pytest.raises(hybrid.errors.TraceError, match=r"pack_padded_sequence.*list of ints"):
        pack(x, hybrid.tensor([4, 2, 2]))
    captured = hybrid.tensor([4, 2, 2])
    pack = hybrid.compile(lambda x: hr.pack_padded_sequence(x, captured).data)
    with pytest.raises(hybrid.errors.TraceError, match=r"pack_padded_sequence.*list of ints"):
        pack(x)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "lstm_proj", "gru"])
def test_wrong_input_size_of_packed_data_raises(kind):
    t, m = _pair(kind)
    x = np.zeros((4, 2, 5))
    _both_raise(lambda: m(hr.pack_padded_sequence(hybrid.tensor(x), [4, 3])),
                lambda: t(tr.pack_padded_sequence(torch.tensor(x), [4, 3])),
                r"(RNN|LSTM|GRU): input.size\(-1\) must be equal to input_size. Expected 3, "
                r"got 5")


def test_packed_data_of_wrong_rank_or_dtype_raises():
    t, m = _pair("gru")
    x3 = np.zeros((4, 2, 2, 3))
    _both_raise(lambda: m(hr.pack_padded_sequence(hybrid.tensor(x3), [4, 3])),
                lambda: t(tr.pack_padded_sequence(torch.tensor(x3), [4, 3])),
                r"GRU: input must have 2 dimensions, got 3")
    x = np.zeros((4, 2, 3), np.float32)
    _both_raise(lambda: m(hr.pack_padded_sequence(hybrid.tensor(x), [4, 3])),
                lambda: t(tr.pack_padded_sequence(torch.tensor(x), [4, 3])),
                r"GRU: input dtype \(hybrid.float32\) does not match weight dtype")


def test_wrong_initial_state_with_packed_input_raises():
    t, m = _pair("lstm_proj")
    x = np.zeros((4, 2, 3))
    bad = (np.zeros((1, 2, HIDDEN)), np.zeros((1, 2, HIDDEN)))  # h_0 must be proj_size wide
    _both_raise(lambda: m(hr.pack_padded_sequence(hybrid.tensor(x), [4, 3]),
                          tuple(hybrid.tensor(b) for b in bad)),
                lambda: t(tr.pack_padded_sequence(torch.tensor(x), [4, 3]),
                          tuple(torch.tensor(b) for b in bad)),
                r"LSTM: Expected hidden\[0\] size \(1, 2, 4\), got \[1, 2, 6\]")
