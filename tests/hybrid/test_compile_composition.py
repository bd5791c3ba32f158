"""Compiled calls inside eager programs: gradients flow from a compiled call back into the eager
graph that made its inputs; a compiled submodule or cell trains exactly like eager; recompile
storms warn once; a program that depends on Python state outside the key is caught; threads."""

from __future__ import annotations

import itertools
import math
import random
import threading
import warnings

import numpy as np
import pytest

import hybrid as h
import hybrid.nn as nn
import hybrid.nn.functional as F
from hybrid.compile_trace import TraceStabilityWarning


@pytest.fixture(autouse=True)
def _native():
    prev = h.config.backend
    h.config.backend = "native"
    yield
    h.config.backend = prev


def a(t):
    return t.detach().numpy()


def test_gradient_flows_into_the_eager_graph_of_an_input():
    scale = nn.Parameter(h.full((3,), 2.0))
    block = h.compile(lambda v: (v * v).sum())
    x = h.tensor([1.0, 2.0, 3.0])
    loss = block(x * scale)  # the input carries eager history through `scale`
    loss.backward()
    # d/dscale sum((x*scale)^2) = 2 x^2 scale
    np.testing.assert_allclose(a(scale.grad), 2 * np.array([1, 4, 9.0]) * 2.0, rtol=1e-6)


def _cell_params():
    h.manual_seed(3)
    return nn.Linear(4, 5), nn.Linear(5, 5)


def test_compiled_cell_in_an_eager_loop_trains_with_bptt():
    def cell(inp, hid, wx, wh):
        return h.tanh(wx(inp) + wh(hid))

    xs = [h.randn(2, 4) for _ in range(6)]
    results = []
    for compiled in (False, True):
        wx, wh = _cell_params()
        step = h.compile(cell) if compiled else cell
        hid = h.zeros(2, 5)
        for x in xs:
            hid = step(x, hid, wx, wh)
        hid.pow(2).sum().backward()
        results.append([a(p.grad) for p in (*wx.parameters(), *wh.parameters())])
        if compiled:
            assert step.compile_count <= 2  # first step: hid has no history yet
    for ge, gc in zip(*results):
        np.testing.assert_allclose(gc, ge, rtol=1e-5, atol=1e-6)


def test_compiled_module_inside_an_eager_training_loop_trains_like_eager():
    def run(compiled):
        h.manual_seed(0)
        body = nn.Sequential(nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 8))
        head = nn.Linear(8, 3)
        fast = h.compile(body) if compiled else body
        opt = h.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-2)
        rng = np.random.default_rng(0)
        losses = []
        for _ in range(8):
            x = h.tensor(rng.standard_normal((5, 6)).astype(np.float32))
            y = h.tensor(rng.integers(0, 3, 5))
            opt.zero_grad()
            loss = F.cross_entropy(head(fast(x)), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [a(p) for p in body.parameters()]

    le, pe = run(False)
    lc, pc = run(True)
    np.testing.assert_allclose(lc, le, rtol=1e-5, atol=1e-6)
    for x, y in zip(pc, pe):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_backward_inside_reaching_outside_history_is_a_clear_error():
    w = nn.Parameter(h.ones(3))

    @h.compile
    def f(v):
        (v * 2).sum().backward()

    with pytest.raises(h.TraceError, match="history from outside"):
        f(w * 3)


def test_recompile_storm_warns_once_naming_what_changes():
    global SCALE
    SCALE = 1.0

    @h.compile
    def f(x):
        return x * SCALE

    x = h.ones(2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(h.config.recompile_limit + 4):
            SCALE = float(i)
            f(x)
    storms = [w for w in caught if issubclass(w.category, h.RecompileWarning)]
    assert len(storms) == 1
    assert "global 'SCALE'" in str(storms[0].message)


def test_guard_flipping_storm_warns():
    # The zero_grad-first mechanism on purpose: a captured tensor whose guarded state changes
    # on every call (here its shape), so every call misses.
    state = {"w": h.ones(1)}

    @h.compile
    def f(x):
        return x.sum() + state["w"].sum()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(h.config.recompile_limit + 3):
            state["w"] = h.ones(i + 1)
            f(h.ones(2))
    (storm,) = [w for w in caught if issubclass(w.category, h.RecompileWarning)]
    text = str(storm.message)
    assert "compiled 8 times (limit 8)" in text and "closure variable 'state' keeps changing" in text
    assert "{'w': f32[8]} -> {'w': f32[9]}" in text and "What to do" in text


def test_flipping_one_guarded_attribute_back_and_forth_compiles_each_state_once():
    """`w.grad` None / not None on alternate calls (the zero_grad-first mechanism, flipped):
    each state compiles once and is reused afterwards, with eager's value every call."""
    w = nn.Parameter(h.ones(3))

    @h.compile
    def g(x):
        return x * w.grad if w.grad is not None else x * 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(12):
            w.grad = None if i % 2 else h.ones(3) * i
            assert a(g(h.ones(3))).tolist() == [2.0 if i % 2 else float(i)] * 3, i
    assert (g.compile_count, g.cache_size()) == (2, 2)
    assert not [m for m in caught if issubclass(m.category, h.RecompileWarning)]


def test_dynamic_net_depth_drawn_while_tracing_is_caught():
    # PyTorch's dynamic_net.py: the depth is drawn with Python's random inside forward.
    w = nn.Parameter(h.ones(1))

    @h.compile
    def forward(x):
        y = x
        for _ in range(random.randint(0, 3)):
            y = y * w
        return y

    random.seed(3)
    with pytest.raises(h.TraceError, match=r"called random\.randint at .*test_compile_compositi"
                       r"on\.py:\d+.*fallback='eager'") as info:
        forward(h.ones(1))
    assert "test_compile_composition.py" in str(info.value).split("What to do")[0]
    random.seed(3)
    first = random.random()
    random.seed(3)
    with pytest.raises(h.TraceError):
        forward(h.ones(1))
    assert random.random() == first, "the failed trace consumed Python random draws"


class _DynamicNet(nn.Module):
    """PyTorch's examples_nn/dynamic_net.py as written: the depth is drawn inside forward."""

    def __init__(self):
        super().__init__()
        for name in "abcde":
            setattr(self, name, nn.Parameter(h.randn(())))

    def forward(self, x):
        y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
        for exp in range(4, random.randint(4, 6)):
            y = y + self.e * x ** exp
        return y


def test_literal_dynamic_net_with_fallback_eager_trains_exactly_as_eager():
    """The tutorial unchanged, its step compiled with fallback='eager': it warns once and every
    call runs eagerly, with eager's random depths, so losses and parameters are eager's."""
    def train(compile_it):
        h.manual_seed(0)
        random.seed(0)
        x = h.linspace(-math.pi, math.pi, 200)
        y = h.sin(x)
        model = _DynamicNet()
        opt = h.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)

        def step(x, y):
            loss = ((model(x) - y) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        step = h.compile(step, fallback="eager") if compile_it else step
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            losses = [step(x, y).item() for _ in range(30)]
        return losses, [a(p) for p in model.parameters()], caught

    le, pe, _ = train(False)
    lc, pc, caught = train(True)
    assert lc == le
    for p, q in zip(pc, pe):
        np.testing.assert_array_equal(p, q)
    msgs = [str(w.message) for w in caught if "running eagerly" in str(w.message)]
    assert len(msgs) == 1 and "random.randint" in msgs[0]


def test_python_counter_that_changes_the_program_is_caught_on_the_second_call():
    calls = itertools.count(1)  # Python state the cache key does not see into

    @h.compile
    def f(x):
        return x * 2 if next(calls) % 2 else x + 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f(h.ones(1))
        f(h.ones(1))
    msgs = [str(w.message) for w in caught if issubclass(w.category, TraceStabilityWarning)]
    assert len(msgs) == 1 and "different program" in msgs[0]
    assert "test_compile_composition.py" in msgs[0]  # names the differing line


def test_unstable_function_with_fallback_eager_runs_eagerly_from_then_on():
    """The warning's advice works: with fallback='eager', once the retrace differs, every call
    runs the Python function (here: each call's own depth, as eager), not the first trace."""
    depths = iter([1, 3, 0, 2, 2, 1])

    def forward(x):
        y = x
        for _ in range(next(depths)):
            y = y * 2
        return y

    f = h.compile(forward, fallback="eager")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = [float(f(h.ones(1))) for _ in range(5)]
    # call 1 traces (depth 1), call 2 retraces (depth 3): differs, runs eagerly (depth 0 drawn
    # by the eager run), then eager on every call
    assert got == [2.0, 1.0, 4.0, 4.0, 2.0]
    msgs = [str(w.message) for w in caught if issubclass(w.category, TraceStabilityWarning)]
    assert len(msgs) == 1 and "runs eagerly from now on" in msgs[0]


_CALLS = {"n": 0}


def _call_number():  # read through a function: the cache key does not see into it
    return _CALLS["n"]


@pytest.mark.parametrize("mode", ["first", "always", "off"])
@pytest.mark.parametrize("change_at", [2, 3])
def test_check_retrace_modes(monkeypatch, mode, change_at):
    """A Python flag the key does not see flips the program from call `change_at` on: "first"
    (the default) catches it only on a variant's second call, "always" on any call, "off"
    never; the warning comes once, on the call that sees it."""
    monkeypatch.setattr(h.config, "check_retrace", mode)

    def f(x):
        return x * 2 if _call_number() < change_at else x + 2

    cf = h.compile(f)
    seen = []
    for i in range(1, 6):
        _CALLS["n"] = i
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cf(h.ones(1))
        if any(issubclass(w.category, TraceStabilityWarning) for w in caught):
            seen.append(i)
    want = {("first", 2): [2], ("first", 3): [], ("always", 2): [2], ("always", 3): [3],
            ("off", 2): [], ("off", 3): []}[mode, change_at]
    assert seen == want


def test_stable_function_is_not_flagged():
    @h.compile
    def f(x):
        return (x * 2).sum()

    with warnings.catch_warnings():
        warnings.simplefilter("error", TraceStabilityWarning)
        for _ in range(4):
            f(h.ones(3))


def test_concurrent_first_calls_compile_once_and_eager_ops_are_unaffected():
    model = nn.Linear(8, 4)
    f = h.compile(lambda x: (model(x) * 2).sum(1))
    xs = [h.randn(5, 8) for _ in range(8)]
    wt, bias = a(model.weight), a(model.bias)
    errors, wrong = [], []
    start = threading.Barrier(8)

    def worker(i):
        try:
            start.wait()
            for _ in range(10):
                r = a(f(xs[i]))
                e = ((a(xs[i]) @ wt.T + bias) * 2).sum(1)
                if not np.allclose(r, e, rtol=1e-5, atol=1e-5):
                    wrong.append(i)
                with h.no_grad() if i % 2 else h.enable_grad():
                    z = h.ones(3, requires_grad=True) * (i + 1)
                if not np.array_equal(a(z), np.full(3, i + 1.0)) or z.requires_grad == bool(i % 2):
                    wrong.append(("eager", i))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not wrong
    assert f.compile_count == 1


def test_eager_ops_on_one_thread_while_another_traces_stay_eager():
    """Tracing state is per thread: while the main thread traces 20 fresh functions, a second
    thread's eager ops return plain values (never traced ones, never a TraceError)."""
    stop, wrong, errors, done = threading.Event(), [], [], []

    def eager_loop():
        while not stop.is_set():
            try:
                v = a(h.ones(4) * 3.0 + 1.0)
                if not np.array_equal(v, np.full(4, 4.0)):
                    wrong.append(v)
                done.append(1)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e)[:200])

    t = threading.Thread(target=eager_loop)
    t.start()
    try:
        for i in range(20):
            f = h.compile(lambda x, i=i: sum((x * k + i).relu() for k in range(40)).sum())
            np.testing.assert_allclose(a(f(h.ones(8))), 8 * sum(k + i for k in range(40)))
    finally:
        stop.set()
        t.join(60)
    assert len(done) > 0 and not errors and not wrong, (len(done), errors[:2], len(wrong))


def test_grad_mode_is_per_thread():
    seen = []
    with h.no_grad():
        t = threading.Thread(target=lambda: seen.append(h.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


@pytest.mark.parametrize("call", [lambda f: f(h.ones(1), h.ones(1)), lambda f: f(),
                                  lambda f: f(h.ones(1), bogus=1)])
def test_wrong_arguments_to_a_compiled_function_are_a_hybrid_error(call):
    f = h.compile(lambda x: x * 2)
    with pytest.raises(h.HybridError, match=r"signature is <lambda>\(x\).*test_compile_comp"):
        call(f)
