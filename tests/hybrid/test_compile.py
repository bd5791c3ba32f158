"""@hybrid.compile: decorator forms, arguments and outputs, module weights as graph inputs, and
readable graphs (typed lines with the user's file:line, stages, Graphviz)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import hybrid as h
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.verify import verify
from hybrid import nn

# Every test runs on each backend (tests/conftest.py): the native one fails on a fallback.
pytestmark = pytest.mark.usefixtures("compiled_backend")


def arr(t):
    return t.detach().numpy()


def lineno() -> int:
    """The line of the caller (to assert graphs name the user's line)."""
    return inspect.currentframe().f_back.f_lineno


# --- decorator forms -------------------------------------------------------------------------


def test_bare_decorator():
    @h.compile
    def f(x, y):
        return x * y + 1.0

    x, y = h.randn(4, 3), h.randn(4, 3)
    np.testing.assert_array_equal(arr(f(x, y)), arr(x) * arr(y) + 1.0)
    assert f.cache_size() == 1
    assert f.__name__ == "f"


def test_call_form_and_options_form():
    def f(x):
        return (x * 2.0).sum()

    g = h.compile(f)
    e = h.compile(fallback="eager")(f)
    x = h.randn(5)
    assert g(x).item() == pytest.approx(arr(x).sum() * 2, rel=1e-6)
    assert e(x).item() == pytest.approx(arr(x).sum() * 2, rel=1e-6)
    with pytest.raises(ValueError, match="fallback"):
        h.compile(f, fallback="nope")


def test_compile_module_forward_and_attribute_passthrough():
    h.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    cm = h.compile(model)
    x = h.randn(3, 4)
    np.testing.assert_allclose(arr(cm(x)), arr(model(x)), rtol=1e-6, atol=1e-6)
    assert cm.training is model.training
    assert [p for p in cm.parameters()] == [p for p in model.parameters()]
    assert cm[0] is model[0]
    cm.eval()
    assert model.training is False
    cm.some_attr = 3
    assert model.some_attr == 3


# --- arguments and outputs -------------------------------------------------------------------


def test_nested_arguments_are_graph_inputs_and_outputs_nest():
    @h.compile
    def f(xs, d, scale, tag, nothing):
        assert tag == "mode-a" and nothing is None
        a, b = xs
        return {"sum": (a + b) * scale, "pair": [d["w"] * a, (d["v"], 1, "s")]}

    a, b, w, v = h.randn(3), h.randn(3), h.randn(3), h.randn(2)
    out = f([a, b], {"w": w, "v": v}, 2.0, "mode-a", None)
    assert set(out) == {"sum", "pair"}
    assert isinstance(out["pair"], list) and isinstance(out["pair"][1], tuple)
    np.testing.assert_allclose(arr(out["sum"]), (arr(a) + arr(b)) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(arr(out["pair"][0]), arr(w) * arr(a), rtol=1e-6)
    np.testing.assert_array_equal(arr(out["pair"][1][0]), arr(v))
    assert out["pair"][1][1:] == (1, "s")
    # new values in the same structure: no retrace, the result follows (never frozen constants)
    a2, w2 = h.randn(3), h.randn(3)
    out2 = f([a2, b], {"w": w2, "v": v}, 2.0, "mode-a", None)
    assert f.cache_size() == 1
    np.testing.assert_allclose(arr(out2["sum"]), (arr(a2) + arr(b)) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(arr(out2["pair"][0]), arr(w2) * arr(a2), rtol=1e-6)
    g = f.graph_for([a, b], {"w": w, "v": v}, 2.0, "mode-a", None)
    assert len(g.inputs) == 4
    assert not any(n.op is Op.CONSTANT for n in g.nodes)


def test_tensor_values_change_between_calls_result_follows():
    @h.compile
    def f(x):
        return x.exp().sum(0)

    for _ in range(3):
        x = h.randn(4, 2)
        np.testing.assert_allclose(arr(f(x)), np.exp(arr(x)).sum(0), rtol=1e-6)
    assert f.cache_size() == 1


def test_same_tensor_passed_twice():
    @h.compile
    def f(a, b):
        return a * 2.0 + b

    x, y = h.randn(3), h.randn(3)
    np.testing.assert_allclose(arr(f(x, x)), arr(x) * 3, rtol=1e-6)
    np.testing.assert_allclose(arr(f(x, y)), arr(x) * 2 + arr(y), rtol=1e-6)


def test_keyword_arguments():
    @h.compile
    def f(x, *, bias, power=2):
        return x ** power + bias

    x, b = h.randn(3), h.randn(3)
    np.testing.assert_allclose(arr(f(x, bias=b)), arr(x) ** 2 + arr(b), rtol=1e-5)
    np.testing.assert_allclose(arr(f(x, bias=b, power=3)), arr(x) ** 3 + arr(b), rtol=1e-5)
    assert f.cache_size() == 2


def test_module_weights_are_inputs_in_place_update_does_not_retrace():
    h.manual_seed(1)
    model = nn.Linear(4, 3)

    @h.compile
    def f(x):
        return model(x)

    x = h.randn(2, 4)
    f(x)
    with h.no_grad():
        model.weight.mul_(2.0)
        model.bias.add_(1.0)
    y = f(x)
    assert f.cache_size() == 1
    np.testing.assert_allclose(arr(y), arr(x) @ arr(model.weight).T + arr(model.bias),
                               rtol=1e-5, atol=1e-6)
    g = f.graph_for(x)
    assert any("weight" in n for n in g.input_names)
    assert not any(n.op is Op.CONSTANT and n.out.type.shape == (3, 4) for n in g.nodes)


def test_module_weights_follow_optimizer_step_without_retrace():
    h.manual_seed(2)
    model = nn.Linear(4, 1)
    opt = h.optim.SGD(model.parameters(), lr=0.1)
    cm = h.compile(model)
    x = h.randn(8, 4)
    for _ in range(3):
        loss = model(x).sum()
        loss.backward()
        opt.step()
        opt.zero_grad()
        np.testing.assert_allclose(arr(cm(x)), arr(model(x)), rtol=1e-5, atol=1e-6)
    assert cm.forward.cache_size() == 1


# --- readable graphs -------------------------------------------------------------------------


def test_graph_prints_typed_lines_with_user_line():
    @h.compile
    def f(x, w):
        line = lineno() + 1
        y = (x @ w).relu()
        return y, line

    x, w = h.randn(128, 64), h.randn(64, 512)
    _, line = f(x, w)
    g = f.graph_for(x, w)
    assert isinstance(g, Graph)
    verify(g)
    text = str(g)
    assert f"test_compile.py:{line}" in text
    mm = [ln for ln in text.splitlines() if "matmul(" in ln]
    assert len(mm) == 1
    assert mm[0].strip().startswith("v") and ": f32[128,512] = matmul(" in mm[0]
    assert mm[0].rstrip().endswith(f"# test_compile.py:{line}")


def test_graphs_lists_stages_with_times():
    @h.compile
    def f(x):
        return (x + 0.0) * 1.0 + x

    f(h.randn(3))
    stages = f.graphs
    assert stages[0].name == "trace"
    assert len(stages) >= 2
    names = [s.name for s in stages]
    assert "dce" in names
    for s in stages:
        assert s.seconds >= 0.0
        assert isinstance(s.graph, Graph)
        verify(s.graph)
        assert s.name in str(s) and "ms)" in str(s)
    assert len(stages[-1].graph.nodes) <= len(stages[0].graph.nodes)


def test_to_dot_one_node_per_ir_node():
    @h.compile
    def f(x, y):
        return (x * y).sum() + 1.0

    g = f.graph_for(h.randn(4), h.randn(4))
    dot = g.to_dot()
    assert dot.startswith("digraph")
    assert dot.count("shape=box") == len(g.nodes)
    assert dot.count("shape=ellipse") == len(g.inputs)


def test_graph_for_does_not_retrace_on_hit():
    @h.compile
    def f(x):
        return x + 1.0

    x = h.randn(2)
    f(x)
    g1 = f.graph_for(x)
    g2 = f.graph_for(h.randn(2))
    assert g1 is g2 and f.cache_size() == 1


def test_clear_cache():
    @h.compile
    def f(x):
        return x + 1.0

    f(h.randn(2))
    f.clear_cache()
    assert f.cache_size() == 0 and f.graphs == []
    f(h.randn(2))
    assert f.cache_size() == 1


def test_compiled_method_on_a_class():
    class Scaler:
        def __init__(self, k):
            self.k = k

        @h.compile
        def apply(self, x):
            return x * self.k

    s = Scaler(3.0)
    x = h.randn(3)
    np.testing.assert_allclose(arr(s.apply(x)), arr(x) * 3.0, rtol=1e-6)
    s.k = 4.0  # a plain attribute the traced code read: part of the key
    np.testing.assert_allclose(arr(s.apply(x)), arr(x) * 4.0, rtol=1e-6)


def test_constant_outputs_keep_their_shape(compiled_backend):
    """An output that depends on no input (rebuilt around the backend's run) has eager's shape,
    0-d included (it came back as shape (1,))."""
    def f(x):
        return x * 2, h.ones(()) * 3, h.zeros(2, 1) + 1

    got = h.compile(f)(h.ones(2))
    want = f(h.ones(2))
    for g, w in zip(got, want):
        assert tuple(g.shape) == tuple(w.shape)
        np.testing.assert_array_equal(g.numpy(), w.numpy())
