"""Symbolic sizes for ONNX export with `dynamic_axes`: which of a traced graph's integers (reshape
targets, slice bounds, fill and iota shapes, value shapes) follow the dynamic dims, and how.

hybrid graphs have static shapes. To export a graph whose named input axes may change, the
function is traced again (shapes only, no compile) at nearby sizes: with k dynamic dims, at the
example sizes b plus each subset of the dims grown by one (2^k traces), which fixes every integer
as a multilinear polynomial in the dims (products such as batch*seq included), and once more at
b + 2 on every dim, which that polynomial must predict. The traces must be the same program but
for those integers; anything else (another node, a float constant such as 1/batch, a literal
array with the size in it, an integer the polynomial does not predict) is refused, naming the
node. What this cannot see: Python code that branches on a size far from the sizes traced
(`min(seq, 16)` traced at 8, 9, 10), as with any tracer; export at a size of the branch you
will run."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np

from compiler.ir.ops import Literal

MAX_SYMBOLS = 3


@dataclass(frozen=True)
class Poly:
    """sum(coef * prod(dims[i] for i in monomial)): an integer polynomial in the dynamic dims,
    multilinear; `names` are the dims' names, for printing."""

    terms: tuple[tuple[tuple[int, ...], int], ...]  # ((monomial, coef), ...), sorted, coef != 0
    names: tuple[str, ...]

    def value(self, point: tuple[int, ...]) -> int:
        return sum(c * int(np.prod([point[i] for i in m], dtype=np.int64)) for m, c in self.terms)

    def __str__(self) -> str:
        parts = []
        for m, c in self.terms:
            dims = "*".join(self.names[i] for i in m)
            parts.append(dims if c == 1 and dims else
                         f"{c}*{dims}" if dims else str(c))
        return " + ".join(parts) or "0"


def fit(values: list[int], base: tuple[int, ...], names: tuple[str, ...]) -> int | Poly:
    """The multilinear polynomial through `values`, observed at base + 1_S for each subset S of
    the dims in `corners(k)` order; an int when it does not depend on the dims."""
    k = len(base)
    subsets = corners(k)
    g = dict(zip(subsets, values))
    # Moebius inversion: f(b + y) = sum_S c_S prod_{i in S} y_i over y in {0, 1}^k
    c = {s: sum((-1) ** (len(s) - len(t)) * g[t] for t in subsets if set(t) <= set(s))
         for s in subsets}
    # expand prod_{i in S} (x_i - b_i) into monomials of x
    coef: dict[tuple[int, ...], int] = {}
    for s, cs in c.items():
        if not cs:
            continue
        for u in subsets:
            if set(u) <= set(s):
                rest = [i for i in s if i not in u]
                coef[u] = coef.get(u, 0) + cs * int(np.prod([-base[i] for i in rest],
                                                            dtype=np.int64))
    terms = tuple(sorted(((m, v) for m, v in coef.items() if v),
                         key=lambda mv: (len(mv[0]), mv[0])))  # by degree
    if all(not m for m, _ in terms):
        return sum(v for _, v in terms)
    return Poly(terms, names)


def corners(k: int) -> list[tuple[int, ...]]:
    """Every subset of range(k), smallest first: the sample points base + 1_S."""
    return [s for n in range(k + 1) for s in itertools.combinations(range(k), n)]


class Mismatch(Exception):
    """The traces differ by more than integers; args: (node position or None, what)."""


def _split(x: Any, ints: list[int]) -> Any:
    """`x` with every int (not bool) replaced by a marker, appended to `ints`."""
    if isinstance(x, bool) or x is None or isinstance(x, str | float):
        return x
    if isinstance(x, int | np.integer):
        ints.append(int(x))
        return _INT
    if isinstance(x, tuple | list):
        return (type(x).__name__, tuple(_split(v, ints) for v in x))
    if isinstance(x, Literal):
        return ("literal", x._key)
    return x  # dtypes, enums and other hashable attributes compare as they are


_INT = ("int",)


def skeleton(graph: Any) -> tuple[list, list[list[int]]]:
    """Per item (graph inputs, then nodes, then outputs) a structure with the integers taken out,
    and those integers."""
    index = {v.id: i for i, v in enumerate(graph.inputs)}
    shapes, items = [], []
    for v in graph.inputs:
        ints: list[int] = []
        items.append(("input", v.dtype, _split(tuple(v.shape), ints)))
        shapes.append(ints)
    for n in graph.nodes:
        ints = []
        attrs = tuple((k, _split(v, ints)) for k, v in sorted(n.attrs.items()))
        items.append((n.op, tuple(index[v.id] for v in n.inputs), n.out.dtype, attrs,
                      _split(tuple(n.out.shape), ints)))
        shapes.append(ints)
        index[n.out.id] = len(index)
    items.append(("outputs", tuple(index[v.id] for v in graph.outputs)))
    shapes.append([])
    return items, shapes


def generalize(graphs: list[Any], check: Any, base: tuple[int, ...], check_point: tuple,
               names: tuple[str, ...]) -> list[list[int | Poly]]:
    """Per item of `skeleton(graphs[0])`, its integers as ints or Polys fitted on `graphs` (traced
    at the `corners`), verified against `check` (traced at `check_point`). Raises Mismatch."""
    sk = [skeleton(g) for g in graphs]
    ck_items, ck_ints = skeleton(check)
    items0 = sk[0][0]
    for items, _ in sk[1:] + [(ck_items, ck_ints)]:
        if len(items) != len(items0):
            raise Mismatch(None, "a different number of inputs and primitives "
                                 f"({len(items0) - 1} and {len(items) - 1})")
        for pos, (a, b) in enumerate(zip(items0, items)):
            if a != b:
                raise Mismatch(pos, _difference(a, b))
    out = []
    for pos in range(len(items0)):
        row = []
        for j in range(len(sk[0][1][pos])):
            p = fit([s[1][pos][j] for s in sk], base, names)
            want = ck_ints[pos][j]
            got = p if isinstance(p, int) else p.value(check_point)
            if got != want:
                raise Mismatch(pos, f"an integer ({[s[1][pos][j] for s in sk]} then {want}) "
                                    "that is not a product-of-sizes polynomial")
            row.append(p)
        out.append(row)
    return out


def _difference(a: tuple, b: tuple) -> str:
    """What differs between two skeleton items of the same position."""
    if a[0] != b[0]:
        return "another primitive"
    if len(a) > 3 and a[1] != b[1]:
        return "other inputs"
    if len(a) > 3 and a[3] != b[3]:
        diff = [k for (k, x), (_, y) in zip(a[3], b[3]) if x != y]
        shown = {k: (x, y) for (k, x), (_, y) in zip(a[3], b[3]) if k in diff}
        return ("an attribute that is not an integer size changes with the size ("
                + ", ".join(f"{k}: {x!r} then {y!r}" for k, (x, y) in shown.items()) + ")")
    return "another structure"


def rebuild(x: Any, ints: list) -> Any:
    """`x` (an attribute value) with its integers taken, in order, from `ints` (consumed)."""
    if isinstance(x, bool) or x is None or isinstance(x, str | float):
        return x
    if isinstance(x, int | np.integer):
        return ints.pop(0)
    if isinstance(x, tuple | list):
        return type(x)(rebuild(v, ints) for v in x)
    return x


def is_symbolic(x: Any) -> bool:
    if isinstance(x, Poly):
        return True
    if isinstance(x, tuple | list):
        return any(is_symbolic(v) for v in x)
    return False


@dataclass
class SymNode:
    """A node seen with its symbolic attributes (what the ONNX emitters read)."""

    op: Any
    inputs: tuple
    attrs: dict
    out: Any
    loc: str = ""


class SymbolicSizes:
    """The generalized integers of one graph: per node its attributes, per value its shape."""

    def __init__(self, graph: Any, sizes: list[list[int | Poly]]):
        self.graph = graph
        self._nodes: dict[int, SymNode] = {}
        self._shapes: dict[int, tuple] = {}
        n_in = len(graph.inputs)
        for v, ints in zip(graph.inputs, sizes):
            self._shapes[v.id] = tuple(ints)
        for node, ints in zip(graph.nodes, sizes[n_in:]):
            ints = list(ints)
            attrs = {k: rebuild(v, ints) for k, v in sorted(node.attrs.items())}
            shape = tuple(ints)
            self._shapes[node.out.id] = shape
            if is_symbolic(list(attrs.values())):
                self._nodes[id(node)] = SymNode(node.op, node.inputs, attrs, node.out, node.loc)

    def node(self, node: Any) -> Any:
        """`node` itself when its attributes are static, else its SymNode."""
        return self._nodes.get(id(node), node)

    def shape(self, value: Any) -> tuple:
        return self._shapes.get(value.id, tuple(value.shape))
