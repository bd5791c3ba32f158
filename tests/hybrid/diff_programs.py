"""Hypothesis strategies for the differential tests (test_differential.py): random straight-line
programs over one dtype family (float16/32/64, int32/64, bool) with broadcasting, reductions,
movement ops (flip included), matmul and indexing, on shapes with empty and size-1 dims, inputs
holding special values (nan, +-inf, -0.0) and laid out contiguous, transposed, strided, offset
or with negative strides."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

import hybrid as h

FLOATS = ("float16", "float32", "float64")
INTS = ("int32", "int64")
LAYOUTS = ("contiguous", "transposed", "strided", "offset", "negative")

UNARY = {
    "float": {
        "neg": lambda t: -t, "sin": lambda t: t.sin(), "tanh": lambda t: t.tanh(),
        "sigmoid": lambda t: t.sigmoid(), "relu": lambda t: t.relu(),
        "square": lambda t: t * t, "exp_tanh": lambda t: t.tanh().exp(),
        "abs": lambda t: t.abs(),
    },
    "int": {"neg": lambda t: -t, "abs": lambda t: t.abs(), "square": lambda t: t * t},
    "bool": {"not": lambda t: ~t},
}
BINARY = {
    "float": {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / (b * b + 1.0), "maximum": lambda a, b: h.maximum(a, b),
        "where": lambda a, b: h.where(a > b, a, b * 2.0),
    },
    "int": {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "maximum": lambda a, b: h.maximum(a, b), "where": lambda a, b: h.where(a > b, a, b * 2),
    },
    "bool": {"and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
             "where": lambda a, b: h.where(a, b, ~b)},
}
REDUCE = {
    "float": {
        "sum": lambda t, d, k: t.sum(d, keepdim=k), "mean": lambda t, d, k: t.mean(d, keepdim=k),
        "amax": lambda t, d, k: t.amax(d, keepdim=k),
        "logsumexp": lambda t, d, k: h.logsumexp(t, d, keepdim=k),
    },
    "int": {"sum": lambda t, d, k: t.sum(d, keepdim=k),
            "amax": lambda t, d, k: t.amax(d, keepdim=k)},
    "bool": {"any": lambda t, d, k: t.any(d, keepdim=k), "all": lambda t, d, k: t.all(d, keepdim=k)},
}
EMPTY_OK = {"sum", "mean", "any", "all"}  # reductions defined over an empty dim
OTHER = {"float": lambda t: t.sin(), "int": lambda t: -t, "bool": lambda t: ~t}  # for cat


def family(dtype: str) -> str:
    return "float" if dtype in FLOATS else "int" if dtype in INTS else "bool"


class Program:
    """A straight-line program on a list of input tensors; `inputs` holds their numpy values and
    `layouts` how each is laid out in memory when passed to the compiled function."""

    # NOTE: a plain class, not a dataclass: hypothesis prints dataclasses field by field (the
    # lambdas of `steps` unreadably) and would not use __repr__ in a falsifying example.
    def __init__(self, dtype: str = "float32") -> None:
        self.dtype = dtype
        self.inputs: list = []
        self.layouts: list = []
        self.steps: list = []  # (description, fn(cur, inputs) -> new cur)

    def add_input(self, a: np.ndarray, layout: str = "contiguous") -> int:
        self.inputs.append(a)
        self.layouts.append(layout)
        return len(self.inputs) - 1

    def __call__(self, ins: list):
        cur = ins[0]
        for _, fn in self.steps:
            cur = fn(cur, ins)
        return cur

    def differentiable(self) -> list[int]:
        """Indices of the inputs that get gradients (the floating ones)."""
        return [i for i, a in enumerate(self.inputs) if a.dtype.kind == "f"]

    def __repr__(self) -> str:
        shapes = [f"{a.dtype}{list(a.shape)}:{lay}" for a, lay in zip(self.inputs, self.layouts)]
        vals = [a.tolist() if a.size <= 12 else "..." for a in self.inputs]
        return (f"Program(inputs={shapes}, steps={[d for d, _ in self.steps]}, "
                f"values={vals})")


SPECIALS = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0])


def values(rng: np.random.RandomState, shape: tuple, dtype: str, special: bool) -> np.ndarray:
    """Sample values of `dtype`; with `special`, about one in six floats is nan, +-inf or +-0."""
    if dtype == "bool":
        return np.asarray(rng.rand(*shape) < 0.5)
    if dtype in INTS:
        return np.asarray(rng.randint(-5, 6, size=shape), dtype=dtype)
    a = np.asarray(rng.randn(*shape))
    if special and a.size:
        pick = rng.rand(*shape) < 1 / 6
        a = np.where(pick, SPECIALS[rng.randint(0, len(SPECIALS), size=shape)], a)
    return np.asarray(a, dtype=dtype)


def laid_out(a: np.ndarray, layout: str) -> np.ndarray:
    """A view holding `a`'s values in the given memory layout (numpy, zero-copy for hybrid)."""
    if a.ndim == 0 or layout == "contiguous":
        return a.copy()
    if layout == "transposed":
        return np.ascontiguousarray(a.T).T
    if layout == "strided":
        base = np.zeros(a.shape[:-1] + (2 * a.shape[-1] + 1,), a.dtype)
        base[..., 1::2] = a
        return base[..., 1::2]
    if layout == "offset":
        base = np.zeros((a.size + 3,), a.dtype)
        base[3:] = a.ravel()
        return base[3:].reshape(a.shape)
    assert layout == "negative"
    rev = np.ascontiguousarray(a[::-1])
    return rev[::-1]  # negative stride along dim 0


def tensor_of(a: np.ndarray, layout: str, requires_grad: bool):
    """A hybrid leaf sharing the memory of `a` laid out as `layout`."""
    t = h.from_numpy(laid_out(a, layout))
    return t.requires_grad_(True) if requires_grad else t


def _shape(draw, ndim: int) -> tuple:
    return tuple(draw(st.lists(st.sampled_from([0, 1, 1, 2, 3, 4]), min_size=ndim,
                               max_size=ndim)))


@st.composite
def programs(draw, max_steps: int = 6, dtypes: tuple = FLOATS + INTS + ("bool",)):
    """A (Program, cotangent) pair."""
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    dtype = draw(st.sampled_from(dtypes))
    fam = family(dtype)
    special = fam == "float" and draw(st.booleans())
    shape = _shape(draw, draw(st.integers(0, 3)))
    p = Program(dtype=dtype)
    layouts = st.sampled_from(LAYOUTS)

    def new_input(s, dt=dtype):
        return p.add_input(values(rng, tuple(s), dt, special), draw(layouts))

    new_input(shape)
    for _ in range(draw(st.integers(2, max_steps))):
        n = int(np.prod(shape)) if shape else 1
        nd = len(shape)
        kinds = ["unary", "binary", "reshape"]
        kinds += ["reduce", "flip"] if nd >= 1 else []
        kinds += ["index", "gather"] if nd >= 1 and shape[0] > 0 and n > 0 else []
        kinds += ["matmul"] if nd >= 1 and fam != "bool" else []
        kinds += ["permute", "transpose"] if nd >= 2 else []
        kinds += ["expand"] if n <= 32 and nd <= 2 else []
        kinds += ["slice"] if nd >= 1 and max(shape) >= 2 else []
        kinds += ["cat"] if nd >= 1 and n <= 32 else []
        kind = draw(st.sampled_from(kinds))
        if kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY[fam])))
            p.steps.append((name, lambda cur, ins, f=UNARY[fam][name]: f(cur)))
        elif kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY[fam])))
            oshape = [s if draw(st.booleans()) else 1 for s in shape]
            oshape = oshape[draw(st.integers(0, nd)):]
            if n <= 32 and draw(st.booleans()):
                oshape = [draw(st.integers(1, 3))] + ([1] * nd if draw(st.booleans()) else
                                                       list(shape))
            j = new_input(oshape)
            flip = draw(st.booleans())
            f = BINARY[fam][name]
            p.steps.append((f"{name}(other={oshape}, flip={flip})",
                            (lambda cur, ins, f=f, j=j: f(ins[j], cur)) if flip else
                            (lambda cur, ins, f=f, j=j: f(cur, ins[j]))))
            shape = tuple(np.broadcast_shapes(shape, tuple(oshape)))
        elif kind == "reduce":
            d = draw(st.integers(-nd, nd - 1))
            names = sorted(REDUCE[fam]) if shape[d] > 0 else sorted(set(REDUCE[fam]) & EMPTY_OK)
            name = draw(st.sampled_from(names))
            k = draw(st.booleans())
            p.steps.append((f"{name}(dim={d}, keepdim={k})",
                            lambda cur, ins, f=REDUCE[fam][name], d=d, k=k: f(cur, d, k)))
            shape = list(shape)
            if k:
                shape[d] = 1
            else:
                del shape[d]
            shape = tuple(shape)
            if fam == "int" and name == "sum":
                dtype = "int64"  # int32 sums promote, as PyTorch
        elif kind == "flip":
            dims = tuple(sorted(set(draw(st.lists(st.integers(0, nd - 1), min_size=1,
                                                  max_size=nd)))))
            p.steps.append((f"flip{dims}", lambda cur, ins, dims=dims: cur.flip(dims)))
        elif kind == "reshape":
            choices = [(n,), tuple(reversed(shape))]
            if n % 2 == 0 and n > 0:
                choices.append((2, n // 2))
            new = draw(st.sampled_from(choices))
            p.steps.append((f"reshape{new}", lambda cur, ins, new=new: cur.reshape(*new)))
            shape = new
        elif kind == "permute":
            perm = tuple(draw(st.permutations(range(nd))))
            p.steps.append((f"permute{perm}", lambda cur, ins, perm=perm: cur.permute(*perm)))
            shape = tuple(shape[i] for i in perm)
        elif kind == "transpose":
            a, b = draw(st.sampled_from([(i, j) for i in range(nd) for j in range(nd) if i < j]))
            p.steps.append((f"transpose({a},{b})",
                            lambda cur, ins, a=a, b=b: cur.transpose(a, b)))
            shape = list(shape)
            shape[a], shape[b] = shape[b], shape[a]
            shape = tuple(shape)
        elif kind == "expand":
            new = (draw(st.integers(1, 3)),) + tuple(s if s != 1 else 3 for s in shape)
            p.steps.append((f"expand{new}", lambda cur, ins, new=new: cur.expand(*new)))
            shape = new
        elif kind == "slice":
            d = draw(st.sampled_from([i for i, s in enumerate(shape) if s >= 2]))
            start = draw(st.integers(0, shape[d] - 1))
            stop = draw(st.integers(start + 1, shape[d]))
            step = draw(st.sampled_from([1, 2]))
            idx = (slice(None),) * d + (slice(start, stop, step),)
            p.steps.append((f"getitem{idx}", lambda cur, ins, idx=idx: cur[idx]))
            shape = list(shape)
            shape[d] = len(range(start, stop, step))
            shape = tuple(shape)
        elif kind == "cat":
            d = draw(st.integers(0, nd - 1))
            p.steps.append((f"cat(dim={d})",
                            lambda cur, ins, d=d, o=OTHER[fam]: h.cat([cur, o(cur)], dim=d)))
            shape = list(shape)
            shape[d] *= 2
            shape = tuple(shape)
        elif kind == "matmul":
            k = draw(st.integers(0, 3))
            j = new_input((shape[-1], k), dtype)
            p.steps.append((f"matmul(w=[{shape[-1]},{k}])",
                            lambda cur, ins, j=j: cur @ ins[j]))
            shape = shape[:-1] + (k,)
        elif kind == "index":
            m = draw(st.integers(0, 4))
            j = p.add_input(rng.randint(0, shape[0], size=(m,)).astype(np.int64))
            p.steps.append((f"index(rows={m})", lambda cur, ins, j=j: cur[ins[j]]))
            shape = (m,) + shape[1:]
        elif kind == "gather":
            d = draw(st.sampled_from([i for i, s in enumerate(shape) if s > 0]))
            ishape = list(shape)
            ishape[d] = draw(st.integers(1, 3))
            j = p.add_input(rng.randint(0, shape[d], size=ishape).astype(np.int64))
            p.steps.append((f"gather(dim={d}, m={ishape[d]})",
                            lambda cur, ins, d=d, j=j: h.gather(cur, d, ins[j])))
            shape = tuple(ishape)
    cot = np.asarray(rng.randn(*shape), dtype if fam == "float" else "float32")
    return p, cot
