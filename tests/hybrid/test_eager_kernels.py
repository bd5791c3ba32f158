"""Eager composites as native kernels (hybrid/eager_kernels.py) and the compiled eager optimizer
step (hybrid/optim/fused_step.py): the kernel path is taken once a signature is hot, gives the
numpy composite's values and gradients (first and second order) and PyTorch's where installed,
is not used while tracing or on the interpreter backend, and keeps eager's autograd checks."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
import hybrid.nn.functional as F
from hybrid import eager_kernels, nn, optim
from hybrid.optim import fused_step


def _torch():
    try:
        import torch as t
    except ImportError:
        return None
    return t


@pytest.fixture(autouse=True)
def _native(monkeypatch):
    monkeypatch.setattr(hybrid.config, "backend", "native")
    monkeypatch.setattr(eager_kernels.SETTINGS, "enabled", True)
    # NOTE: the small shapes here would only get hot after many calls (the compile budget)
    monkeypatch.setattr(eager_kernels.SETTINGS, "min_elements", 0)
    monkeypatch.setattr(fused_step, "MIN_ELEMENTS", 0)


def _off():
    """A context where the eager kernels are off: the numpy composites run."""
    class Off:
        def __enter__(self):
            self.prev = eager_kernels.SETTINGS.enabled
            eager_kernels.SETTINGS.enabled = False

        def __exit__(self, *a):
            eager_kernels.SETTINGS.enabled = self.prev
    return Off()


CASES = {
    "gelu": (lambda x: F.gelu(x), "gelu", lambda t, x: t.nn.functional.gelu(x)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), "gelu",
                  lambda t, x: t.nn.functional.gelu(x, approximate="tanh")),
    "silu": (lambda x: F.silu(x), "silu", lambda t, x: t.nn.functional.silu(x)),
    "softmax_last": (lambda x: F.softmax(x, -1), "softmax", lambda t, x: t.softmax(x, -1)),
    "softmax_dim0": (lambda x: F.softmax(x, 0), "softmax", lambda t, x: t.softmax(x, 0)),
    "log_softmax": (lambda x: F.log_softmax(x, 1), "log_softmax",
                    lambda t, x: t.log_softmax(x, 1)),
    "layer_norm": (lambda x: F.layer_norm(x, (x.shape[-1],)), "layer_norm",
                   lambda t, x: t.nn.functional.layer_norm(x, (x.shape[-1],))),
}


def _calls(name):
    return sum(c or 0 for k, c in eager_kernels.stats().items() if k[0] == name)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_matches_composite_and_torch(case, dtype):
    fn, name, tfn = CASES[case]
    rng = np.random.default_rng(len(case))
    a = (rng.standard_normal((6, 37)) * 3).astype(dtype)
    w = rng.standard_normal((6, 37)).astype(dtype)  # a non-uniform cotangent

    def run():
        x = hybrid.tensor(a, requires_grad=True)
        y = fn(x)
        (y * hybrid.tensor(w)).sum().backward()
        return y, x.grad.numpy()

    with _off():
        y_ref, g_ref = run()
    assert not y_ref.grad_fn.name().startswith(name.replace("_", "").capitalize())
    run()  # first sighting: numpy
    before = _calls(name)
    y, g = run()  # hot: the kernel
    assert _calls(name) == before + 1
    assert y.grad_fn.name() == "".join(p.capitalize() for p in name.split("_")) + "Backward"
    tol = 2e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(y.detach().numpy(), y_ref.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_allclose(g, g_ref, rtol=10 * tol, atol=10 * tol)
    t = _torch()
    if t is not None:
        xt = t.tensor(a, requires_grad=True)
        yt = tfn(t, xt)
        (yt * t.tensor(w)).sum().backward()
        np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(g, xt.grad.numpy(), rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("case", ["gelu", "softmax_last", "layer_norm"])
def test_second_order_gradients_through_a_kernel(case):
    fn = CASES[case][0]
    a = np.random.default_rng(1).standard_normal((4, 9))

    def second():
        x = hybrid.tensor(a, requires_grad=True)
        y = fn(x)
        (g,) = hybrid.autograd.grad((y * y).sum(), x, create_graph=True)
        g.sum().backward()
        return y.grad_fn.name(), x.grad.numpy()

    with _off():
        _, want = second()
    second()
    got_name, got = second()
    assert got_name.endswith("Backward") and got_name != "MulBackward"
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_layer_norm_weight_and_bias_gradients():
    rng = np.random.default_rng(2)
    a, wa, ba = rng.standard_normal((5, 8)), rng.standard_normal(8), rng.standard_normal(8)

    def run():
        x, w, b = (hybrid.tensor(v, requires_grad=True) for v in (a, wa, ba))
        F.layer_norm(x, (8,), w, b).pow(2).sum().backward()
        return [t.grad.numpy() for t in (x, w, b)]

    with _off():
        want = run()
    run()
    before = _calls("layer_norm")
    got = run()
    assert _calls("layer_norm") == before + 1
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_first_sighting_runs_numpy_and_compiles_nothing():
    x = hybrid.randn(3, 131)
    key = ("gelu", ("none",), (((3, 131), "f"),))
    eager_kernels._KERNELS.pop(key, None)
    eager_kernels._SEEN.pop(key, None)
    F.gelu(x)
    assert key not in eager_kernels._KERNELS
    F.gelu(x)
    assert key in eager_kernels._KERNELS


def test_small_signatures_and_models_wait_for_their_compile_budget(monkeypatch):
    monkeypatch.setattr(eager_kernels.SETTINGS, "min_elements", 1 << 18)
    monkeypatch.setattr(fused_step, "MIN_ELEMENTS", 1 << 20)
    small = hybrid.randn(64, 64)  # 4096 elements: hot after 64 calls
    key = ("silu", (), (((64, 64), "f"),))
    eager_kernels._KERNELS.pop(key, None)
    eager_kernels._SEEN.pop(key, None)
    for _ in range(63):
        F.silu(small)
    assert key not in eager_kernels._KERNELS
    F.silu(small)
    assert key in eager_kernels._KERNELS
    _, _, opt = _train(OPTS["adam"], 6, True)  # 163 parameters
    assert fused_step._compiled.get(opt) is None
    big = nn.Linear(1024, 1024)  # 1 M parameters: compiled on the third step
    opt = optim.SGD(big.parameters(), lr=0.1)
    for i in range(3):
        opt.zero_grad()
        big(hybrid.ones(1, 1024)).sum().backward()
        opt.step()
        assert (fused_step._compiled.get(opt) is not None) == (i == 2)


def test_not_used_while_tracing_or_on_the_interpreter(monkeypatch):
    x = hybrid.randn(7, 11)
    F.softmax(x, -1), F.softmax(x, -1)
    before = _calls("softmax")
    f = hybrid.compile(lambda x: F.softmax(x, -1))
    f(x), f(x)
    assert _calls("softmax") == before  # traced into f's graph, not a kernel call
    assert "reduce" in str(f.last_entry.graph) or "sum" in str(f.last_entry.graph)
    monkeypatch.setattr(hybrid.config, "backend", "interpreter")
    y = F.softmax(x, -1)
    assert _calls("softmax") == before
    with _off():
        want = F.softmax(x, -1)
    np.testing.assert_array_equal(y.numpy(), want.numpy())  # bit for bit the composite


def test_in_place_change_of_a_saved_input_is_caught():
    x = hybrid.randn(4, 5, requires_grad=True)
    for _ in range(2):
        h = x * 1
        y = F.gelu(h)
    assert y.grad_fn.name() == "GeluBackward"
    h.add_(1)
    with pytest.raises(hybrid.errors.AutogradError, match="modified by an in-place"):
        y.sum().backward()


def test_in_place_change_of_an_input_without_grad_is_caught_too():
    w = hybrid.ones(5)  # layer_norm's weight, not requiring grad
    x = hybrid.randn(4, 5, requires_grad=True)
    for _ in range(2):
        y = F.layer_norm(x, (5,), w)
    assert y.grad_fn.name() == "LayerNormBackward"
    w.mul_(2)
    with pytest.raises(hybrid.errors.AutogradError, match="modified by an in-place"):
        y.sum().backward()


def test_outputs_are_not_overwritten_by_later_calls():
    a, b = hybrid.randn(32, 32), hybrid.randn(32, 32)
    ys = [F.softmax(a, -1) for _ in range(3)]
    keep = ys[-1].numpy().copy()
    for _ in range(3):
        F.softmax(b, -1)
    np.testing.assert_array_equal(ys[-1].numpy(), keep)


def test_integer_and_half_inputs_keep_the_composite():
    x = hybrid.randn(4, 6).half()
    for _ in range(3):
        y = F.gelu(x)
    assert y.dtype == hybrid.float16
    assert not any(k[2][0][1] == "e" for k in eager_kernels.stats())


# --- the optimizer step -------------------------------------------------------------------------


OPTS = {
    "sgd_momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adamw_amsgrad": lambda ps: optim.AdamW(ps, lr=1e-2, amsgrad=True),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=1e-3),
}


def _train(make_opt, steps, enabled, schedule=False):
    prev = eager_kernels.SETTINGS.enabled
    eager_kernels.SETTINGS.enabled = enabled
    try:
        hybrid.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        opt = make_opt(net.parameters())
        x = hybrid.tensor(np.random.default_rng(3).standard_normal((10, 6)).astype(np.float32))
        y = hybrid.tensor(np.arange(10) % 3)
        losses = []
        for i in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            if schedule:
                opt.param_groups[0]["lr"] *= 0.7
            losses.append(loss.item())
        return losses, [p.detach().numpy().copy() for p in net.parameters()], opt
    finally:
        eager_kernels.SETTINGS.enabled = prev


@pytest.mark.parametrize("name", sorted(OPTS))
def test_compiled_optimizer_step_matches_numpy_steps(name):
    want_l, want_p, _ = _train(OPTS[name], 8, False, schedule=True)
    got_l, got_p, opt = _train(OPTS[name], 8, True, schedule=True)
    compiled = fused_step._compiled.get(opt)
    assert compiled is not None and compiled.compile_count == 1  # lr changes: runtime values
    np.testing.assert_allclose(got_l, want_l, rtol=1e-5, atol=1e-6)
    for g, e in zip(got_p, want_p):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_compiled_optimizer_step_matches_torch():
    t = _torch()
    if t is None:
        pytest.skip("torch is not installed")
    lin = nn.Linear(5, 4)
    tl = t.nn.Linear(5, 4)
    with t.no_grad():
        tl.weight.copy_(t.tensor(lin.weight.detach().numpy()))
        tl.bias.copy_(t.tensor(lin.bias.detach().numpy()))
    opt, topt = optim.Adam(lin.parameters(), lr=0.05), t.optim.Adam(tl.parameters(), lr=0.05)
    x = np.random.default_rng(4).standard_normal((7, 5)).astype(np.float32)
    for _ in range(6):
        opt.zero_grad()
        lin(hybrid.tensor(x)).pow(2).mean().backward()
        opt.step()
        topt.zero_grad()
        tl(t.tensor(x)).pow(2).mean().backward()
        topt.step()
    assert fused_step._compiled.get(opt) is not None
    # NOTE: Adam's update is nearly sign(g) * lr: float32 rounding of g near 0 moves it by
    # up to lr * 1e-4 over the steps, for either implementation against the other
    np.testing.assert_allclose(lin.weight.detach().numpy(), tl.weight.detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_a_parameter_without_grad_is_left_alone():
    a, b = hybrid.ones(3, requires_grad=True), hybrid.ones(3, requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5)
    for i in range(5):
        opt.zero_grad(set_to_none=True)
        ((a * 2).sum() if i != 3 else (b * 2).sum()).backward()
        opt.step()
    np.testing.assert_allclose(a.detach().numpy(), 1 - 0.5 * 2 * 4)
    np.testing.assert_allclose(b.detach().numpy(), 1 - 0.5 * 2)


def test_linear_weight_grad_is_contiguous():
    lin = nn.Linear(7, 5)
    lin(hybrid.randn(3, 7)).sum().backward()
    assert lin.weight.grad.numpy().flags.c_contiguous


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_kernel(reduction):
    rng = np.random.default_rng(5)
    a = rng.standard_normal((9, 5)).astype(np.float32)
    tgt = np.array([0, 4, 2, -100, 1, 3, 3, 0, 4])

    def run():
        x = hybrid.tensor(a, requires_grad=True)
        loss = F.cross_entropy(x, hybrid.tensor(tgt), reduction=reduction)
        (loss * loss).sum().backward()
        return loss.detach().numpy(), x.grad.numpy(), loss.grad_fn.name()

    with _off():
        want, gwant, _ = run()
    run()
    got, g, name = run()
    assert name == "CrossEntropyBackward"
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(g, gwant, rtol=1e-5, atol=1e-7)
    bad = tgt.copy()
    bad[2] = 7
    with pytest.raises(hybrid.errors.HybridIndexError, match="7 is out of bounds for 5"):
        F.cross_entropy(hybrid.tensor(a), hybrid.tensor(bad), reduction=reduction)


def test_the_switch_from_python_and_from_the_environment():
    from subproc import run_python

    hybrid.config.eager_kernels = False
    try:
        assert not eager_kernels.SETTINGS.enabled and not eager_kernels.active()
    finally:
        hybrid.config.eager_kernels = True
    assert eager_kernels.SETTINGS.enabled
    code = ("import hybrid, hybrid.nn.functional as F\n"
            "x = hybrid.randn(512, 1024)\n"
            "for _ in range(3): y = F.gelu(x)\n"
            "print(hybrid.config.eager_kernels, len(hybrid.eager_kernels.stats()))")
    for value, want in (("0", "False 0"), ("1", "True 1")):
        r = run_python(code, HYBRID_EAGER_KERNELS=value)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == want.split()
