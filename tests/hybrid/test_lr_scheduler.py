"""hybrid.optim.lr_scheduler: every schedule against torch.optim.lr_scheduler value for value over
40 steps (lr, and momentum / betas where they cycle), the closed forms against hand-computed
values (so something is checked without torch), state_dict round trips and bad input."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import hybrid
from hybrid import optim
from hybrid.optim import lr_scheduler as hs

STEPS = 40


def hybrid_opt(kind="sgd", lrs=(0.1, 0.05)):
    groups = [{"params": [hybrid.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "adam":
        return optim.Adam(groups, lr=lrs[0])
    return optim.SGD(groups, lr=lrs[0], momentum=0.9)


def torch_opt(torch, kind="sgd", lrs=(0.1, 0.05)):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    if kind == "adam":
        return torch.optim.Adam(groups, lr=lrs[0])
    return torch.optim.SGD(groups, lr=lrs[0], momentum=0.9)


# (name, optimizer kind, factory(module, optimizer)); module is hybrid's or torch's lr_scheduler
SCHEDULES = [
    ("StepLR", "sgd", lambda L, o: L.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", "sgd", lambda L, o: L.MultiStepLR(o, milestones=[5, 12, 12, 30], gamma=0.3)),
    ("ExponentialLR", "sgd", lambda L, o: L.ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", "sgd", lambda L, o: L.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)),
    ("LambdaLR", "sgd", lambda L, o: L.LambdaLR(o, lambda e: 0.95**e / (1 + e % 3))),
    ("LambdaLR-list", "sgd", lambda L, o: L.LambdaLR(o, [lambda e: 1 / (e + 1),
                                                         lambda e: 0.9**e])),
    ("MultiplicativeLR", "sgd", lambda L, o: L.MultiplicativeLR(o, lambda e: 0.97 - e / 1000)),
    ("LinearLR", "sgd", lambda L, o: L.LinearLR(o, start_factor=0.2, total_iters=8)),
    ("LinearLR-down", "sgd", lambda L, o: L.LinearLR(o, start_factor=1.0, end_factor=0.1,
                                                     total_iters=25)),
    ("ConstantLR", "sgd", lambda L, o: L.ConstantLR(o, factor=0.5, total_iters=6)),
    ("PolynomialLR", "sgd", lambda L, o: L.PolynomialLR(o, total_iters=20, power=2.0)),
    ("OneCycleLR-sgd", "sgd", lambda L, o: L.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=41)),
    ("OneCycleLR-adam", "adam", lambda L, o: L.OneCycleLR(o, max_lr=0.01, epochs=4,
                                                          steps_per_epoch=11)),
    ("OneCycleLR-3phase-linear", "sgd", lambda L, o: L.OneCycleLR(
        o, max_lr=0.3, total_steps=45, pct_start=0.25, anneal_strategy="linear",
        three_phase=True, div_factor=10.0)),
    ("CosineAnnealingWarmRestarts", "sgd", lambda L, o: L.CosineAnnealingWarmRestarts(
        o, T_0=5, T_mult=2, eta_min=0.01)),
    ("CosineAnnealingWarmRestarts-1", "sgd", lambda L, o: L.CosineAnnealingWarmRestarts(o, 7)),
    ("CyclicLR-triangular2", "sgd", lambda L, o: L.CyclicLR(o, base_lr=0.01, max_lr=0.1,
                                                            step_size_up=4, mode="triangular2")),
    ("CyclicLR-exp_range-adam", "adam", lambda L, o: L.CyclicLR(
        o, base_lr=[0.001, 0.002], max_lr=0.01, step_size_up=3, step_size_down=5,
        mode="exp_range", gamma=0.97)),
    ("SequentialLR", "sgd", lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=0.1, total_iters=5), L.ExponentialLR(o, gamma=0.9),
            L.StepLR(o, 4, 0.5)], milestones=[5, 20])),
    ("ChainedScheduler", "sgd", lambda L, o: L.ChainedScheduler(
        [L.ConstantLR(o, factor=0.1, total_iters=4), L.ExponentialLR(o, gamma=0.9),
         L.CosineAnnealingLR(o, T_max=15)])),
]


MAKERS = {name: make for name, _, make in SCHEDULES}


def _momentum(group):
    return group["betas"][0] if "betas" in group else group["momentum"]


@pytest.mark.torch_oracle
@pytest.mark.parametrize("name,kind,make", SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_matches_torch_value_for_value(name, kind, make):
    torch = pytest.importorskip("torch")
    ho, to = hybrid_opt(kind), torch_opt(torch, kind)
    hsched, tsched = make(hs, ho), make(torch.optim.lr_scheduler, to)
    assert hsched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)
    for step in range(STEPS):
        ho.step()
        to.step()
        hsched.step()
        tsched.step()
        for hg, tg in zip(ho.param_groups, to.param_groups):
            assert hg["lr"] == pytest.approx(tg["lr"], rel=1e-13, abs=1e-16), (step, name)
            assert _momentum(hg) == pytest.approx(_momentum(tg), rel=1e-13), (step, name)
        assert hsched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13, abs=1e-16)
        assert getattr(hsched, "last_epoch", None) == getattr(tsched, "last_epoch", None)


@pytest.mark.torch_oracle
@pytest.mark.parametrize("name", ["StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                                  "LinearLR", "ConstantLR", "PolynomialLR",
                                  "CosineAnnealingWarmRestarts"])
def test_step_with_epoch_uses_the_closed_form_as_torch(name):
    torch = pytest.importorskip("torch")
    make = MAKERS[name]
    ho, to = hybrid_opt(), torch_opt(torch)
    hsched, tsched = make(hs, ho), make(torch.optim.lr_scheduler, to)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's deprecation warning of step(epoch)
        for epoch in [3, 7, 2, 15, 31, 8]:
            to.step()
            hsched.step(epoch)
            tsched.step(epoch)
            assert hsched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13)


PLATEAUS = [
    {},
    {"mode": "max", "factor": 0.5, "patience": 2, "threshold": 0.05, "cooldown": 3},
    {"mode": "min", "threshold_mode": "abs", "threshold": 0.1, "patience": 1,
     "min_lr": [0.02, 0.001]},
    {"mode": "max", "threshold_mode": "abs", "patience": 0, "factor": 0.8, "min_lr": 0.03},
]


@pytest.mark.torch_oracle
@pytest.mark.parametrize("kw", PLATEAUS, ids=str)
def test_reduce_on_plateau_matches_torch(rng, kw):
    torch = pytest.importorskip("torch")
    ho, to = hybrid_opt(), torch_opt(torch)
    hsched = hs.ReduceLROnPlateau(ho, **kw)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(to, **kw)
    metrics = np.concatenate([np.linspace(1, 0.5, 10), np.full(15, 0.5), rng.random(30)])
    for i, m in enumerate(metrics):
        metric = hybrid.tensor(m) if i % 2 else float(m)  # a 0-d tensor is accepted too
        hsched.step(metric)
        tsched.step(float(m))
        assert hsched.get_last_lr() == pytest.approx(tsched.get_last_lr(), rel=1e-13), i
        assert hsched.num_bad_epochs == tsched.num_bad_epochs
        assert hsched.cooldown_counter == tsched.cooldown_counter


# --- without torch: the closed forms against hand-computed values ----------------------------


def lrs_over(sched, opt, n=STEPS):
    out = [[g["lr"] for g in opt.param_groups]]
    for _ in range(n):
        opt.step()
        sched.step()
        out.append([g["lr"] for g in opt.param_groups])
    return np.array(out)  # [epoch, group]


BASE = np.array([0.1, 0.05])
E = np.arange(STEPS + 1)[:, None]


@pytest.mark.parametrize("name,want", [
    ("StepLR", BASE * 0.5 ** (E // 3)),
    ("ExponentialLR", BASE * 0.9**E),
    ("MultiStepLR", BASE * 0.3 ** ((E >= 5) + 2 * (E >= 12) + (E >= 30))),
    ("LinearLR", BASE * (0.2 + 0.8 * np.minimum(E, 8) / 8)),
    ("LinearLR-down", BASE * (1.0 - 0.9 * np.minimum(E, 25) / 25)),
    ("ConstantLR", BASE * np.where(E < 6, 0.5, 1.0)),
    ("PolynomialLR", BASE * (1 - np.minimum(E, 20) / 20) ** 2),
    ("CosineAnnealingLR", 1e-3 + (BASE - 1e-3) * (1 + np.cos(np.pi * E / 10)) / 2),
    ("CosineAnnealingWarmRestarts-1", BASE * (1 + np.cos(np.pi * (E % 7) / 7)) / 2),
    ("LambdaLR", BASE * 0.95**E / (1 + E % 3)),
    ("MultiplicativeLR", BASE * np.cumprod(np.r_[1.0, 0.97 - np.arange(1, STEPS + 1) / 1000])
     [:, None]),
])
def test_closed_forms(name, want):
    make = MAKERS[name]
    opt = hybrid_opt()
    np.testing.assert_allclose(lrs_over(make(hs, opt), opt), want, rtol=1e-9, atol=1e-15)


def test_warm_restarts_with_t_mult():
    opt = hybrid_opt()
    got = lrs_over(hs.CosineAnnealingWarmRestarts(opt, T_0=5, T_mult=2, eta_min=0.01), opt)[:, 0]
    # restarts at epochs 5, 15 and 35 (periods 5, 10, 20)
    cur = [e if e < 5 else e - 5 if e < 15 else e - 15 if e < 35 else e - 35 for e in range(41)]
    period = [5 if e < 5 else 10 if e < 15 else 20 if e < 35 else 40 for e in range(41)]
    want = [0.01 + 0.09 * (1 + math.cos(math.pi * c / t)) / 2 for c, t in zip(cur, period)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_one_cycle_shape_and_momentum():
    opt = hybrid_opt()
    sched = hs.OneCycleLR(opt, max_lr=[0.5, 1.0], total_steps=50)
    lrs = [opt.param_groups[1]["lr"]]
    moms = [opt.param_groups[1]["momentum"]]
    for _ in range(49):
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[1]["lr"])
        moms.append(opt.param_groups[1]["momentum"])
    peak = 14  # 0.3 * 50 - 1: the last step of the warm-up phase
    assert lrs[0] == pytest.approx(1.0 / 25) and moms[0] == pytest.approx(0.95)
    assert lrs[peak] == pytest.approx(1.0) and moms[peak] == pytest.approx(0.85)
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4) and moms[-1] == pytest.approx(0.95)
    assert np.all(np.diff(lrs[:peak + 1]) > 0) and np.all(np.diff(lrs[peak:]) < 0)
    # halfway through the warm-up (step 7), the cosine is halfway: (start + end) / 2
    assert lrs[7] == pytest.approx((0.04 + 1.0) / 2) and moms[7] == pytest.approx(0.9)
    sched.step()  # step 50 = total_steps is still allowed (as PyTorch)
    with pytest.raises(hybrid.HybridError, match="OneCycleLR.*total_steps"):
        sched.step()


def test_one_cycle_cycles_adam_beta1():
    opt = hybrid_opt("adam")
    hs.OneCycleLR(opt, max_lr=0.01, total_steps=20, base_momentum=0.8, max_momentum=0.9)
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(0.01 / 25)


def test_sequential_and_chained_by_hand():
    opt = hybrid_opt()
    seq = hs.SequentialLR(opt, [hs.ConstantLR(opt, factor=0.5, total_iters=100),
                                hs.ExponentialLR(opt, gamma=0.9)], milestones=[4])
    want = [0.05] * 4 + [0.1 * 0.9**k for k in range(10)]
    np.testing.assert_allclose(lrs_over(seq, opt, 13)[:, 0], want, rtol=1e-12)
    opt = hybrid_opt()
    chain = hs.ChainedScheduler([hs.StepLR(opt, 2, 0.5), hs.ExponentialLR(opt, 0.9)])
    got = lrs_over(chain, opt, 10)[:, 0]
    np.testing.assert_allclose(got, [0.1 * 0.5 ** (e // 2) * 0.9**e for e in range(11)],
                               rtol=1e-12)


def test_reduce_on_plateau_by_hand():
    opt = hybrid_opt()
    sched = hs.ReduceLROnPlateau(opt, patience=2, factor=0.5, cooldown=1, min_lr=0.02)
    seen = []
    for m in [1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]:
        sched.step(m)
        seen.append(opt.param_groups[0]["lr"])
    # bad epochs after 0.9: 1, 2, 3 -> reduce at the 6th call; cooldown 1; then 3 more bad ones
    assert seen == [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025]
    assert [g["lr"] for g in opt.param_groups][1] == 0.02  # 0.05 -> 0.025 -> floor 0.02


def test_initial_lr_and_resume():
    opt = hybrid_opt()
    hs.StepLR(opt, 2)
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.05]
    with pytest.raises(hybrid.HybridError, match="initial_lr"):
        hs.StepLR(hybrid_opt(), 2, last_epoch=5)
    sched = hs.StepLR(opt, 2, last_epoch=5)  # resumes: initial_lr is there
    assert sched.last_epoch == 6


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "OneCycleLR-sgd",
                                  "SequentialLR", "ChainedScheduler", "LambdaLR",
                                  "CyclicLR-triangular2", "CosineAnnealingWarmRestarts"])
def test_state_dict_roundtrip(name):
    make = MAKERS[name]
    opt = hybrid_opt()
    sched = make(hs, opt)
    lrs_over(sched, opt, 7)
    sd = sched.state_dict()
    assert "optimizer" not in sd
    opt2 = hybrid_opt()
    sched2 = make(hs, opt2)  # as in PyTorch: build, then load the optimizer and the scheduler
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sd)
    np.testing.assert_array_equal(lrs_over(sched2, opt2, 10), lrs_over(sched, opt, 10))


class NotAnOptimizer:
    def __init__(self) -> None:
        self.param_groups = [{"lr": 0.1, "params": []}]


@pytest.mark.parametrize("make", [
    lambda o: hs.StepLR(o, 2), lambda o: hs.OneCycleLR(o, 0.1, total_steps=10),
    lambda o: hs.ReduceLROnPlateau(o), lambda o: hs.CyclicLR(o, 0.01, 0.1),
    lambda o: hs.LambdaLR(o, lambda e: 1.0),
])
def test_another_kind_of_optimizer_is_refused(make):
    with pytest.raises(hybrid.HybridError, match=r"expected a hybrid.optim optimizer.*"
                                                 r"NotAnOptimizer.*build the optimizer"):
        make(NotAnOptimizer())


@pytest.mark.torch_oracle
def test_a_torch_optimizer_is_refused():
    torch = pytest.importorskip("torch")
    with pytest.raises(hybrid.HybridError, match="CosineAnnealingLR: expected a hybrid.optim "
                                                 "optimizer, got torch.optim"):
        hs.CosineAnnealingLR(torch_opt(torch), T_max=3)


@pytest.mark.parametrize("make,match", [
    (lambda o: hs.LinearLR(o, start_factor=0), "LinearLR: start_factor"),
    (lambda o: hs.ConstantLR(o, factor=2), "ConstantLR: factor"),
    (lambda o: hs.StepLR(o, step_size=0), "StepLR: step_size"),
    (lambda o: hs.OneCycleLR(o, 0.1), "OneCycleLR: pass total_steps"),
    (lambda o: hs.OneCycleLR(o, 0.1, total_steps=10, pct_start=1), "pct_start"),
    (lambda o: hs.OneCycleLR(o, [0.1], total_steps=10), "one value per parameter group"),
    (lambda o: hs.ReduceLROnPlateau(o, factor=1.0), "ReduceLROnPlateau: factor"),
    (lambda o: hs.ReduceLROnPlateau(o, mode="up"), "mode must be"),
    (lambda o: hs.CosineAnnealingWarmRestarts(o, T_0=0), "T_0"),
    (lambda o: hs.LambdaLR(o, [lambda e: 1.0]), "expected 2 lr_lambdas"),
    (lambda o: hs.SequentialLR(o, [hs.StepLR(o, 2)], milestones=[3]), "one milestone fewer"),
    (lambda o: hs.SequentialLR(o, [hs.StepLR(o, 2), hs.StepLR(hybrid_opt(), 2)], [3]),
     "schedules another optimizer"),
    (lambda o: hs.ChainedScheduler([hs.StepLR(o, 2), hs.ReduceLROnPlateau(o)]),
     "ReduceLROnPlateau"),
])
def test_invalid_arguments(make, match):
    with pytest.raises(hybrid.HybridError, match=match):
        make(hybrid_opt())


def _train_epochs(opt_stepped, sched, make_step, epochs=3):
    """Train a small model for `epochs` epochs of 2 steps with `opt_stepped`, stepping `sched`
    after each epoch, as PyTorch's tutorials do; returns the warnings raised."""
    model = hybrid.nn.Linear(3, 1)
    opt_stepped = opt_stepped(model)
    step = make_step(model, opt_stepped)
    x, y = hybrid.randn(4, 3), hybrid.randn(4, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(epochs):
            for _ in range(2):
                step(x, y)
            sched.step(1.0) if isinstance(sched, hs.ReduceLROnPlateau) else sched.step()
    return [w for w in caught if "has never stepped" in str(w.message)]


def _plain_step(model, opt):
    def step(x, y):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return step


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("kind", ["StepLR", "ReduceLROnPlateau"])
def test_a_scheduler_given_another_models_optimizer_warns_once(kind, compiled):
    """The scheduler was built on model A's optimizer while the loop trains model B: after two
    epochs with no step of A's optimizer, one warning at the user's line says so."""
    other = optim.SGD(hybrid.nn.Linear(3, 1).parameters(), lr=0.1)
    sched = hs.StepLR(other, step_size=1) if kind == "StepLR" else hs.ReduceLROnPlateau(other)

    def make_step(model, opt):
        s = _plain_step(model, opt)
        return hybrid.compile(s) if compiled else s

    got = _train_epochs(lambda m: optim.SGD(m.parameters(), lr=0.1), sched, make_step)
    assert len(got) == 1
    text = str(got[0].message)
    assert f"{kind}.step() has run 2 times" in text and "optimizer of another model" in text
    assert "test_lr_scheduler.py" in text


@pytest.mark.parametrize("compiled", [False, True])
def test_a_scheduler_of_the_optimizer_in_use_does_not_warn(compiled):
    holder = {}

    def make_opt(model):
        holder["opt"] = optim.SGD(model.parameters(), lr=0.1)
        holder["sched"] = hs.StepLR(holder["opt"], step_size=1)
        return holder["opt"]

    model = hybrid.nn.Linear(3, 1)
    opt = make_opt(model)
    step = _plain_step(model, opt)
    step = hybrid.compile(step) if compiled else step
    x, y = hybrid.randn(4, 3), hybrid.randn(4, 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            step(x, y)
            step(x, y)
            holder["sched"].step()
    assert not [w for w in caught if "has never stepped" in str(w.message)]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1 ** 3)
