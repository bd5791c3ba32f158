"""Differential tests: hypothesis builds random programs (elementwise with broadcasting,
reductions, movement ops, matmul, indexing/gather) over random shapes; eager execution and
@hybrid.compile must agree on the results and on the gradients, whether the backward pass runs
inside the compiled function (autograd.grad or loss.backward()) or eagerly after a compiled
forward. Every compiled graph is checked with compiler.ir.verify."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hybrid as h
from compiler.ir.verify import verify

RTOL, ATOL = 1e-5, 1e-5
SETTINGS = settings(deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

UNARY = {
    "neg": lambda t: -t,
    "sin": lambda t: t.sin(),
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "relu": lambda t: t.relu(),
    "square": lambda t: t * t,
    "exp_tanh": lambda t: t.tanh().exp(),
    "abs": lambda t: t.abs(),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "maximum": lambda a, b: h.maximum(a, b),
    "where": lambda a, b: h.where(a > b, a, b * 2.0),
}
REDUCE = {
    "sum": lambda t, d, k: t.sum(d, keepdim=k),
    "mean": lambda t, d, k: t.mean(d, keepdim=k),
    "amax": lambda t, d, k: t.amax(d, keepdim=k),
    "logsumexp": lambda t, d, k: h.logsumexp(t, d, keepdim=k),
}


@dataclass
class Program:
    """A straight-line program on a list of input tensors; `inputs` holds their numpy values."""

    inputs: list = field(default_factory=list)  # numpy arrays; float ones get gradients
    steps: list = field(default_factory=list)  # (description, fn(cur, inputs) -> new cur)

    def add_input(self, a: np.ndarray) -> int:
        self.inputs.append(a)
        return len(self.inputs) - 1

    def __call__(self, ins: list):
        cur = ins[0]
        for _, fn in self.steps:
            cur = fn(cur, ins)
        return cur

    def __repr__(self) -> str:
        shapes = [f"{a.dtype}{list(a.shape)}" for a in self.inputs]
        return f"Program(inputs={shapes}, steps={[d for d, _ in self.steps]})"


def _unary(name):
    return lambda cur, ins: UNARY[name](cur)


def _binary(name, j, flip):
    if flip:
        return lambda cur, ins: BINARY[name](ins[j], cur)
    return lambda cur, ins: BINARY[name](cur, ins[j])


@st.composite
def programs(draw, max_steps: int = 6):
    rng = np.random.RandomState(draw(st.integers(0, 2**31 - 1)))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=ndim, max_size=ndim)))
    p = Program()
    p.add_input(np.asarray(rng.randn(*shape), np.float32))
    for _ in range(draw(st.integers(2, max_steps))):
        n = int(np.prod(shape)) if shape else 1
        nd = len(shape)
        kinds = ["unary", "binary", "reshape"]
        kinds += ["reduce", "matmul", "index", "gather"] if nd >= 1 else []
        kinds += ["permute", "transpose"] if nd >= 2 else []
        kinds += ["expand"] if n <= 32 and nd <= 2 else []
        kinds += ["slice"] if nd >= 1 and max(shape) >= 2 else []
        kinds += ["cat"] if nd >= 1 and n <= 32 else []
        kind = draw(st.sampled_from(kinds))
        if kind == "unary":
            name = draw(st.sampled_from(sorted(UNARY)))
            p.steps.append((name, _unary(name)))
        elif kind == "binary":
            name = draw(st.sampled_from(sorted(BINARY)))
            # the other operand broadcasts against the current value: dims of 1, fewer dims,
            # or one more leading dim (then the result grows)
            oshape = [s if draw(st.booleans()) else 1 for s in shape]
            drop = draw(st.integers(0, nd))
            oshape = oshape[drop:]
            if n <= 32 and draw(st.booleans()):
                oshape = [draw(st.integers(1, 3))] + ([1] * nd if draw(st.booleans()) else
                                                       list(shape))
            j = p.add_input(np.asarray(rng.randn(*oshape), np.float32))
            flip = draw(st.booleans())
            p.steps.append((f"{name}(other={oshape}, flip={flip})", _binary(name, j, flip)))
            shape = tuple(np.broadcast_shapes(shape, tuple(oshape)))
        elif kind == "reduce" and nd >= 1:
            name = draw(st.sampled_from(sorted(REDUCE)))
            d = draw(st.integers(-nd, nd - 1))
            k = draw(st.booleans())
            p.steps.append((f"{name}(dim={d}, keepdim={k})",
                            lambda cur, ins, name=name, d=d, k=k: REDUCE[name](cur, d, k)))
            shape = list(shape)
            if k:
                shape[d] = 1
            else:
                del shape[d]
            shape = tuple(shape)
        elif kind == "reshape":
            choices = [(n,), tuple(reversed(shape))]
            if n % 2 == 0:
                choices.append((2, n // 2))
            new = draw(st.sampled_from(choices))
            p.steps.append((f"reshape{new}", lambda cur, ins, new=new: cur.reshape(*new)))
            shape = new
        elif kind == "permute" and nd >= 2:
            perm = tuple(draw(st.permutations(range(nd))))
            p.steps.append((f"permute{perm}", lambda cur, ins, perm=perm: cur.permute(*perm)))
            shape = tuple(shape[i] for i in perm)
        elif kind == "transpose" and nd >= 2:
            a, b = draw(st.sampled_from([(i, j) for i in range(nd) for j in range(nd) if i < j]))
            p.steps.append((f"transpose({a},{b})",
                            lambda cur, ins, a=a, b=b: cur.transpose(a, b)))
            shape = list(shape)
            shape[a], shape[b] = shape[b], shape[a]
            shape = tuple(shape)
        elif kind == "expand" and n <= 32 and nd <= 2:
            new = (draw(st.integers(1, 3)),) + tuple(s if s != 1 else 3 for s in shape)
            p.steps.append((f"expand{new}", lambda cur, ins, new=new: cur.expand(*new)))
            shape = new
        elif kind == "slice" and nd >= 1 and max(shape) >= 2:
            d = draw(st.sampled_from([i for i, s in enumerate(shape) if s >= 2]))
            start = draw(st.integers(0, shape[d] - 1))
            stop = draw(st.integers(start + 1, shape[d]))
            step = draw(st.sampled_from([1, 2]))
            idx = (slice(None),) * d + (slice(start, stop, step),)
            p.steps.append((f"getitem{idx}", lambda cur, ins, idx=idx: cur[idx]))
            shape = list(shape)
            shape[d] = len(range(start, stop, step))
            shape = tuple(shape)
        elif kind == "cat" and nd >= 1 and n <= 32:
            d = draw(st.integers(0, nd - 1))
            p.steps.append((f"cat(dim={d})",
                            lambda cur, ins, d=d: h.cat([cur, cur.sin()], dim=d)))
            shape = list(shape)
            shape[d] *= 2
            shape = tuple(shape)
        elif kind == "matmul" and nd >= 1:
            k = draw(st.integers(1, 4))
            j = p.add_input(rng.randn(shape[-1], k).astype(np.float32))
            p.steps.append((f"matmul(w=[{shape[-1]},{k}])",
                            lambda cur, ins, j=j: cur @ ins[j]))
            shape = shape[:-1] + (k,)
        elif kind == "index" and nd >= 1:
            m = draw(st.integers(1, 4))
            j = p.add_input(rng.randint(0, shape[0], size=(m,)).astype(np.int64))
            p.steps.append((f"index(rows={m})", lambda cur, ins, j=j: cur[ins[j]]))
            shape = (m,) + shape[1:]
        elif kind == "gather" and nd >= 1:
            d = draw(st.integers(0, nd - 1))
            m = draw(st.integers(1, 3))
            ishape = list(shape)
            ishape[d] = m
            j = p.add_input(rng.randint(0, shape[d], size=ishape).astype(np.int64))
            p.steps.append((f"gather(dim={d}, m={m})",
                            lambda cur, ins, d=d, j=j: h.gather(cur, d, ins[j])))
            shape = tuple(ishape)
    cot = np.asarray(rng.randn(*shape), np.float32)
    return p, cot


def arr(t):
    return t.detach().numpy()


def make_inputs(p: Program) -> list:
    return [h.tensor(a.copy(), requires_grad=a.dtype == np.float32) for a in p.inputs]


def float_indices(p: Program) -> list[int]:
    return [i for i, a in enumerate(p.inputs) if a.dtype == np.float32]


def eager_reference(p: Program, cot: np.ndarray):
    ins = make_inputs(p)
    out = p(ins)
    (out * h.tensor(cot)).sum().backward()
    grads = [ins[i].grad for i in float_indices(p)]
    return arr(out), [None if g is None else arr(g) for g in grads]


def check_close(got, want, what: str, p: Program) -> None:
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL, err_msg=f"{what}: {p!r}")


def check_grads(got: list, want: list, p: Program) -> None:
    for k, (g, w) in enumerate(zip(got, want)):
        if w is None:
            assert g is None or not np.any(g), f"grad {k}: {p!r}"
        else:
            assert g is not None, f"grad {k} missing: {p!r}"
            check_close(g, w, f"grad {k}", p)


@SETTINGS
@given(programs())
def test_compiled_with_autograd_grad_inside_matches_eager(case):
    p, cot = case
    want_out, want_grads = eager_reference(p, cot)
    fl = float_indices(p)

    def f(ins, c):
        out = p(ins)
        gs = h.autograd.grad([(out * c).sum()], [ins[i] for i in fl], allow_unused=True)
        return out, gs

    cf = h.compile(f)
    ins, c = make_inputs(p), h.tensor(cot)
    out, gs = cf(ins, c)
    verify(cf.graph_for(ins, c))
    check_close(arr(out), want_out, "output", p)
    check_grads([None if g is None else arr(g) for g in gs], want_grads, p)
    assert all(t.grad is None for t in ins)


@SETTINGS
@given(programs())
def test_compiled_with_backward_inside_matches_eager(case):
    p, cot = case
    want_out, want_grads = eager_reference(p, cot)

    def f(ins, c):
        out = p(ins)
        (out * c).sum().backward()
        return out

    cf = h.compile(f)
    c = h.tensor(cot)
    for _ in range(2):  # the second call hits the cache and accumulates into .grad as eager
        ins = make_inputs(p)
        out = cf(ins, c)
        check_close(arr(out), want_out, "output", p)
        check_grads([None if ins[i].grad is None else arr(ins[i].grad)
                     for i in float_indices(p)], want_grads, p)
    assert cf.cache_size() == 1
    verify(cf.graph_for(ins, c))


@SETTINGS
@given(programs())
def test_compiled_forward_eager_backward_matches_eager(case):
    p, cot = case
    want_out, want_grads = eager_reference(p, cot)
    cf = h.compile(lambda ins: p(ins))
    ins = make_inputs(p)
    out = cf(ins)
    verify(cf.graph_for(ins))
    check_close(arr(out), want_out, "output", p)
    (out * h.tensor(cot)).sum().backward()
    check_grads([None if ins[i].grad is None else arr(ins[i].grad) for i in float_indices(p)],
                want_grads, p)
