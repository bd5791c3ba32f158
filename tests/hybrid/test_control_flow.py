"""hybrid.scan / while_loop / cond: eager (the plain loop) against float64 numpy, compiled against
eager (values and gradients, backward outside and inside the compiled function), one loop node
whatever the number of steps, PyTorch's autograd as an oracle, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from hybrid import errors

RNG = np.random.default_rng(0)


def T(a, rg: bool = False, dtype=np.float32):  # noqa: N802
    return hybrid.tensor(np.asarray(a, dtype), requires_grad=rg)


def _np(t):
    return t.detach().numpy()


# --- scan ---------------------------------------------------------------------------------------

def _rnn_ref(h, xs, w):
    """float64 reference of h = tanh(h @ w + x_t), ys = 2 h."""
    h = h.astype(np.float64)
    ys = []
    for x in xs:
        h = np.tanh(h @ w + x)
        ys.append(2 * h)
    return h, np.stack(ys)


def _rnn(h0, xs, w):
    def f(h, x):
        h = hybrid.tanh(h @ w + x)
        return h, h * 2
    return hybrid.scan(f, h0, xs)


def _data(steps=6):
    return (RNG.standard_normal((3, 4)) * 0.5, RNG.standard_normal((steps, 3, 4)),
            RNG.standard_normal((4, 4)) * 0.5)


def test_eager_scan_is_the_loop():
    h0, xs, w = _data()
    h, ys = _rnn(T(h0), T(xs), T(w))
    rh, rys = _rnn_ref(h0, xs, w)
    np.testing.assert_allclose(_np(h), rh, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(ys), rys, rtol=1e-5, atol=1e-6)


def test_scan_forms_reverse_dim_pytrees_length():
    xs = RNG.standard_normal((5, 2)).astype(np.float32)
    # reverse: a running sum from the end; ys keep their positions
    c, ys = hybrid.scan(lambda c, x: (c + x, c + x), T(np.zeros(2)), T(xs), reverse=True)
    np.testing.assert_allclose(_np(ys), np.cumsum(xs[::-1], 0)[::-1], rtol=1e-6)
    # dim=1 scans along the second dim and stacks along it
    _, ys = hybrid.scan(lambda c, x: (c + x, c * 1), T(np.zeros(5)), T(xs), dim=1)
    assert tuple(ys.shape) == (5, 2)
    np.testing.assert_allclose(_np(ys)[:, 1], xs[:, 0], rtol=1e-6)
    # nested carries and xs, y None, no xs with length=
    (a, b), none = hybrid.scan(lambda c, x: ((c[0] + x["u"], c[1] * 2), None),
                               (T(np.zeros(2)), T(np.ones(()))), {"u": T(xs)})
    assert none is None and float(b) == 32.0
    np.testing.assert_allclose(_np(a), xs.sum(0), rtol=1e-5)
    c, ys = hybrid.scan(lambda c, _: (c + 1, c), T(0.0), None, length=4)
    assert float(c) == 4.0 and _np(ys).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("reverse", [False, True])
def test_compiled_scan_matches_eager_values_and_gradients(compiled_backend, reverse):
    h0, xs, w = _data()

    def loss(h0, xs, w):
        def f(h, x):
            h = hybrid.tanh(h @ w + x)
            return h, h * 2
        h, ys = hybrid.scan(f, h0, xs, reverse=reverse)
        return h.sum() + (ys ** 2).sum()

    def run(fn):
        ts = [T(a, True) for a in (h0, xs, w)]
        out = fn(*ts)
        out.backward()
        return [float(out)] + [_np(t.grad) for t in ts]

    eager, compiled = run(loss), run(hybrid.compile(loss))
    assert compiled[0] == pytest.approx(eager[0], rel=1e-6)
    for e, c in zip(eager[1:], compiled[1:]):  # native tanh rounds differently from numpy's
        np.testing.assert_allclose(c, e, rtol=1e-5, atol=1e-5)


def test_scan_gradients_match_finite_differences():
    h0, xs, w = _data(4)

    def loss(h0, xs, w):
        h, ys = _rnn(h0, xs, w)
        return (h * h).sum() + ys.sum()

    ins = [hybrid.tensor(a, dtype=hybrid.float64, requires_grad=True) for a in (h0, xs, w)]
    assert hybrid.autograd.gradcheck(hybrid.compile(loss), ins, eps=1e-6, atol=1e-5)


def test_training_step_with_scan_inside_compile(compiled_backend):
    """zero_grad first (the tutorial order), backward and SGD inside the compiled step."""
    h0, xs, w = _data()
    models = [T(w, True) for _ in range(2)]
    opts = [hybrid.optim.SGD([m], lr=0.1, momentum=0.9) for m in models]

    def step(w, opt, h0, xs):
        opt.zero_grad()
        h, ys = _rnn(h0, xs, w)
        loss = (ys ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    cstep = hybrid.compile(step)
    for _ in range(3):
        le = step(models[0], opts[0], T(h0), T(xs))
        lc = cstep(models[1], opts[1], T(h0), T(xs))
        assert float(lc) == pytest.approx(float(le), rel=1e-5)
    np.testing.assert_allclose(_np(models[1]), _np(models[0]), rtol=1e-5, atol=1e-6)
    assert cstep.compile_count == 2  # SGD's first step (no momentum buffer yet), then the rest


def test_graph_size_does_not_grow_with_steps():
    sizes = []
    for steps in (3, 30, 300):
        h0, xs, w = _data(steps)
        f = hybrid.compile(lambda h0, xs, w: _rnn(h0, xs, w)[1])
        sizes.append(len(f.graph_for(T(h0), T(xs), T(w)).nodes))
    assert sizes[0] == sizes[1] == sizes[2] and sizes[0] < 10


def test_lstm_compiles_to_loops_not_an_unrolled_trace():
    lstm = hybrid.nn.LSTM(4, 8, num_layers=2)
    f = hybrid.compile(lambda x: lstm(x)[0])
    sizes = [len(f.graph_for(T(RNG.standard_normal((n, 2, 4)))).nodes) for n in (5, 50)]
    assert sizes[0] == sizes[1]
    assert any(n.op.value == "scan" for n in f.graph_for(T(np.ones((5, 2, 4)))).nodes)


def test_nested_scan_compiled_matches_eager():
    def inner(c, x):
        c2, _ = hybrid.scan(lambda a, b: (a * b + 1, None), c, x)
        return c2, c2.sum()

    def nested(c0, xs):
        c, ys = hybrid.scan(inner, c0, xs)
        return c.sum() + ys.sum()

    c0, xs = RNG.standard_normal(3) * 0.3, RNG.standard_normal((4, 5, 3)) * 0.5
    res = []
    for fn in (nested, hybrid.compile(nested)):
        a, b = T(c0, True), T(xs, True)
        out = fn(a, b)
        out.backward()
        res.append((float(out), _np(a.grad), _np(b.grad)))
    assert res[1][0] == pytest.approx(res[0][0], rel=1e-6)
    np.testing.assert_allclose(res[1][1], res[0][1], rtol=1e-5)
    np.testing.assert_allclose(res[1][2], res[0][2], rtol=1e-5, atol=1e-6)


def test_scan_gradients_match_torch():
    torch = pytest.importorskip("torch")
    h0, xs, w = _data()
    th = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in (h0, xs, w)]
    h = th[0]
    ys = []
    for x in th[1]:
        h = torch.tanh(h @ th[2] + x)
        ys.append(h * 2)
    (h.sum() + (torch.stack(ys) ** 2).sum()).backward()
    hy = [T(a, True) for a in (h0, xs, w)]
    hh, hys = hybrid.compile(_rnn)(*hy)
    (hh.sum() + (hys ** 2).sum()).backward()
    for a, b in zip(hy, th):
        np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), rtol=1e-4, atol=1e-5)


# --- while_loop -------------------------------------------------------------------------------

def _collatz(n, steps):
    return hybrid.while_loop(
        lambda n, s: n != 1,
        lambda n, s: (hybrid.where(n % 2 == 0, n // 2, 3 * n + 1), s + 1), (n, steps))


def test_while_loop_data_dependent_trip_count_compiles_once(compiled_backend):
    def ref(n):
        s = 0
        while n != 1:
            n, s = (n // 2 if n % 2 == 0 else 3 * n + 1), s + 1
        return s

    f = hybrid.compile(_collatz)
    for n in (27, 7, 1, 97):
        e = _collatz(hybrid.tensor(n), hybrid.tensor(0))
        c = f(hybrid.tensor(n), hybrid.tensor(0))
        assert int(c[1]) == int(e[1]) == ref(n) and int(c[0]) == 1
    assert f.compile_count == 1


def test_while_loop_single_carry_and_captured_tensor(compiled_backend):
    limit = T(10.0)

    def grow(x):
        return hybrid.while_loop(lambda x: x.sum() < limit, lambda x: x * 2, x)

    x = T([0.5, 0.25])
    np.testing.assert_array_equal(_np(hybrid.compile(grow)(x)), _np(grow(x)))
    np.testing.assert_array_equal(_np(grow(x)), [8.0, 4.0])


def test_while_loop_gradient_eager_works_compiled_refuses():
    x = T(1.5, True)
    y = hybrid.while_loop(lambda v: v < 10, lambda v: v * 2, x)
    y.backward()
    assert float(x.grad) == 8.0
    f = hybrid.compile(lambda x: hybrid.while_loop(lambda v: v < 10, lambda v: v * 2, x))
    with pytest.raises(errors.AutogradError, match="while_loop.*not differentiable"):
        f(T(1.5, True))


# --- cond ---------------------------------------------------------------------------------------

def test_cond_compiled_takes_the_branch_and_differentiates(compiled_backend):
    w0 = RNG.standard_normal((3, 3))

    def run(fn, x, w):
        out = fn(x, w)
        out.sum().backward()
        return _np(out), _np(x.grad), _np(w.grad)

    def g(x, w):
        return hybrid.cond(x.sum() > 0, lambda x: (x @ w).sin(), lambda x: (x * 2) @ w, (x,))

    cg = hybrid.compile(g)
    base = np.abs(RNG.standard_normal((2, 3)))
    for sign in (1, -1):
        e = run(g, T(sign * base, True), T(w0, True))
        c = run(cg, T(sign * base, True), T(w0, True))
        for a, b in zip(e, c):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    assert cg.compile_count == 1
    np.testing.assert_allclose(e[0], (-2 * base) @ w0, rtol=1e-5)


def test_cond_untaken_branch_error_is_not_raised(compiled_backend):
    table = T(np.arange(4.0))

    def pick(i):
        return hybrid.cond(i < 4, lambda i: table[i], lambda i: table[0] * 0 - 1, (i,))

    f = hybrid.compile(pick)
    assert float(f(hybrid.tensor(2))) == 2.0
    assert float(f(hybrid.tensor(9))) == -1.0  # table[9] is in the branch not taken
    assert float(pick(hybrid.tensor(9))) == -1.0


def test_cond_python_bool_predicate():
    assert float(hybrid.cond(True, lambda x: x + 1, lambda x: x - 1, (T(1.0),))) == 2.0


# --- errors -------------------------------------------------------------------------------------

def test_scan_carry_must_keep_its_type():
    with pytest.raises(errors.ShapeError, match=r"scan: .*carry.*f64\[2\].*f32\[2\]"):
        hybrid.scan(lambda c, x: (c.double(), x), T(np.zeros(2)), T(np.ones((3, 2))))
    f = hybrid.compile(lambda c, xs: hybrid.scan(lambda c, x: (c.sum(), x), c, xs)[0])
    with pytest.raises(errors.ShapeError, match=r"scan: .*test_control_flow.py"):
        f(T(np.zeros(2)), T(np.ones((3, 2))))


def test_scan_bad_arguments():
    with pytest.raises(errors.HybridError, match="pair"):
        hybrid.scan(lambda c, x: c, T(0.0), T(np.ones(3)))
    with pytest.raises(errors.ShapeError, match="different numbers of steps"):
        hybrid.scan(lambda c, x: (c, None), T(0.0), (T(np.ones(3)), T(np.ones(4))))
    with pytest.raises(errors.HybridError, match="must be a tensor"):
        hybrid.scan(lambda c, x: (c, None), 0.0, T(np.ones(3)))


def test_body_may_not_update_outside_tensors_or_draw_random():
    acc = T(np.zeros(2))

    def leaky(xs):
        def f(c, x):
            acc.add_(x)
            return c, None
        return hybrid.scan(f, T(0.0), xs)[0]

    with pytest.raises(errors.TraceError, match="in place"):
        hybrid.compile(leaky)(T(np.ones((3, 2))))

    def noisy(xs):
        return hybrid.scan(lambda c, x: (c + hybrid.nn.functional.dropout(x, 0.5).sum(), None),
                           T(0.0), xs)[0]

    with pytest.raises(errors.TraceError, match="random"):
        hybrid.compile(noisy)(T(np.ones((3, 2))))


def test_cond_branches_must_agree():
    f = hybrid.compile(lambda x: hybrid.cond(x.sum() > 0, lambda x: x, lambda x: x.sum(), (x,)))
    with pytest.raises(errors.ShapeError, match="same structure"):
        f(T(np.ones(3)))


def test_describe_shows_the_body():
    h0, xs, w = _data()
    f = hybrid.compile(_rnn)
    f(T(h0), T(xs), T(w))
    text = f.describe()
    assert "scan(" in text and "graph scan_body(" in text and "tanh" in text


# --- export: scans unroll, run-time loops and branches are refused ------------------------------

def test_exported_lstm_unrolls_its_scans(tmp_path):
    lstm = hybrid.nn.LSTM(4, 8, num_layers=2, bidirectional=True).eval()
    x = T(RNG.standard_normal((5, 2, 4)))
    with hybrid.no_grad():
        want = _np(lstm(x)[0])
    ep = hybrid.export(lstm, x)
    assert not any(n.op.value == "scan" for n in ep.graph.nodes)
    ep.save(tmp_path / "lstm.hyb")
    got = hybrid.load_exported(tmp_path / "lstm.hyb")(x)
    got = got[0] if isinstance(got, (tuple, list)) else got
    np.testing.assert_allclose(_np(got), want, rtol=1e-5, atol=1e-6)


def test_onnx_lstm_matches_eager(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    gru = hybrid.nn.GRU(4, 6, batch_first=True).eval()
    x = T(RNG.standard_normal((2, 7, 4)))
    with hybrid.no_grad():
        want = _np(gru(x)[0])
    hybrid.onnx.export(gru, (x,), tmp_path / "gru.onnx")
    s = ort.InferenceSession(str(tmp_path / "gru.onnx"))
    got = s.run(None, {s.get_inputs()[0].name: _np(x)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_export_refuses_while_and_cond():
    x = T(np.ones(3))
    with pytest.raises(errors.HybridError, match=r"while_loop .*cannot be exported"):
        hybrid.export(lambda x: hybrid.while_loop(lambda v: v.sum() < 10, lambda v: v * 2, x), x)
    with pytest.raises(errors.HybridError, match=r"cond .*cannot be exported"):
        hybrid.export(lambda x: hybrid.cond(x.sum() > 0, lambda v: v, lambda v: -v, (x,)), x)


def test_second_order_through_a_compiled_scan_is_refused():
    w = T(0.5, True)

    @hybrid.compile
    def f(w, xs):
        c, _ = hybrid.scan(lambda c, x: (c * w + x, None), T(0.0), xs)
        (g,) = hybrid.autograd.grad(c, [w], create_graph=True)
        return g

    with pytest.raises(errors.AutogradError, match="second-order.*scan"):
        f(w, T(np.ones(3)))


def test_saved_products_are_not_recomputed_in_the_backward():
    """The backward body reads each step's h @ w from the forward instead of multiplying again:
    one product fewer per step (the gradients themselves are checked above)."""
    h0, xs, w = _data()

    def step(h0, xs, w):
        h, ys = _rnn(h0, xs, w)
        ys.sum().backward()
        return w.grad

    f = hybrid.compile(step)
    f(T(h0), T(xs), T(w, True))
    run = f.last_entry.run
    run = getattr(run, "inner", run)
    loops = [s for s in run.steps if hasattr(s, "compiled")]
    assert len(loops) == 2  # the forward scan and the backward one
    from compiler.control_exec import _optimized

    body = loops[-1].attrs["body"].graph
    assert sum(n.op.value == "matmul" for n in _optimized(body).nodes) == 2  # dh and dw only


# --- detach(), no_grad() and custom Functions, in bodies and around them ------------------------

def _grads(fn, *arrays):
    ts = [T(a, True, np.float64) for a in arrays]
    fn(*ts).sum().backward()
    return [None if t.grad is None else _np(t.grad) for t in ts]


def _same_grads(fn, *arrays):
    eager = _grads(fn, *arrays)
    compiled = _grads(hybrid.compile(fn), *arrays)

    def step(*ts):
        out = fn(*ts).sum()
        out.backward()
        return out

    ts = [T(a, True, np.float64) for a in arrays]
    hybrid.compile(step)(*ts)
    inside = [None if t.grad is None else _np(t.grad) for t in ts]
    for e, c, i in zip(eager, compiled, inside):
        if e is None:  # NOTE: compiled gives zeros where eager leaves .grad None
            assert c is None or not c.any()
            assert i is None or not i.any()
        else:
            np.testing.assert_allclose(c, e, rtol=1e-10)
            np.testing.assert_allclose(i, e, rtol=1e-10)


def test_detach_and_no_grad_in_a_compiled_function_with_backward_outside():
    """The backward of `loss = compiled(x); loss.backward()` replays the traced code: detach()
    and no_grad() must cut it there too (it differentiated through both)."""
    def no_grad_block(a):
        with hybrid.no_grad():
            k = a * 3
        return k * a

    a = np.array([1.0, 2.0])
    _same_grads(lambda a: a.detach() * a, a)
    _same_grads(no_grad_block, a)
    assert _grads(hybrid.compile(lambda a: a.detach() * a), a)[0].tolist() == [1.0, 2.0]


def test_detach_and_no_grad_inside_scan_and_cond_bodies():
    xs = RNG.standard_normal((3, 2))
    w = RNG.standard_normal((2, 2))

    def scan_detach(a, xs):
        return hybrid.scan(lambda c, x: (c.detach() * x + c, None), a, xs)[0]

    def scan_no_grad(a, xs):
        def f(c, x):
            with hybrid.no_grad():
                k = c * 2
            return k * x + c, None
        return hybrid.scan(f, a, xs)[0]

    def cond_detach(a, w):
        return hybrid.cond(a.sum() > -100, lambda a: (w.detach() @ a) * a + w.sum(),
                           lambda a: a, (a,))

    _same_grads(scan_detach, np.array([1.0, 2.0]), xs)
    _same_grads(scan_no_grad, np.array([1.0, 2.0]), xs)
    _same_grads(cond_detach, np.array([0.5, -1.0]), w)


class _Ste(hybrid.autograd.Function):
    """round() forward, 3 x the gradient backward (not round's zero gradient)."""

    @staticmethod
    def forward(ctx, x):
        return x.round()

    @staticmethod
    def backward(ctx, g):
        return g * 3.0


def test_custom_function_backward_inside_bodies():
    a, xs = np.array([0.3, 1.7, -2.2]), RNG.standard_normal((4, 3))
    _same_grads(lambda a: hybrid.cond(a.sum() > -100, lambda a: _Ste.apply(a * 2),
                                      lambda a: a, (a,)), a)
    _same_grads(lambda a, xs: hybrid.scan(lambda c, x: (_Ste.apply(c * x) + c, None), a,
                                          xs)[0], a, xs)
    assert _grads(hybrid.compile(lambda a: hybrid.cond(
        a.sum() > -100, lambda a: _Ste.apply(a * 2), lambda a: a, (a,))), a)[0].tolist() == [6.0] * 3


def test_results_are_new_tensors_never_aliases(compiled_backend):
    a = T([1.0, 2.0])

    def f(a):
        c = hybrid.cond(a.sum() > 0, lambda a: a, lambda a: -a, (a,))
        carry, _ = hybrid.scan(lambda c, x: (c, None), a, None, length=0)
        w = hybrid.while_loop(lambda v: v.sum() > 100, lambda v: v * 2, a)
        return c, carry, w

    for fn in (f, hybrid.compile(f)):
        for out in fn(a):
            out.add_(100)
        assert _np(a).tolist() == [1.0, 2.0]


def test_length_and_dim_are_checked():
    with pytest.raises(errors.ShapeError, match="length must be >= 0"):
        hybrid.scan(lambda c, x: (c + 1, None), T(0.0), None, length=-2)
    with pytest.raises(errors.HybridIndexError, match="dim 5 is out of range"):
        hybrid.scan(lambda c, x: (c, None), T(0.0), T(np.ones((2, 3))), dim=5)
    with pytest.raises(errors.DTypeError, match="body_fn must return a tuple"):
        hybrid.while_loop(lambda a, b: a.sum() < 10, lambda a, b: a * 2, (T(1.0), T(2.0)))


def test_error_location_is_given_once():
    with pytest.raises(errors.HybridError) as e:
        hybrid.scan(lambda c, x: c, T(0.0), T(np.ones(3)))
    assert str(e.value).count("test_control_flow.py") == 1


def test_cond_and_while_loop_match_torch():
    """The same calls in torch's forms (torch.cond, torch._higher_order_ops.while_loop), eager
    and compiled, against PyTorch's values and gradients."""
    torch = pytest.importorskip("torch")
    from torch._higher_order_ops import while_loop as torch_while

    w0 = RNG.standard_normal((3, 3))
    for x0 in (np.array([0.5, -1.0, 2.0]), np.array([-0.5, -1.0, 0.2])):
        tx, tw = (torch.tensor(a, requires_grad=True) for a in (x0, w0))
        ty = torch.cond(tx.sum() > 0, lambda x: (x @ tw).sin(), lambda x: x * 2, (tx,))
        ty.sum().backward()

        def f(x, w):
            return hybrid.cond(x.sum() > 0, lambda x: (x @ w).sin(), lambda x: x * 2, (x,))

        for fn in (f, hybrid.compile(f)):
            hx, hw = T(x0, True, np.float64), T(w0, True, np.float64)
            hy = fn(hx, hw)
            hy.sum().backward()
            np.testing.assert_allclose(_np(hy), ty.detach().numpy(), rtol=1e-12)
            np.testing.assert_allclose(_np(hx.grad), tx.grad.numpy(), rtol=1e-12)
            # torch.cond gives an unused operand a zero gradient; eager hybrid leaves None
            want_w = tw.grad.numpy() if tw.grad is not None else np.zeros_like(w0)
            got_w = _np(hw.grad) if hw.grad is not None else np.zeros_like(w0)
            np.testing.assert_allclose(got_w, want_w, rtol=1e-12)
    want = torch_while(lambda i, v: i < 5, lambda i, v: (i + 1, v * 2),
                       (torch.tensor(0), torch.tensor(1.5)))
    for fn in (hybrid.while_loop, hybrid.compile(hybrid.while_loop)):
        got = fn(lambda i, v: i < 5, lambda i, v: (i + 1, v * 2),
                 (hybrid.tensor(0), hybrid.tensor(1.5)))
        assert [float(g) for g in got] == [float(t) for t in want]
