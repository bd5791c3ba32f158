"""Training loops as PyTorch users write them, compiled as whole steps on the native backend:
each gives eager's parameters, gradients and optimizer state over 10 steps, and compiles at
most twice (once before any gradient exists, once after). PyTorch runs the same loop as an
oracle where it is installed."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid as h
import hybrid.nn as nn
import hybrid.nn.functional as F

STEPS = 10
RTOL, ATOL = 2e-5, 2e-6


@pytest.fixture(autouse=True)
def _native():
    prev = h.config.backend
    h.config.backend = "native"
    yield
    h.config.backend = prev


def _opt(name, optim=None):
    """The optimizer `name` (hyperparameters fixed here) of `optim`: hybrid.optim by default,
    torch.optim for the PyTorch oracle, so both sides are built from the same table."""
    O = optim or h.optim
    table = {
        "sgd": lambda p: O.SGD(p, lr=0.1),
        "sgd_momentum": lambda p: O.SGD(p, lr=0.1, momentum=0.9),
        "sgd_nesterov_wd": lambda p: O.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                           weight_decay=0.01),
        "adam": lambda p: O.Adam(p, lr=1e-2),
        "adamw": lambda p: O.AdamW(p, lr=1e-2, weight_decay=0.1),
        "rmsprop": lambda p: O.RMSprop(p, lr=1e-2, momentum=0.5),
        "adagrad": lambda p: O.Adagrad(p, lr=0.1),
    }
    return table[name]


OPTIMIZERS = ["sgd", "sgd_momentum", "sgd_nesterov_wd", "adam", "adamw", "rmsprop", "adagrad"]


def make(opt_name, dropout=0.0):
    h.manual_seed(0)
    layers = [nn.Linear(6, 12), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(12, 3))
    model = nn.Sequential(*layers)
    if opt_name in FLOAT64:
        model.double()
    if not hasattr(h.optim, {"rmsprop": "RMSprop", "adagrad": "Adagrad"}.get(opt_name, "SGD")):
        pytest.fail(f"hybrid.optim lacks the optimizer of {opt_name}")
    return model, _opt(opt_name)(model.parameters())


def data(n=STEPS, batch=8):
    rng = np.random.default_rng(7)
    return [(h.tensor(rng.standard_normal((batch, 6)).astype(np.float32)),
             h.tensor(rng.integers(0, 3, batch))) for _ in range(n)]


def arr(t):
    return t.detach().numpy()


# NOTE: RMSprop divides each update by the running RMS of its own gradient, so an element whose
# gradient is a near-cancelling sum (~1e-7, where float32 summation order changes it by 0.3%)
# moves by a whole step either way, and the runs drift apart after it. Its cases run in
# float64, where the same rounding is 1e-16 and the comparison stays meaningful.
FLOAT64 = {"rmsprop"}


def assert_same(m1, o1, m2, o2, where=""):
    atol = ATOL
    for (name, p1), p2 in zip(m1.named_parameters(), m2.parameters()):
        np.testing.assert_allclose(arr(p2), arr(p1), rtol=RTOL, atol=atol, err_msg=where + name)
        assert (p1.grad is None) == (p2.grad is None), where + name
        if p1.grad is not None:
            np.testing.assert_allclose(arr(p2.grad), arr(p1.grad), rtol=RTOL, atol=ATOL,
                                       err_msg=where + name + ".grad")
        for k, v in o1.state[p1].items():
            w = o2.state[p2][k]
            if hasattr(v, "numpy"):
                np.testing.assert_allclose(arr(w), arr(v), rtol=RTOL, atol=ATOL,
                                           err_msg=f"{where}{name} state {k}")


# --- the step functions, as written in tutorials -------------------------------------------------


def zero_grad_first(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def zero_grad_last(model, opt, x, y):
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss


def model_zero_grad_first(model, opt, x, y):
    model.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def zero_grad_keep_tensors(model, opt, x, y):
    opt.zero_grad(set_to_none=False)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def no_zero_grad(model, opt, x, y):  # zero_grad outside, in the loop
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss


def clip_step(model, opt, x, y):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    norm = nn.utils.clip_grad_norm_(model.parameters(), 0.5)
    opt.step()
    return loss, norm


IDIOMS = {"zero_grad_first": zero_grad_first, "zero_grad_last": zero_grad_last,
          "model_zero_grad_first": model_zero_grad_first,
          "zero_grad_set_to_none_false": zero_grad_keep_tensors, "zero_grad_outside": no_zero_grad}


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("idiom", list(IDIOMS))
def test_idiom_matches_eager_and_compiles_at_most_twice(idiom, opt_name):
    fn = IDIOMS[idiom]
    outside = idiom == "zero_grad_outside"
    batches = data()
    m1, o1 = make(opt_name)
    m2, o2 = make(opt_name)
    if opt_name in FLOAT64:
        batches = [(x.double(), y) for x, y in batches]
    step = h.compile(fn)
    for i, (x, y) in enumerate(batches):
        if outside:
            o1.zero_grad()
            o2.zero_grad()
        le = fn(m1, o1, x, y)
        lc = step(m2, o2, x, y)
        np.testing.assert_allclose(lc.item(), le.item(), rtol=RTOL, atol=ATOL)
        assert_same(m1, o1, m2, o2, f"step {i}: ")
    assert step.compile_count <= 2, step.compile_count
    if idiom == "zero_grad_last":
        assert step.compile_count == 1


def _torch_twin(torch, model, opt_name):
    """A torch.nn.Sequential with `model`'s parameters, and its optimizer."""
    tm = torch.nn.Sequential(torch.nn.Linear(6, 12), torch.nn.ReLU(), torch.nn.Linear(12, 3))
    if opt_name in FLOAT64:
        tm.double()
    with torch.no_grad():
        for tp, p in zip(tm.parameters(), model.parameters()):
            tp.copy_(torch.from_numpy(arr(p).copy()))
    return tm, _opt(opt_name, torch.optim)(tm.parameters())


def _torch_step(torch, idiom, tm, to, x, y, clip=None):
    """The idiom as a PyTorch user writes it (the same statements, in the same order)."""
    if idiom == "zero_grad_first":
        to.zero_grad()
    elif idiom == "model_zero_grad_first":
        tm.zero_grad()
    elif idiom == "zero_grad_set_to_none_false":
        to.zero_grad(set_to_none=False)
    loss = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x.numpy())),
                                             torch.from_numpy(y.numpy()))
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(tm.parameters(), clip)
    to.step()
    if idiom == "zero_grad_last":
        to.zero_grad()
    return loss


def assert_same_as_torch(m, tm, where):
    for (name, p), tp in zip(m.named_parameters(), tm.parameters()):
        np.testing.assert_allclose(arr(p), tp.detach().numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=where + name)
        assert (p.grad is None) == (tp.grad is None), where + name + ".grad is None"
        if p.grad is not None:
            np.testing.assert_allclose(arr(p.grad), tp.grad.numpy(), rtol=1e-4, atol=1e-5,
                                       err_msg=where + name + ".grad")


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("idiom", list(IDIOMS))
def test_idiom_matches_pytorch(idiom, opt_name):
    """Each idiom x optimizer, compiled, against the same loop in PyTorch: loss, parameters and
    gradients (None where PyTorch's are None) after every step."""
    torch = pytest.importorskip("torch")
    batches = data()
    m, o = make(opt_name)
    if opt_name in FLOAT64:
        batches = [(x.double(), y) for x, y in batches]
    tm, to = _torch_twin(torch, m, opt_name)
    step = h.compile(IDIOMS[idiom])
    for i, (x, y) in enumerate(batches):
        if idiom == "zero_grad_outside":
            o.zero_grad()
            to.zero_grad()
        lc = step(m, o, x, y)
        lt = _torch_step(torch, idiom, tm, to, x, y)
        np.testing.assert_allclose(lc.item(), lt.item(), rtol=1e-4, atol=1e-5)
        assert_same_as_torch(m, tm, f"step {i}: ")
    assert step.compile_count == (1 if idiom in ("zero_grad_last", "zero_grad_outside") else 2)


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw"])
def test_clip_grad_norm_step_matches_pytorch(opt_name):
    """zero_grad; backward; clip_grad_norm_(params, 0.5); step — compiled, against PyTorch."""
    torch = pytest.importorskip("torch")
    m, o = make(opt_name)
    tm, to = _torch_twin(torch, m, opt_name)
    cstep = h.compile(clip_step)
    for i, (x, y) in enumerate(data()):
        lc, _ = cstep(m, o, x, y)
        lt = _torch_step(torch, "zero_grad_first", tm, to, x, y, clip=0.5)
        np.testing.assert_allclose(lc.item(), lt.item(), rtol=1e-4, atol=1e-5)
        assert_same_as_torch(m, tm, f"step {i}: ")
    assert cstep.compile_count == 2


def test_gradient_accumulation_over_micro_batches():
    batches = data(12, batch=4)

    def micro(model, x, y):
        loss = F.cross_entropy(model(x), y) / 3
        loss.backward()
        return loss

    def update(opt):
        opt.step()
        opt.zero_grad()

    m1, o1 = make("sgd_momentum")
    m2, o2 = make("sgd_momentum")
    cmicro, cupdate = h.compile(micro), h.compile(update)
    for i, (x, y) in enumerate(batches):
        micro(m1, x, y)
        cmicro(m2, x, y)
        if i % 3 == 2:
            update(o1)
            cupdate(o2)
        assert_same(m1, o1, m2, o2, f"micro-batch {i}: ")
    assert cmicro.compile_count <= 2 and cupdate.compile_count == 1


def test_gradient_accumulation_inside_one_step():
    batches = data()

    def step(model, opt, xs, ys):
        opt.zero_grad()
        total = 0.0
        for x, y in zip(xs, ys):
            loss = F.cross_entropy(model(x), y) / len(xs)
            loss.backward()
            total = total + loss.detach()
        opt.step()
        return total

    m1, o1 = make("adam")
    m2, o2 = make("adam")
    cstep = h.compile(step)
    for x, y in batches:
        xs, ys = [x[:4], x[4:]], [y[:4], y[4:]]
        np.testing.assert_allclose(cstep(m2, o2, xs, ys).item(), step(m1, o1, xs, ys).item(),
                                   rtol=RTOL, atol=ATOL)
        assert_same(m1, o1, m2, o2)
    assert cstep.compile_count <= 2


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw"])
def test_clip_grad_norm_inside_the_step(opt_name):
    step = clip_step
    m1, o1 = make(opt_name)
    m2, o2 = make(opt_name)
    cstep = h.compile(step)
    for x, y in data():
        le, ne = step(m1, o1, x, y)
        lc, nc = cstep(m2, o2, x, y)
        np.testing.assert_allclose(arr(nc), arr(ne), rtol=RTOL, atol=ATOL)
        assert_same(m1, o1, m2, o2)
    assert cstep.compile_count <= 2


def test_grad_scaled_in_place_inside_the_step():
    def step(model, opt, x, y):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for p in model.parameters():
            p.grad.mul_(0.5)
        opt.step()

    m1, o1 = make("sgd_momentum")
    m2, o2 = make("sgd_momentum")
    cstep = h.compile(step)
    for x, y in data():
        step(m1, o1, x, y)
        cstep(m2, o2, x, y)
        assert_same(m1, o1, m2, o2)
    assert cstep.compile_count <= 2


def test_train_step_alternating_with_no_grad_eval():
    batches = data()
    m1, o1 = make("adam", dropout=0.2)
    m2, o2 = make("adam", dropout=0.2)

    def evaluate(model, x, y):
        with h.no_grad():
            return (model(x).argmax(1) == y).float().mean()

    cstep, ceval = h.compile(zero_grad_first), h.compile(evaluate)

    def run(model, opt, step, ev):  # dropout draws: the same seed, the same stream
        h.manual_seed(5)
        per_step = []
        for x, y in batches:
            model.train()
            loss = step(model, opt, x, y)
            model.eval()
            per_step.append((loss.item(), float(ev(model, x, y)),
                             [arr(p).copy() for p in model.parameters()]))
        return per_step

    eager, compiled = run(m1, o1, zero_grad_first, evaluate), run(m2, o2, cstep, ceval)
    for i, ((le, ae, pe), (lc, ac, pc)) in enumerate(zip(eager, compiled)):
        np.testing.assert_allclose(lc, le, rtol=RTOL, atol=ATOL, err_msg=f"step {i} loss")
        assert ac == ae, f"step {i}: eval accuracy {ac} != {ae}"
        for a_, b_ in zip(pc, pe):
            np.testing.assert_allclose(a_, b_, rtol=RTOL, atol=ATOL, err_msg=f"step {i}")
    assert_same(m1, o1, m2, o2)
    assert cstep.compile_count <= 2 and ceval.compile_count == 1


def test_changing_learning_rate_does_not_recompile():
    m1, o1 = make("sgd_momentum")
    m2, o2 = make("sgd_momentum")
    step = h.compile(zero_grad_last)
    for i, (x, y) in enumerate(data()):
        for o in (o1, o2):
            o.param_groups[0]["lr"] = 0.1 * 0.8 ** i
            o.param_groups[0]["momentum"] = 0.9 - 0.02 * i
        zero_grad_last(m1, o1, x, y)
        step(m2, o2, x, y)
        assert_same(m1, o1, m2, o2, f"step {i}: ")
    assert step.compile_count == 1


def test_adam_betas_and_weight_decay_are_runtime_values():
    m1, o1 = make("adamw")
    m2, o2 = make("adamw")
    step = h.compile(zero_grad_last)
    for i, (x, y) in enumerate(data()):
        for o in (o1, o2):
            g = o.param_groups[0]
            g["betas"] = (0.9 - 0.01 * i, 0.999 - 0.001 * i)
            g["weight_decay"] = 0.1 + 0.01 * i
            g["lr"] = 1e-2 / (i + 1)
        zero_grad_last(m1, o1, x, y)
        step(m2, o2, x, y)
        assert_same(m1, o1, m2, o2, f"step {i}: ")
    assert step.compile_count == 1
