"""The backend protocol (compiler/backends): the registry, the choice before fusion, the backend
kept on the compiled entry and reused by the compiled backward, and a new backend added as a
sibling without touching the CPU one."""

from __future__ import annotations

import numpy as np
import pytest

import hybrid
from compiler import backends
from compiler.backends.interpreter import InterpretedGraph


def test_the_registry_holds_the_interpreter_and_the_cpu_backend():
    assert backends.names() == ["interpreter", "native"]
    assert backends.get("native").accepts([np.ones(2)]) and backends.get("native").accepts(None)
    with pytest.raises(ValueError, match="no backend 'tpu'; the backends are interpreter, native"):
        backends.get("tpu")


def test_an_unknown_backend_name_is_a_hybrid_error_at_the_call(monkeypatch):
    monkeypatch.setattr(hybrid.config, "backend", "tpu")
    f = hybrid.compile(lambda x: x * 2)
    with pytest.raises(hybrid.HybridError, match=r"no backend 'tpu'; the backends are "
                                                 r"interpreter, native.*HYBRID_BACKEND"):
        f(hybrid.ones(2))


@pytest.mark.parametrize("name", ["native", "interpreter"])
def test_the_backward_runs_on_the_backend_of_the_forward(monkeypatch, name):
    monkeypatch.setattr(hybrid.config, "backend", name)
    w = hybrid.nn.Parameter(hybrid.tensor([1.0, -2.0, 3.0]))
    f = hybrid.compile(lambda x: (x * w).tanh().sum())
    x = hybrid.tensor([0.5, 0.25, -1.0])
    f(x).backward()
    entry = f.last_entry
    assert entry.backend == name and entry.run.backend == name
    assert entry.backward is not None and entry.backward.backend == name
    want = (1 - np.tanh(x.numpy() * w.detach().numpy()) ** 2) * x.numpy()
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-6)


class CountingBackend:
    """A new backend, written as a sibling: runs graphs on the interpreter and counts them."""

    name = "counting"

    def __init__(self):
        self.compiled = []

    def unsupported(self, graph):
        return ["erf on float32"] if any(n.op.value == "erf" for n in graph.nodes) else []

    def accepts(self, arrays):
        return True

    def compile(self, graph, donate=None):
        self.compiled.append(graph.name)
        run = InterpretedGraph(graph)
        run.backend = self.name
        return run


def test_a_new_backend_is_a_sibling_registered_by_name(monkeypatch):
    """Registered under its name, selected by hybrid.config.backend: it compiles the forward
    and (on the first backward) the backward; a graph it says it cannot run goes to the
    interpreter with the warning, before any work."""
    counting = CountingBackend()
    monkeypatch.setitem(backends._REGISTRY, "counting", counting)
    monkeypatch.setattr(hybrid.config, "backend", "counting")
    w = hybrid.nn.Parameter(hybrid.ones(3))
    f = hybrid.compile(lambda x: (x * w).exp().sum())
    x = hybrid.tensor([0.1, 0.2, 0.3])
    f(x).backward()
    assert len(counting.compiled) == 2 and f.last_entry.backend == "counting"
    np.testing.assert_allclose(w.grad.numpy(), np.exp(x.numpy()) * x.numpy(), rtol=1e-6)
    g = hybrid.compile(lambda x: hybrid.erf(x) * 2)
    with pytest.warns(RuntimeWarning, match=r"on the interpreter \(the counting backend has no "
                                            r"erf on float32\)"):
        np.testing.assert_allclose(g(x).numpy(), 2 * np.array(
            [0.1124629, 0.2227026, 0.3286268]), rtol=1e-6)
    assert len(counting.compiled) == 2 and g.last_entry.backend == "interpreter"


def test_native_stages_are_named_and_timed_in_fn_graphs(tmp_path, monkeypatch):
    """The native compile is not one opaque stage: fusion, row fusion, loop order, the GEMM
    epilogue, lowering, LLVM IR and LLVM each appear in order with their time; a disk-cache hit
    is one stage of its own."""
    import time

    monkeypatch.setenv("HYBRID_CACHE_DIR", str(tmp_path))
    names = ["fuse", "row fusion", "loop order", "lanes", "gemm epilogue", "threads",
             "lower and plan memory", "LLVM IR", "LLVM optimize and load"]
    for attempt, want in (("fresh", names), ("cached", ["from the disk cache"])):
        f = hybrid.compile(lambda x, w: (x @ w).softmax(-1).sum(0))
        t0 = time.perf_counter()
        f(hybrid.ones(8, 4), hybrid.ones(4, 3))
        wall = time.perf_counter() - t0
        native = [s for s in f.graphs if s.name.startswith("native: ")]
        assert [s.name[len("native: "):] for s in native] == want, attempt
        assert all(s.seconds >= 0 for s in native) and sum(s.seconds for s in native) <= wall


def test_arrays_a_backend_does_not_take_go_to_the_interpreter_quietly(monkeypatch):
    """A backend that does not accept the example arrays (the CPU one and CuPy arrays) is
    passed over for the interpreter without a fallback warning: nothing was refused."""
    class NumpyShy(CountingBackend):
        name = "shy"

        def accepts(self, arrays):
            return False

    shy = NumpyShy()
    monkeypatch.setitem(backends._REGISTRY, "shy", shy)
    monkeypatch.setattr(hybrid.config, "backend", "shy")
    import warnings

    f = hybrid.compile(lambda x: x * 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert f(hybrid.ones(2)).tolist() == [3.0, 3.0]
    assert shy.compiled == [] and f.last_entry.backend == "interpreter"
