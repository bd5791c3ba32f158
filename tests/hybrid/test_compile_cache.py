"""The cache key of @hybrid.compile: nothing silently stale (random draws, non-tensor values,
globals, closures, attributes, default arguments, train/eval mode, optimizer hyperparameters,
replaced parameters, requires_grad, tensors mutated in place), the variant cap dropping the least
recently used variant, and no leak when a function is re-decorated many times. The recompile log,
the recompile budget and trace errors are in test_compile_guards.py."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from _compile_guards_helpers import arr, log_recompiles_fixture, recompile_lines  # noqa: F401
from subproc import run_python
from tolerance import assert_matches_eager

import hybrid as h
from hybrid import nn
from hybrid.config import config

# Every test runs on each backend (tests/conftest.py): the native one fails on a fallback.
pytestmark = pytest.mark.usefixtures("compiled_backend")


# --- randomness ------------------------------------------------------------------------------


@pytest.mark.parametrize("draw", ["rand", "randn", "dropout"])
def test_random_draws_fresh_values_equal_to_eager(draw):
    def f(x):
        if draw == "rand":
            return x + h.rand(4, 5)
        if draw == "randn":
            return x * h.randn(4, 5)
        return nn.functional.dropout(x, p=0.5, training=True)

    cf = h.compile(f)
    x = h.ones(4, 5)
    h.manual_seed(11)
    eager = [arr(f(x)) for _ in range(3)]
    state = np.asarray(h.random.default_generator.get_state()).copy()
    h.manual_seed(11)
    comp = [arr(cf(x)) for _ in range(3)]
    np.testing.assert_array_equal(np.asarray(h.random.default_generator.get_state()), state)
    for e, c in zip(eager, comp):
        np.testing.assert_array_equal(c, e)
    assert not np.array_equal(comp[0], comp[1])  # fresh each call
    assert cf.cache_size() == 1
    # eager draws after compiled calls continue the same stream
    h.manual_seed(11)
    cf(x)
    after_compiled = arr(h.rand(3))
    h.manual_seed(11)
    f(x)
    np.testing.assert_array_equal(arr(h.rand(3)), after_compiled)


# --- non-tensor values are part of the key ---------------------------------------------------


def test_python_scalar_argument_retraces_with_right_result():
    @h.compile
    def f(x, k, mode):
        return x * k if mode == "mul" else x + k

    x = h.randn(3)
    np.testing.assert_allclose(arr(f(x, 2.0, "mul")), arr(x) * 2, rtol=1e-6)
    np.testing.assert_allclose(arr(f(x, 3.0, "mul")), arr(x) * 3, rtol=1e-6)
    np.testing.assert_allclose(arr(f(x, 3.0, "add")), arr(x) + 3, rtol=1e-6)
    np.testing.assert_allclose(arr(f(x, 2.0, "mul")), arr(x) * 2, rtol=1e-6)
    assert f.cache_size() == 3


# NOTE: test_compile_guards.py has its own SCALE (its recompile log test sets it).
SCALE = 2.0


def test_module_global_scalar_is_in_the_key():
    global SCALE

    @h.compile
    def f(x):
        return x * SCALE

    x = h.randn(3)
    try:
        np.testing.assert_allclose(arr(f(x)), arr(x) * 2.0, rtol=1e-6)
        SCALE = 5.0
        np.testing.assert_allclose(arr(f(x)), arr(x) * 5.0, rtol=1e-6)
        assert f.cache_size() == 2
    finally:
        SCALE = 2.0


def test_closure_scalar_is_in_the_key():
    k = 1.5

    @h.compile
    def f(x):
        return x + k

    x = h.randn(3)
    np.testing.assert_allclose(arr(f(x)), arr(x) + 1.5, rtol=1e-6)
    k = -4.0
    np.testing.assert_allclose(arr(f(x)), arr(x) - 4.0, rtol=1e-6)
    assert f.cache_size() == 2


def test_closure_tensor_rebinding_and_values():
    w = h.randn(3)

    @h.compile
    def f(x):
        return x * w

    x = h.randn(3)
    np.testing.assert_allclose(arr(f(x)), arr(x) * arr(w), rtol=1e-6)
    with h.no_grad():
        w.mul_(3.0)  # values are read on every call
    np.testing.assert_allclose(arr(f(x)), arr(x) * arr(w), rtol=1e-6)
    assert f.cache_size() == 1
    w = h.randn(3)  # a different object: the graph read the old one
    np.testing.assert_allclose(arr(f(x)), arr(x) * arr(w), rtol=1e-6)


def test_global_defined_after_decorating_is_in_the_key():
    @h.compile
    def f(x):
        return x * LATER  # noqa: F821  (defined below, after decorating)

    x = h.randn(3)
    try:
        globals()["LATER"] = 2.0
        np.testing.assert_allclose(arr(f(x)), arr(x) * 2.0, rtol=1e-6)
        globals()["LATER"] = 3.0
        np.testing.assert_allclose(arr(f(x)), arr(x) * 3.0, rtol=1e-6)
    finally:
        globals().pop("LATER", None)


def test_plain_attributes_read_by_the_function_are_in_the_key(log_recompiles):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = 2.0

        def forward(self, x):
            return x * self.scale

    class Cfg:
        k = 0.0

    cfg = Cfg()
    cfg.k = 2.0
    m = Scaled()
    cm = h.compile(m)
    f = h.compile(lambda x: x * cfg.k)
    x = h.randn(3)
    cm(x), f(x)
    m.scale, cfg.k = 3.0, 5.0
    np.testing.assert_allclose(arr(cm(x)), arr(x) * 3.0, rtol=1e-6)
    np.testing.assert_allclose(arr(f(x)), arr(x) * 5.0, rtol=1e-6)
    msgs = recompile_lines(log_recompiles)
    assert "module attribute 'scale': 2.0 -> 3.0" in msgs[0]
    assert "attribute 'k': 2.0 -> 5.0" in msgs[1]


def test_default_argument_values_are_in_the_key():
    drop = nn.Dropout(0.5)

    @h.compile
    def f(x, mod=drop, k=2.0):
        return mod(x) * k

    x = h.ones(64)
    h.manual_seed(0)
    assert (arr(f(x)) == 0).any()
    drop.eval()
    np.testing.assert_array_equal(arr(f(x)), np.full(64, 2.0, np.float32))
    assert f.cache_size() == 2


def test_train_eval_switch_retraces_and_switching_back_reuses(log_recompiles):
    h.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    cm = h.compile(model)
    x = h.randn(4, 6)
    h.manual_seed(1)
    train_out = arr(cm(x))
    model.eval()
    eval_out = arr(cm(x))
    np.testing.assert_allclose(eval_out, arr(model(x)), rtol=1e-6)
    assert not np.allclose(train_out, eval_out)
    assert cm.forward.cache_size() == 2
    model.train()
    h.manual_seed(1)
    np.testing.assert_array_equal(arr(cm(x)), train_out)
    model.eval()
    np.testing.assert_array_equal(arr(cm(x)), eval_out)
    assert cm.forward.cache_size() == 2
    msgs = recompile_lines(log_recompiles)
    assert len(msgs) == 1 and "module train/eval mode: train -> eval" in msgs[0]


def test_optimizer_lr_change_is_a_runtime_value(log_recompiles):
    h.manual_seed(0)
    p = nn.Parameter(h.ones(3))
    opt = h.optim.SGD([p], lr=0.1)

    @h.compile
    def step(x):
        (p * x).sum().backward()
        opt.step()
        opt.zero_grad()

    x = h.ones(3)
    step(x)
    np.testing.assert_allclose(arr(p), 0.9, rtol=1e-6)
    opt.param_groups[0]["lr"] = 0.5
    step(x)
    np.testing.assert_allclose(arr(p), 0.4, rtol=1e-6)
    assert step.compile_count == 1 and not recompile_lines(log_recompiles)
    # weight_decay 0 -> non-zero changes the program (a decay term appears): that recompiles,
    # and the log names the hyperparameter
    opt.param_groups[0]["weight_decay"] = 0.1
    step(x)
    np.testing.assert_allclose(arr(p), 0.4 - 0.5 * (1 + 0.1 * 0.4), rtol=1e-6)
    assert step.compile_count == 2
    assert any("weight_decay" in m for m in recompile_lines(log_recompiles))


def test_replacing_a_parameter_retraces():
    h.manual_seed(0)
    model = nn.Linear(3, 2)
    cm = h.compile(model)
    x = h.randn(4, 3)
    cm(x)
    model.weight = nn.Parameter(h.zeros(2, 3))
    np.testing.assert_allclose(arr(cm(x)), np.broadcast_to(arr(model.bias), (4, 2)), rtol=1e-6)
    assert cm.forward.cache_size() == 2


def test_captured_requires_grad_change_retraces(log_recompiles):
    w = h.randn(3)

    @h.compile
    def f(x):
        return (x * w).sum()

    x = h.randn(3)
    out = f(x)
    assert not out.requires_grad
    w.requires_grad_(True)
    out = f(x)
    assert out.requires_grad
    out.backward()
    np.testing.assert_allclose(arr(w.grad), arr(x), rtol=1e-6)
    assert any("requires_grad" in m for m in recompile_lines(log_recompiles))


def test_tensor_argument_mutated_in_place_is_written_back():
    def f(x, y):
        x.add_(y)
        x.mul_(2.0)
        return x.sum() + y

    cf = h.compile(f)
    a1, a2 = h.randn(4), None
    a2 = h.tensor(arr(a1).copy())
    y = h.randn(4)
    for _ in range(3):
        re = f(a1, y)
        rc = cf(a2, y)
        np.testing.assert_array_equal(arr(a2), arr(a1))  # x + y, then * 2: exact everywhere
        assert_matches_eager(rc, re)  # the sum's order differs on native
    assert cf.cache_size() == 1


# --- the variant cap drops the least recently used variant ----------------------------------


def test_variant_cap_evicts_the_least_recently_used(monkeypatch):
    """With a cap of 2, calling A again after A, B makes B (not A) the one the third variant
    drops: re-calling A is a hit and re-calling B compiles, with eager's values throughout."""
    monkeypatch.setattr(config, "cache_size_limit", 2)
    f = h.compile(lambda x: x * 2 + 1)
    a, b, c = h.ones(1), h.ones(2) * 3, h.ones(3) * 5
    f(a), f(b), f(a), f(c)
    assert (f.compile_count, f.cache_size()) == (3, 2)
    np.testing.assert_array_equal(f(a).numpy(), [3.0])
    assert f.compile_count == 3, "the most recently used variant was evicted (FIFO, not LRU)"
    np.testing.assert_array_equal(f(b).numpy(), [7.0, 7.0])
    assert f.compile_count == 4, "B was least recently used and should have been dropped"
    np.testing.assert_array_equal(f(c).numpy(), [11.0] * 3)
    assert f.compile_count == 5 and f.cache_size() == 2


LRU_CHILD = """
import hybrid as h
f = h.compile(lambda x: x + 1)
xs = [h.ones(n) for n in range(1, 6)]
for x in xs:
    f(x)
for x in xs[::-1]:
    f(x)
print(h.config.cache_size_limit, f.cache_size(), f.compile_count)
"""


def test_cache_size_limit_from_the_environment_in_a_subprocess():
    """HYBRID_CACHE_SIZE_LIMIT=3 keeps 3 of 5 shapes: going back over them, the 3 most recent
    hit and the 2 oldest compile again (5 + 2); the default (64) keeps all 5."""
    r = run_python(LRU_CHILD, HYBRID_CACHE_SIZE_LIMIT="3")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["3", "3", "7"]
    r = run_python(LRU_CHILD)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["64", "5", "5"]


# --- no leak when re-decorating --------------------------------------------------------------


def test_redecorating_in_a_loop_does_not_leak():
    refs = []
    graphs = []
    x = h.randn(8)
    for i in range(200):
        @h.compile
        def f(x):
            return (x * 2.0).relu() + 1.0

        f(x)
        refs.append(weakref.ref(f))
        graphs.append(weakref.ref(f.last_entry.graph))
        del f
    gc.collect()
    alive = sum(r() is not None for r in refs)
    alive_graphs = sum(r() is not None for r in graphs)
    assert alive == 0, f"{alive} CompiledFunction objects leaked"
    assert alive_graphs == 0, f"{alive_graphs} graphs leaked"


def test_redecorated_training_step_does_not_leak():
    h.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = h.optim.SGD(model.parameters(), lr=0.1)
    x = h.randn(3, 4)
    refs = []
    for _ in range(20):
        @h.compile
        def step(x):
            model(x).sum().backward()
            opt.step()
            opt.zero_grad()

        step(x)
        refs.append(weakref.ref(step))
        del step
    out = h.compile(model)(x)
    out.sum().backward()  # an autograd node into a compiled call also goes away
    del out
    gc.collect()
    assert sum(r() is not None for r in refs) == 0


def test_keyword_arguments_in_another_order_are_the_same_call():
    """f(x, a=p, b=q) and f(x, b=q, a=p) share one entry and both give eager's answer (was: the
    second order swapped p and q, 23 instead of 32)."""
    def fn(x, *, a, b, scale=1.0):
        return x + a * 2 + b * 3 * scale

    f = h.compile(fn)
    x, p, q = h.tensor([0.0]), h.tensor([1.0]), h.tensor([10.0])
    want = fn(x, a=p, b=q).numpy()
    for kwargs in ({"a": p, "b": q}, {"b": q, "a": p}, {"b": q, "a": p}, {"a": p, "b": q}):
        np.testing.assert_array_equal(f(x, **kwargs).numpy(), want)
    assert f.cache_size() == 1
    np.testing.assert_array_equal(f(x, scale=2.0, b=q, a=p).numpy(),
                                  fn(x, a=p, b=q, scale=2.0).numpy())
    d = h.compile(lambda kw: kw["a"] * 2 + kw["b"] * 3)  # a dict keeps its order: two entries
    np.testing.assert_array_equal(d({"b": q, "a": p}).numpy(), d({"a": p, "b": q}).numpy())


def test_an_argument_object_whose_tensor_is_replaced_recompiles(log_recompiles):
    """A tensor held by an argument object (an attribute, an OrderedDict value) is read as a
    captured tensor; replacing it gives eager's answer, not the old tensor's (was: 2, not 10)."""
    from collections import OrderedDict

    class Box:
        pass

    t, t2 = h.tensor([1.0]), h.tensor([5.0])
    od, box = OrderedDict(a=t), Box()
    box.t = t
    f = h.compile(lambda d: d["a"] * 2)
    g = h.compile(lambda b: b.t * 2)
    assert f(od).item() == 2.0 and g(box).item() == 2.0
    od["a"], box.t = t2, t2
    assert f(od).item() == 10.0 and g(box).item() == 10.0
    assert f.cache_size() == 2 and g.cache_size() == 2
    assert any("the tensor it holds as 't' is another tensor" in line
               for line in recompile_lines(log_recompiles))
    t2.add_(1.0)  # the same tensor updated in place: no recompile, the new value
    assert g(box).item() == 12.0 and g.cache_size() == 2
