"""Hand-built graphs and the checks every pass test runs: before/after IR text, the interpreter
giving the same outputs, the input graph left untouched, the verifier passing on the result."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable

import numpy as np

from compiler.ir.graph import Graph, Value
from compiler.ir.interpret import interpret
from compiler.ir.ops import Op
from compiler.ir.printer import format_graph
from compiler.ir.types import DType, TensorType
from compiler.ir.verify import verify

_SHORT = {d.short: d for d in DType}


def T(spec: str) -> TensorType:
    """`T("f32[4,3]")` -> TensorType((4, 3), float32); `T("i64[]")` is 0-d."""
    m = re.fullmatch(r"(\w+)\[([\d,]*)\]", spec)
    assert m, spec
    shape = tuple(int(s) for s in m.group(2).split(",") if s)
    return TensorType(shape, _SHORT[m.group(1)])


def graph(name: str, *specs: str) -> tuple[Graph, list[Value]]:
    """A graph named `name` with inputs x, y, z, ... of the given types."""
    g = Graph(name=name)
    xs = [g.add_input(T(s), "xyzwuv"[i]) for i, s in enumerate(specs)]
    return g, xs


def full(g: Graph, value, spec: str) -> Value:
    t = T(spec)
    return g.add(Op.FULL, value=value, shape=t.shape, dtype=t.dtype)


def body(g: Graph) -> str:
    """The printed graph without its header line (passes never change the inputs)."""
    return format_graph(g).split("\n", 1)[1]


def expect(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


def random_inputs(g: Graph, rng: np.random.Generator, specials: bool = True) -> list[np.ndarray]:
    """One array per input; floats are normal samples, with -0.0 and 0.0 mixed in."""
    out = []
    for v in g.inputs:
        t = v.type
        if t.dtype.is_floating:
            a = rng.standard_normal(t.shape).astype(t.dtype.np)
            if specials and a.size >= 2:
                a.reshape(-1)[:2] = (-0.0, 0.0)
        elif t.dtype.is_bool:
            a = rng.random(t.shape) < 0.5
        else:
            a = rng.integers(-5, 6, t.shape).astype(t.dtype.np)
        out.append(np.asarray(a))
    return out


def run(g: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return interpret(g, inputs)


def assert_same(a: list[np.ndarray], b: list[np.ndarray], exact: bool = True) -> None:
    """Same shapes and dtypes; values bit for bit (exact) or close, NaN matching NaN."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, x.dtype, y.shape, y.dtype)
        if exact:
            assert np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes(), (x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6, equal_nan=True)


def check_pass(fn: Callable[[Graph], Graph], g: Graph, expected: str | None,
               seed: int = 0, exact: bool = True) -> Graph:
    """Run pass `fn` on `g`; check the result's text, its numerics, its validity, and that `g`
    itself did not change. Returns the result."""
    verify(g)
    before = format_graph(g)
    out = fn(g)
    assert format_graph(g) == before, "the pass mutated its input graph"
    verify(out)
    assert format_graph(out).split("\n")[0] == before.split("\n")[0]
    if expected is not None:
        assert body(out) == expect(expected), "\n" + body(out)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        inputs = random_inputs(g, rng)
        assert_same(run(g, inputs), run(out, inputs), exact)
    return out


def mlp() -> Graph:
    """relu(x @ w + b) summed over rows: matmul, broadcast bias, maximum with 0, a reduction."""
    g, (x, w, b) = graph("mlp", "f32[8,4]", "f32[4,3]", "f32[3]")
    h = g.add(Op.MATMUL, [x, w], loc="mlp.py:3")
    hb = g.add(Op.ADD, [h, g.add(Op.EXPAND, [b], shape=(8, 3))], loc="mlp.py:3")
    r = g.add(Op.MAXIMUM, [hb, full(g, 0.0, "f32[]")], loc="mlp.py:4")
    g.set_outputs([g.add(Op.SUM, [r], axes=(0,), loc="mlp.py:5")], ["loss"])
    return g
