"""The op suite and a whole training run compiled on the native CPU backend: results (and
gradients computed inside the compiled function) match eager execution."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F
from hybrid.config import config

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_ops

RTOL, ATOL = 2e-5, 2e-5


def test_native_is_the_default_backend():
    assert os.environ.get("HYBRID_BACKEND", "native") == "native"
    assert config.backend == "native"


def _tensor_args(sample, dtype):
    args = [test_ops.to_hybrid(a, dtype) for a in sample.args]
    kwargs = {k: test_ops.to_hybrid(v, dtype) for k, v in sample.kwargs.items()}
    return args, kwargs


def _close(got, want, name):
    got, want = test_ops._outputs(got), test_ops._outputs(want)
    assert len(got) == len(want), name
    for g, w in zip(got, want):
        gv, wv = g.detach().numpy(), w.detach().numpy()
        assert gv.shape == wv.shape and gv.dtype == wv.dtype, (name, gv.shape, wv.shape)
        if gv.dtype.kind == "f":
            tol = 50 if g.dtype is hybrid.float16 else 1
            np.testing.assert_allclose(gv, wv, rtol=RTOL * tol, atol=ATOL * tol, equal_nan=True,
                                       err_msg=name)
        else:
            np.testing.assert_array_equal(gv, wv, err_msg=name)


def _is_random(info) -> bool:
    return any(w in info.name for w in ("rand", "dropout", "bernoulli", "multinomial"))


OPS = [o for o in test_ops.OPS if not _is_random(o)]


@pytest.mark.parametrize("info", OPS, ids=lambda o: o.name)
def test_op_compiled_matches_eager(info):
    rng = np.random.default_rng(0)
    dt = hybrid.float32 if hybrid.float32 in info.dtypes else info.dtypes[0]
    for sample in info.samples(rng, dt):
        args, kwargs = _tensor_args(sample, dt)
        want = info.op(*args, **kwargs)
        fn = hybrid.compile(lambda *a, **k: info.op(*a, **k))
        got = fn(*args, **kwargs)
        _close(got, want, f"{info.name} {sample}")


@pytest.mark.parametrize("info", [o for o in OPS if o.grad], ids=lambda o: o.name)
def test_op_gradient_compiled_matches_eager(info):
    rng = np.random.default_rng(1)
    dt = hybrid.float32
    for sample in info.samples(rng, dt):
        args, kwargs = _tensor_args(sample, dt)
        leaves = [a for a in args if isinstance(a, hybrid.Tensor) and a.dtype.is_floating]
        if not leaves or any(a.numel() == 0 for a in leaves):
            continue
        for a in leaves:
            a.requires_grad_(True)

        def loss_and_grads(*xs):
            out = test_ops._outputs(info.op(*xs, **kwargs))
            total = sum((o * o).sum() for o in out if o.dtype.is_floating)
            grads = hybrid.autograd.grad(total, [x for x in xs if isinstance(x, hybrid.Tensor)
                                                 and x.requires_grad], allow_unused=True)
            return [g for g in grads if g is not None]

        if not any(o.dtype.is_floating for o in test_ops._outputs(info.op(*args, **kwargs))):
            continue
        want = loss_and_grads(*args)
        got = hybrid.compile(loss_and_grads)(*args)
        _close(list(got), list(want), f"grad {info.name} {sample}")


# --- a whole training run -------------------------------------------------------------------------

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


@pytest.fixture(scope="module")
def digits():
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    sys.path.insert(0, os.path.abspath(EXAMPLES))
    import train_digits

    return train_digits


def _train(td, compiled: bool, epochs: int):
    hybrid.manual_seed(0)
    x_train, y_train, x_test, y_test = td.load_data(0)
    loader = hybrid.data.DataLoader(hybrid.data.TensorDataset(x_train, y_train), batch_size=64,
                                    shuffle=True)
    model = td.MLP()
    opt = hybrid.optim.Adam(model.parameters(), lr=1e-3)
    step = hybrid.compile(td.train_step) if compiled else td.train_step
    losses = []
    for _ in range(epochs):
        for x, y in loader:
            losses.append(step(model, opt, x, y).item())
    return losses, td.accuracy(model, x_test, y_test), step


def test_training_eager_and_compiled_agree(digits):
    eager, acc_e, _ = _train(digits, False, 3)
    native, acc_n, step = _train(digits, True, 3)
    assert len(eager) == len(native)
    np.testing.assert_allclose(native[:10], eager[:10], rtol=1e-4)  # float32 rounding only
    np.testing.assert_allclose(native, eager, rtol=5e-2)
    assert abs(acc_e - acc_n) < 0.03
    # full batches before and after .grad exists (zero_grad first), and the last, smaller one
    assert step.cache_size() == 3


def test_compiled_training_reaches_95_percent(digits):
    _, acc, _ = _train(digits, True, 30)
    assert acc >= 0.95


def test_profile_lists_every_plan_step_with_its_time():
    hybrid.manual_seed(0)
    w = hybrid.randn(64, 32)

    @hybrid.compile
    def f(x):
        return F.softmax(x @ w, -1).sum()

    x = hybrid.randn(16, 64)
    text = f.profile(x, repeats=3)
    lines = text.split("\n")
    steps = f.last_entry.run.plan.steps
    # a header, one line per step, the total, the GEMM summary
    assert len(lines) == len(steps) + 3
    assert "gemm" in lines[1] and lines[-2].split()[0] == "all"
    assert all(float(ln.split()[1]) >= 0 for ln in lines[1:-1])
    # the GEMM's rate is its 2 m n k flops over its time: 2 * 16 * 32 * 64
    us, rate = float(lines[1].split()[1]), float(lines[1].split()[3])  # us printed to 0.1
    flops = 2 * 16 * 32 * 64
    assert flops / (us + 0.05) / 1e3 - 0.05 <= rate <= flops / max(us - 0.05, 1e-9) / 1e3 + 0.05
    assert lines[-1].startswith("gemm steps:") and "GFLOP/s" in lines[0]
    assert f"{2 * 16 * 32 * 64 / 1e9:.4g} GFLOP at" in lines[-1]
    np.testing.assert_allclose(f(x).item(), F.softmax(x @ w, -1).sum().item(), rtol=1e-5)


def test_in_place_update_reading_another_view_of_the_same_memory():
    """w -= 0.1 * (wd @ b) with wd = w.detach(): the product must use w as it was before the
    update. The plan is one GEMM writing w in place; BLAS writing C while reading it as A is
    undefined (the BLAS libraries here happen to pack A first), so wd is passed as a copy."""
    rng = np.random.default_rng(1)
    m, n = 64, 2048  # k = n: BLAS makes several passes over k, re-reading A after writing C
    b = hybrid.tensor(rng.standard_normal((n, n)).astype(np.float32) / n)

    def step(w, wd, b):
        w -= 0.1 * (wd @ b)
        return w.sum()

    w0 = rng.standard_normal((m, n)).astype(np.float32)
    we = hybrid.tensor(w0.copy())
    step(we, we.detach(), b)
    compiled = hybrid.compile(step)
    for _ in range(2):  # the first call compiles, the second takes the cached plan
        wc = hybrid.tensor(w0.copy())
        compiled(wc, wc.detach(), b)
        np.testing.assert_allclose(wc.numpy(), we.numpy(), rtol=1e-4, atol=1e-4)


def test_profile_leaves_what_the_function_updates_in_place():
    hybrid.manual_seed(0)
    model = hybrid.nn.Linear(16, 4)
    opt = hybrid.optim.SGD(model.parameters(), lr=0.5)

    @hybrid.compile
    def step(x):
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    x = hybrid.randn(32, 16)
    before = [p.detach().numpy().copy() for p in model.parameters()]
    step.profile(x, repeats=3)
    for p, b in zip(model.parameters(), before):
        np.testing.assert_array_equal(p.detach().numpy(), b)


def test_fusion_resumes_where_a_value_is_realized_and_matches_a_fresh_run(monkeypatch):
    """A value fusion cannot inline is realized and fusion resumes at its node: each node is
    visited about once (not once per realization), and the program is the one a fusion from
    scratch with the final set of realized values builds."""
    from compiler.passes import fuse as fz

    hybrid.manual_seed(0)
    lstm = hybrid.nn.LSTM(4, 8, batch_first=True)

    def step(x):
        lstm(x)[0].sum().backward()
        return x.grad

    g = hybrid.compile(step)
    g(hybrid.randn(2, 5, 4, requires_grad=True))
    # the LSTM's time loop is a scan node; unrolled, it is the long graph this test wants
    from compiler.passes.unroll import unroll_scans

    graph = unroll_scans(g.last_entry.run.graph)
    visits, fusers = [0], []
    node, init = fz._Fuser._node, fz._Fuser.__init__

    def counting_node(self, n):
        visits[0] += 1
        return node(self, n)

    def keeping_init(self, *args):
        init(self, *args)
        fusers.append(self)

    monkeypatch.setattr(fz._Fuser, "_node", counting_node)
    monkeypatch.setattr(fz._Fuser, "__init__", keeping_init)
    program = fz.fusion(graph)
    realized_later = fusers[0].realized - fz._realized(graph)
    assert len(realized_later) >= 2  # the case being tested: several realizations
    assert visits[0] < 2 * len(graph.nodes)  # starting over would be (1 + realizations) x nodes
    fresh = fz._Fuser(graph, set(fusers[0].realized)).run()
    assert str(fresh) == str(program)
