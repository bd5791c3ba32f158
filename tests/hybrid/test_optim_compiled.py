"""Every optimizer's step inside a compiled training step, in PyTorch's documented order
(zero_grad; forward; backward; step), against the same step run eagerly: loss, parameters,
gradients and optimizer state over 10 steps, on each backend. Hyperparameters changed between
calls (by hand and by lr schedulers) are runtime values of the compiled step.

Tests marked `compile_count` assert how often the step compiles (issue 7, item 1: at most twice,
once without gradients and once with; item 2: a changed hyperparameter never recompiles)."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid as h
import hybrid.nn.functional as F
from hybrid import nn, optim
from hybrid.optim import lr_scheduler

STEPS = 10

OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "sgd_momentum_wd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "sgd_nesterov": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
    "sgd_dampening_maximize": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.5, dampening=0.3,
                                                   maximize=True),
    "adam": lambda ps: optim.Adam(ps, lr=1e-2),
    "adam_amsgrad_wd": lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True, weight_decay=0.1),
    "adamw": lambda ps: optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=1e-2),
    "rmsprop_centered_momentum_wd": lambda ps: optim.RMSprop(ps, lr=1e-3, momentum=0.9,
                                                             centered=True, weight_decay=0.1),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
    "adagrad_decay_wd": lambda ps: optim.Adagrad(ps, lr=0.1, lr_decay=0.05, weight_decay=0.1,
                                                 initial_accumulator_value=0.1),
    "adadelta": lambda ps: optim.Adadelta(ps),
    "adadelta_wd": lambda ps: optim.Adadelta(ps, lr=0.5, weight_decay=0.1),
}
# NOTE: centered RMSprop divides by sqrt(E[g^2] - E[g]^2), a difference of near-equal numbers
# for steady gradients: float32 summation-order differences between eager's and the compiled
# GEMMs come out of it at 1e-5 relative (seen with OpenBLAS 0.3.31, on the interpreter too), so
# that case runs in float64, where the same amplification stays far below the tolerance.
FLOAT64 = {"rmsprop_centered_momentum_wd"}


def arr(t):
    return t.detach().numpy()


def make(opt_name):
    h.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    if opt_name in FLOAT64:
        model.double()
    return model, OPTIMIZERS[opt_name](model.parameters())


def train_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def batches(n=STEPS, dtype=None):
    h.manual_seed(123)
    return [(h.randn(10, 8, dtype=dtype), h.randint(0, 4, (10,))) for _ in range(n)]


def assert_same(m1, o1, m2, o2, rtol=1e-5, atol=1e-6):
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        np.testing.assert_allclose(arr(p2), arr(p1), rtol=rtol, atol=atol, err_msg=name)
        np.testing.assert_allclose(arr(p2.grad), arr(p1.grad), rtol=rtol, atol=atol,
                                   err_msg=name + ".grad")
        s1, s2 = o1.state[p1], o2.state[p2]
        assert sorted(s1) == sorted(s2)
        for k in s1:
            np.testing.assert_allclose(arr(s2[k]), arr(s1[k]), rtol=rtol, atol=atol,
                                       err_msg=f"{name} state {k}")


def run_both(opt_name, fn=train_step, each=None):
    """Eager and compiled runs of `fn` over the same batches; `each(i, opt)` edits hyperparameters
    before call i. Returns the compiled function (for its cache size)."""
    m1, o1 = make(opt_name)
    m2, o2 = make(opt_name)
    compiled = h.compile(fn)
    for i, (x, y) in enumerate(batches(dtype=h.float64 if opt_name in FLOAT64 else None)):
        if each is not None:
            each(i, o1)
            each(i, o2)
        le = fn(m1, o1, x, y)
        lc = compiled(m2, o2, x, y)
        np.testing.assert_allclose(arr(lc), arr(le), rtol=1e-5, atol=1e-6)
    assert_same(m1, o1, m2, o2)
    return compiled


@pytest.mark.usefixtures("compiled_backend")
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_compiled_step_matches_eager(opt_name):
    run_both(opt_name)


@pytest.mark.compile_count
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_compile_count_zero_grad_first(opt_name, monkeypatch):
    """Issue 7 item 1: compiled at most twice (the first call has no gradients yet)."""
    monkeypatch.setattr(h.config, "backend", "interpreter")
    compiled = run_both(opt_name)
    assert compiled.cache_size() <= 2


def varying():
    """An `each` for run_both: new values of every numeric hyperparameter at each call (never
    crossing zero), scaled from the values the groups started with."""
    first: dict[int, tuple[dict, dict]] = {}  # id(group) -> (group, its first values)

    def each(i, opt):
        for g in opt.param_groups:
            start = first.setdefault(id(g), (g, dict(g)))[1]
            g["lr"] = start["lr"] * (0.8 + 0.05 * i)
            for key in ("momentum", "weight_decay", "eps", "alpha", "rho", "lr_decay",
                        "dampening"):
                if key in g and g[key] != 0:
                    g[key] = start[key] * (1 - 0.03 * i)
            if "betas" in g:
                g["betas"] = (0.9 - 0.02 * i, 0.999 - 0.001 * i)

    return each


@pytest.mark.usefixtures("compiled_backend")
@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adam_amsgrad_wd", "adamw",
                                      "rmsprop_centered_momentum_wd", "adagrad_decay_wd",
                                      "adadelta"])
def test_hyperparameters_changed_between_calls(opt_name):
    """lr, momentum, betas, weight_decay, eps, ... changed before every call: compiled = eager."""
    run_both(opt_name, each=varying())


@pytest.mark.compile_count
@pytest.mark.parametrize("opt_name", ["sgd_momentum_wd", "adam_amsgrad_wd", "adamw",
                                      "rmsprop_centered_momentum_wd", "adagrad_decay_wd",
                                      "adadelta"])
def test_compile_count_hyperparameters_changed(opt_name, monkeypatch):
    """Issue 7 item 2: changing hyperparameters between calls never recompiles."""
    monkeypatch.setattr(h.config, "backend", "interpreter")
    compiled = run_both(opt_name, each=varying())
    assert compiled.cache_size() <= 2


@pytest.mark.usefixtures("compiled_backend")
def test_hyperparameter_set_to_zero_still_matches():
    """weight_decay 0.1 -> 0 -> 0.1 (a branch in the step): may recompile, never a stale result."""
    def each(i, opt):
        opt.param_groups[0]["weight_decay"] = 0.0 if i % 4 == 2 else 0.1

    compiled = run_both("sgd_momentum_wd", each=each)
    assert compiled.cache_size() <= 3


@pytest.mark.usefixtures("compiled_backend")
@pytest.mark.parametrize("sched", ["step", "onecycle_adam", "cosine_sgd", "plateau"])
def test_lr_scheduler_drives_a_compiled_step(sched):
    """A scheduler stepping between compiled calls gives eager's trajectory."""
    opt_name = {"onecycle_adam": "adam", "cosine_sgd": "sgd_momentum_wd"}.get(sched, "sgd")
    runs = []
    for compile_it in (False, True):
        model, opt = make(opt_name)
        if sched == "step":
            s = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        elif sched == "onecycle_adam":
            s = lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=STEPS)
        elif sched == "cosine_sgd":
            s = lr_scheduler.CosineAnnealingLR(opt, T_max=4)  # lr reaches exactly 0 at step 4
        else:
            s = lr_scheduler.ReduceLROnPlateau(opt, patience=1, factor=0.5)
        fn = h.compile(train_step) if compile_it else train_step
        losses, lrs = [], []
        for x, y in batches():
            loss = fn(model, opt, x, y)
            losses.append(loss.item())
            s.step(loss.item() * 100) if sched == "plateau" else s.step()
            lrs.append(opt.param_groups[0]["lr"])
        runs.append((losses, lrs, [arr(p) for p in model.parameters()], fn))
    (le, lre, pe, _), (lc, lrc, pc, compiled) = runs
    assert lrc == lre and len(set(lre)) > 1
    if sched == "cosine_sgd":
        assert 0.0 in lre
    np.testing.assert_allclose(lc, le, rtol=1e-5, atol=1e-6)
    for a, b in zip(pc, pe):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert compiled.cache_size() <= 2, "compile_count: a schedule recompiled the step"


def test_one_cycle_turns_on_sgd_momentum_before_the_trace():
    """SGD(momentum=0) + OneCycleLR (cycling momentum): the buffers exist before the compiled
    step traces, and the run matches eager."""
    runs = []
    for compile_it in (False, True):
        model, opt = make("sgd")
        assert opt.state[next(iter(model.parameters()))] == {}
        sched = lr_scheduler.OneCycleLR(opt, max_lr=0.2, total_steps=STEPS)
        assert "momentum_buffer" in opt.state[next(iter(model.parameters()))]
        fn = h.compile(train_step) if compile_it else train_step
        for x, y in batches():
            fn(model, opt, x, y)
            sched.step()
        runs.append([arr(p) for p in model.parameters()])
    for a, b in zip(*runs):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_native_fused_kernel_reads_state_before_its_update(monkeypatch):
    """Found through Adadelta: a fused multi-output kernel writes an in-place update of `s` and,
    in a later stage of the same loop, recomputes an expression of the OLD `s` for another
    output. The update must not reuse `s`'s array while a later stage still reads it."""
    results = {}
    for backend in ("interpreter", "native"):
        monkeypatch.setattr(h.config, "backend", backend)
        s = h.zeros(2, 3, dtype=h.float64)
        p = h.zeros(2, 3, dtype=h.float64)

        def f(x, s=s, p=p):
            with h.no_grad():
                g = x.sum(1, keepdim=True) * x   # a reduction feeds the fused kernel
                d = h.sqrt(s + 1.0) * g          # an expression of the old s
                s.mul_(0.5).add_(d * d)          # s updated in place
                p.sub_(d)                        # uses d, i.e. the old s

        h.compile(f)(h.ones(2, 3, dtype=h.float64))
        results[backend] = (arr(s), arr(p))
    np.testing.assert_allclose(results["interpreter"][1], -3.0)  # d = sqrt(0 + 1) * 3
    np.testing.assert_allclose(results["native"][0], results["interpreter"][0])
    np.testing.assert_allclose(results["native"][1], results["interpreter"][1])
