"""Fusion: kernel counts of the common patterns (elementwise chains, softmax, log_softmax +
nll_loss, layer norm, matmul + bias + relu, movement ops), the printed kernel IR and fused
program, and memory planning of random fused programs. Every fused program is run by
kernel_eval and compared with the interpreter."""

from __future__ import annotations

import random

import numpy as np
import pytest
from native import check_eval

import hybrid
import hybrid.nn.functional as F
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.types import DType, TensorType
from compiler.kernel import Kernel, Load, format_expr, walk
from compiler.lower import buffer_uses, lower
from compiler.passes.fuse import Gemm, fuse
from compiler.passes.memory_plan import check_plan

F32 = DType.float32


def traced(fn, *args):
    """(graph, input arrays) of `fn` traced by hybrid.compile on `args`."""
    c = hybrid.compile(fn)
    g = c.graph_for(*args)
    arrays = [a._value for a in args] + [t._value for t in c.last_entry.captured]
    return g, arrays


def fused(fn, *args, rtol=2e-6, atol=1e-6):
    g, arrays = traced(fn, *args)
    return check_eval(g, arrays, rtol, atol)


def kernels(prog) -> list[Kernel]:
    return [s for s in prog.steps if isinstance(s, Kernel)]


def gemms(prog) -> list[Gemm]:
    return [s for s in prog.steps if isinstance(s, Gemm)]


# --- printing -----------------------------------------------------------------------------------


def test_softmax_kernel_prints_readably():
    prog = fused(lambda x: F.softmax(x, -1), hybrid.randn(8, 32))
    (k,) = kernels(prog)
    text = str(k)
    lines = text.split("\n")
    assert lines[0].startswith("kernel k") and "in a0: f32" in lines[0] and "out a1: f32" in lines[0]
    assert "space outer=[8] inner=[32]" in lines[0]
    # exp is computed once, kept in the output, summed, then scaled there by 1 / sum
    assert [ln.strip() for ln in lines[1:]] == [
        "r0 = max(over inner) a0[0+(32,1)]",
        "a1[0+(32,1)] = exp(sub(a0[0+(32,1)], r0))",
        "r2 = sum(over inner) a1[0+(32,1)]",
        "a1[0+(32,1)] = mul(a1[0+(32,1)], reciprocal(r2))"], text


def test_expensive_value_is_kept_in_the_output_it_becomes():
    """softmax: exp once, into the output; not when the exp itself is needed elsewhere."""
    prog = fused(lambda x: F.softmax(x, -1), hybrid.randn(6, 40), rtol=1e-6)
    (k,) = kernels(prog)
    assert sum(format_expr(s.expr).count("exp(") for s in k.stages) == 1, str(k)
    assert len(k.args) == 2, str(k)  # input and output: no scratch buffer

    def softmax_and_exp(x):
        e = (x - x.amax(-1, keepdim=True)).exp()
        return e / e.sum(-1, keepdim=True), e

    prog = fused(softmax_and_exp, hybrid.randn(6, 40), rtol=1e-6)
    (k,) = kernels(prog)
    outs = {v.id for v in prog.graph.outputs}
    assert {a.value for a in k.args if a.writes} == outs, str(k)


def test_value_read_after_the_overwriting_store_is_not_kept_there():
    """Regression: abs(exp(tanh(x))) went into the output of neg(relu(it)), and the gradient,
    computed after that store, read the overwritten value (through an inlined compare)."""
    def step(x, cot):
        y = -(x.tanh().exp().abs().relu())
        (y * cot).sum().backward()
        return y, x.grad

    x, cot = hybrid.tensor(1.7640524, requires_grad=True), hybrid.tensor(0.4001572)
    fused(step, x, cot)  # kernel_eval vs the interpreter


def test_padded_load_inside_a_per_row_consumer():
    """exp(pad(z)) + x.sum(1): the consumer over the reduction's row shape holds a padded load
    under an op (regression: re-indexing it to the row space left a None in the expression)."""
    from native import check_native

    g = Graph(name="padrow")
    x = g.add_input(TensorType((4, 8), F32), "x")
    z = g.add_input(TensorType((2, 1), F32), "z")
    s = g.add(Op.SUM, [x], axes=(1,))
    pz = g.add(Op.PAD, [z], pads=((1, 1, 0), (0, 0, 0)), value=0.5)
    g.set_outputs([g.add(Op.ADD, [g.add(Op.EXP, [pz]), s])])
    rng = np.random.default_rng(0)
    check_native(g, [rng.standard_normal((4, 8)).astype(np.float32),
                     rng.standard_normal((2, 1)).astype(np.float32)], rtol=1e-6, atol=1e-6)


# A pad read through views: (pending views on the pad's output, expected kernel count). Each
# runs natively and by kernel_eval against the interpreter; the pad is a value that reaches
# the edges (value 0.5, interior padding on one dim) so a wrong low or size shows.
PAD_VIEWS = {
    # conv backward: the sum of window pads read through the slice dropping the conv padding
    # and the permute back to NCHW (unit-step slice with a start past the low)
    "permute_slice": (lambda g, p: g.add(Op.PERMUTE, [g.add(Op.SLICE, [p], starts=(0, 1, 2),
                      stops=(3, 6, 9), steps=(1, 1, 1))], perm=(2, 0, 1)), 1),
    # maxpool backward after a conv: a size-1 dim inserted and broadcast
    "reshape_expand": (lambda g, p: g.add(Op.EXPAND, [g.add(Op.RESHAPE, [p], shape=(3, 1, 8, 10))],
                       shape=(2, 3, 4, 8, 10)), 1),
    # a strided slice cannot be expressed: the pad gets its own kernel
    "strided_slice": (lambda g, p: g.add(Op.SLICE, [p], starts=(0, 0, 1), stops=(3, 8, 10),
                      steps=(1, 2, 3)), 2),
}


@pytest.mark.parametrize("name", sorted(PAD_VIEWS))
def test_pad_read_through_views(name):
    from native import check_native

    view, kernels = PAD_VIEWS[name]
    g = Graph(name=f"pad_{name}")
    x = g.add_input(TensorType((3, 4, 6), F32), "x")
    p = g.add(Op.PAD, [x], pads=((0, 0, 0), (1, 0, 1), (2, 2, 0)), value=0.5)  # (3, 8, 10)
    y = view(g, p)
    g.set_outputs([g.add(Op.EXP, [g.add(Op.ADD, [y, y])])])
    prog = check_eval(g, [np.random.default_rng(1).standard_normal((3, 4, 6)).astype(np.float32)],
                      rtol=1e-6)
    assert prog.kernel_count == kernels, str(prog)
    check_native(g, [np.random.default_rng(2).standard_normal((3, 4, 6)).astype(np.float32)],
                 rtol=1e-6, eval_too=False)


def test_conv_input_gradient_is_one_kernel():
    """The nine windows of a 3x3 conv give the input gradient as nine pads; with the relu's
    gradient they are one kernel of padded loads (was: one kernel per window, then a sum)."""
    x = hybrid.tensor(np.random.default_rng(0).standard_normal((2, 4, 6, 6)).astype(np.float32),
                      requires_grad=True)
    w = hybrid.tensor(np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32))

    @hybrid.compile
    def f(x, w):
        F.conv2d(F.relu(x), w, padding=1).sum().backward()
        return x.grad

    got = f(x, w)
    x.grad = None
    F.conv2d(F.relu(x), w, padding=1).sum().backward()
    np.testing.assert_allclose(got.numpy(), x.grad.numpy(), rtol=1e-5, atol=1e-5)
    text = f.describe()
    pads = [line for line in text.splitlines() if line.count("pad(") == 9]
    assert len(pads) == 1, text


def test_conv_windows_read_a_channels_last_copy_of_the_input():
    """conv2d pads the NCHW input seen channels-last; the padded windows would each read the
    input across the grain (the last dim strided), so the permuted input is realized once (a
    tiled transposing copy) and every window's padded load runs along its last dim."""
    from native import check_native

    x = hybrid.tensor(np.random.default_rng(0).standard_normal((2, 8, 6, 6)).astype(np.float32))
    w = hybrid.tensor(np.random.default_rng(1).standard_normal((4, 8, 3, 3)).astype(np.float32))

    def f(x, w):
        return F.conv2d(x, w, padding=1)

    g, arrays = traced(f, x, w)
    prog = check_eval(g, arrays, rtol=1e-5, atol=1e-5)
    padded = [e for k in kernels(prog) for s in k.stages for e in walk(s.expr)
              if type(e).__name__ == "Padded"]
    assert len(padded) == 9, str(prog)
    assert all(e.strides[-1] == 1 for e in padded), [e.strides for e in padded]
    check_native(g, arrays, rtol=1e-5, atol=1e-5, eval_too=False)
    torch = pytest.importorskip("torch")
    want = torch.nn.functional.conv2d(torch.tensor(x.numpy()), torch.tensor(w.numpy()), padding=1)
    np.testing.assert_allclose(hybrid.compile(f)(x, w).numpy(), want.numpy(), rtol=1e-4,
                               atol=1e-4)


def test_fused_program_prints_graph_annotated_with_kernels():
    def mlp(x, w, b):
        return (x @ w.T + b).relu().sum()

    prog = fused(mlp, hybrid.randn(4, 8), hybrid.randn(6, 8), hybrid.randn(6))
    text = str(prog)
    graph_part, _, rest = text.partition("\n}\n")
    assert graph_part.startswith("graph ")
    assert "= matmul(" in graph_part and "# " in graph_part
    names = [s.name for s in prog.steps]
    for line in graph_part.split("\n")[1:]:
        if "= matmul(" in line:
            assert line.rstrip().endswith(f"; {gemms(prog)[0].name}"), line
    assert any(line.rstrip().endswith(f"; {kernels(prog)[0].name}")
               for line in graph_part.split("\n") if "= max" in line or "= sum" in line)
    assert f"gemm {names[0]}: buf" in rest
    assert "kernel " in rest


# --- kernel counts --------------------------------------------------------------------------------


def test_elementwise_chain_is_one_kernel():
    def chain(x, y):
        return ((x * 2 + y).tanh() * x.sigmoid() - y.exp()).abs().sqrt()

    prog = fused(chain, hybrid.randn(16, 33), hybrid.randn(33))
    assert prog.kernel_count == 1 and not gemms(prog)


@pytest.mark.parametrize("name,fn,count", [
    ("softmax", lambda x: F.softmax(x, -1), 1),
    ("softmax_dim0", lambda x: F.softmax(x, 0), 1),
    ("log_softmax", lambda x: F.log_softmax(x, 1), 1),
    ("layer_norm", lambda x: F.layer_norm(x, (x.shape[-1],)), 1),
])
def test_row_ops_are_one_kernel(name, fn, count):
    prog = fused(fn, hybrid.randn(24, 40))
    assert prog.kernel_count == count, str(prog)


def test_layer_norm_with_affine_is_one_kernel():
    w, b = hybrid.randn(40), hybrid.randn(40)
    prog = fused(lambda x: F.layer_norm(x, (40,), w, b), hybrid.randn(24, 40))
    assert prog.kernel_count == 1, str(prog)


# NOTE: cross_entropy is one row kernel (max, sum of exp, the picked log-probability as a masked
# sum over classes, per-row loss) and one kernel for the mean over the non-ignored rows.
CROSS_ENTROPY_KERNELS = 2


def test_cross_entropy_kernel_count():
    y = hybrid.randint(0, 40, (24,))
    prog = fused(lambda x, y: F.cross_entropy(x, y), hybrid.randn(24, 40), y)
    assert prog.kernel_count <= CROSS_ENTROPY_KERNELS, str(prog)
    # the log_softmax part is one kernel: a max and a sum over the class dim
    rows = [k for k in kernels(prog) if [(s.kind, s.op) for s in k.stages][:2] == [
        ("reduce", Op.MAX), ("reduce", Op.SUM)]]
    assert len(rows) == 1 and rows[0].inner == (40,), str(prog)


def test_matmul_bias_relu_is_gemm_plus_one_kernel():
    prog = fused(lambda x, w, b: (x @ w.T + b).relu(), hybrid.randn(8, 16), hybrid.randn(32, 16),
                 hybrid.randn(32), rtol=1e-5)
    assert len(gemms(prog)) == 1 and prog.kernel_count == 1, str(prog)
    # the transposed weight is read by BLAS directly, not copied
    assert gemms(prog)[0].b in {v.id for v in prog.graph.inputs}


def test_gemm_reads_a_computed_operand_through_a_transposed_view():
    """(2x)^T @ y with 2x also summed: 2x gets a buffer that BLAS reads transposed and the sum
    reads too (not a transposed copy made just for the GEMM)."""
    def f(x, y):
        e = x * 2
        return e.T @ y, e.sum(0)

    prog = fused(f, hybrid.randn(8, 6), hybrid.randn(8, 5), rtol=1e-5)
    (gemm,) = gemms(prog)
    producer = prog.graph.producers()[gemm.a]
    assert producer.op is Op.MUL and gemm.a_view.strides[-2:] == (1, 6), str(prog)


def test_movement_ops_fold_into_loads():
    def moves(x, y):
        a = x.permute(1, 0)[2:10:2]  # slice of a transpose
        b = y.reshape(4, 1, 6).expand(4, 5, 6).transpose(0, 1)  # contiguous reshape + expand
        return a.reshape(4, 1, 6) * 2 + b.sum(0).reshape(4, 1, 6)

    prog = fused(moves, hybrid.randn(6, 12), hybrid.randn(24))
    ins = {v.id for v in prog.graph.inputs}
    for k in kernels(prog):  # no kernel just copies a view of an input into a buffer
        for s in k.stages:
            if s.kind == "store" and isinstance(s.expr, Load):
                assert k.args[s.expr.arg].value not in ins, str(prog)
    assert prog.kernel_count <= 2, str(prog)
    # every realized buffer is an input, an output or the reduction
    realized = set(prog.buffers) - ins - {v.id for v in prog.graph.outputs}
    producers = prog.graph.producers()
    assert all(producers[v].op is Op.SUM for v in realized), str(prog)


def test_reshape_of_transposed_view_realizes_its_input():
    prog = fused(lambda x: (x.T * 3).reshape(-1)[::5] + 1, hybrid.randn(7, 10))
    assert prog.kernel_count == 2, str(prog)
    prog = fused(lambda x: x.T.reshape(5, 14).exp(), hybrid.randn(7, 10))
    assert prog.kernel_count == 2, str(prog)


def test_reshape_of_transposed_view_by_hand():
    g = Graph(name="reshape_t")
    x = g.add_input(TensorType((3, 4, 5), F32), "x")
    t = g.add(Op.PERMUTE, [x], perm=(0, 2, 1))  # [3,5,4]
    r = g.add(Op.RESHAPE, [t], shape=(15, 4))  # expressible: merges the leading dims
    r2 = g.add(Op.RESHAPE, [t], shape=(3, 20))  # not expressible as strides
    g.set_outputs([g.add(Op.NEG, [r]), g.add(Op.NEG, [r2])])
    prog = check_eval(g, [np.random.default_rng(0).standard_normal((3, 4, 5)).astype("f4")])
    assert prog.kernel_count == 3, str(prog)


def test_shared_value_realized_once():
    def shared(x):
        e = (x * 3).exp()
        return e.sum(1), e.max(0)

    prog = fused(shared, hybrid.randn(12, 20), rtol=1e-5)
    assert prog.kernel_count <= 3


def test_mlp_training_step_kernel_count():
    hybrid.manual_seed(0)
    model = hybrid.nn.Sequential(hybrid.nn.Linear(8, 16), hybrid.nn.ReLU(),
                                 hybrid.nn.Linear(16, 4))
    opt = hybrid.optim.Adam(model.parameters(), lr=1e-2)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    g, arrays = traced(step, hybrid.randn(10, 8), hybrid.randint(0, 4, (10,)))
    prog = check_eval(g, arrays, rtol=1e-5, atol=1e-6)
    assert len(gemms(prog)) == 5  # 2 forward, 3 backward (no grad for the input)
    assert prog.kernel_count <= 30, prog.kernel_count


def _update_graph(form, shape=(6, 5)):
    """x `form`-updated with the product a^T @ b (an SGD step when form is x - lr * g)."""
    g = Graph(name="update")
    x = g.add_input(TensorType(shape, F32), "x")
    a = g.add_input(TensorType((7, shape[0]), F32), "a")
    b = g.add_input(TensorType((7, shape[1]), F32), "b")
    prod = g.add(Op.MATMUL, [g.add(Op.PERMUTE, [a], perm=(1, 0)), b])
    g.set_outputs([form(g, x, prod)])
    return g


def _lr(g, v):
    return g.add(Op.FULL, value=v, shape=(), dtype=F32)


ACCUMULATE = {
    "x - lr*g": (lambda g, x, p: g.add(Op.SUB, [x, g.add(Op.MUL, [p, _lr(g, 0.1)])]), -0.1),
    "x - g*lr'": (lambda g, x, p: g.add(Op.SUB, [x, g.add(Op.MUL, [_lr(g, 0.5), p])]), -0.5),
    "g*c + x": (lambda g, x, p: g.add(Op.ADD, [g.add(Op.MUL, [p, _lr(g, 2.0)]), x]), 2.0),
    "x + g": (lambda g, x, p: g.add(Op.ADD, [x, p]), 1.0),
    "x - g": (lambda g, x, p: g.add(Op.SUB, [x, p]), -1.0),
}


@pytest.mark.parametrize("name", sorted(ACCUMULATE))
def test_update_with_a_product_is_one_accumulating_gemm(name):
    from native import check_native

    form, alpha = ACCUMULATE[name]
    g = _update_graph(form)
    rng = np.random.default_rng(3)
    inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    prog = check_eval(g, inputs, rtol=1e-6, atol=1e-6)
    (gemm,) = gemms(prog)
    assert prog.kernel_count == 0 and gemm.c == g.inputs[0].id and gemm.alpha == alpha, str(prog)
    assert "+ buf" in str(gemm)
    # not in place: x is copied into the output, then accumulated into
    ex = check_native(g, inputs, rtol=1e-6, atol=1e-6, eval_too=False)
    kinds = [type(s).__name__ for s in ex.plan.steps]
    assert kinds == ["CopyStep", "GemmStep"] and ex.plan.steps[1].beta == 1.0, kinds


def test_in_place_accumulating_gemm_writes_the_input():
    from compiler.backend_cpu import CpuExecutable

    g = _update_graph(ACCUMULATE["x - lr*g"][0])
    rng = np.random.default_rng(4)
    x, a, b = (rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs)
    want = x - np.float32(0.1) * (a.T @ b)
    ex = CpuExecutable(g, use_cache=False, donate={0: 0})
    assert [type(s).__name__ for s in ex.plan.steps] == ["GemmStep"]
    (out,) = ex([x, a, b])
    assert out is x
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-6)


def test_accumulation_is_not_fused_when_it_cannot_be():
    from native import check_native

    rng = np.random.default_rng(5)
    sub = ACCUMULATE["x - lr*g"][0]
    cases = {
        # the product is also an output: it must be stored as it is
        "product read": lambda g, x, p: (sub(g, x, p), p),
        # x is broadcast (a bias): BLAS's C cannot broadcast
        "broadcast x": lambda g, x, p: sub(g, g.add(Op.EXPAND, [g.add(Op.SLICE, [x], starts=(
            0, 0), stops=(1, 5), steps=(1, 1))], shape=(6, 5)), p),
        # a non-constant scale
        "tensor scale": lambda g, x, p: g.add(Op.SUB, [x, g.add(Op.MUL, [p, x])]),
    }
    for name, form in cases.items():
        def build(g, x, p, form=form):
            out = form(g, x, p)
            return out[0] if isinstance(out, tuple) else out

        g = _update_graph(build)
        if name == "product read":
            g = _update_graph(lambda g, x, p: sub(g, x, p))
            g.set_outputs([g.outputs[0], g.nodes[-4].out])  # the matmul
        inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
        prog = check_eval(g, inputs, rtol=1e-6, atol=1e-6)
        assert all(s.c is None for s in gemms(prog)) and prog.kernel_count >= 1, (name, str(prog))
        check_native(g, inputs, rtol=1e-6, atol=1e-6, eval_too=False)


def test_zero_or_partial_updates_are_not_accumulating_gemms():
    """x - 0 * (a @ b) is NaN where the product is inf (BLAS would skip the product: x); a
    kernel writing only part of the output (a piece of a concat) is not the whole GEMM."""
    rng = np.random.default_rng(7)
    g = _update_graph(lambda g, x, p: g.add(Op.SUB, [x, g.add(Op.MUL, [p, _lr(g, 0.0)])]))
    inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    inputs[1][0, 0] = np.inf
    prog = check_eval(g, inputs)
    assert all(s.c is None for s in gemms(prog)), str(prog)

    g = Graph(name="piece")
    x = g.add_input(TensorType((2, 4), F32), "x")
    y = g.add_input(TensorType((2, 2), F32), "y")
    a = g.add_input(TensorType((2, 3), F32), "a")
    b = g.add_input(TensorType((3, 4), F32), "b")
    p = g.add(Op.MATMUL, [a, b])
    left = [g.add(Op.SLICE, [v], starts=(0, 0), stops=(2, 2), steps=(1, 1)) for v in (x, p)]
    upd = g.add(Op.SUB, [left[0], g.add(Op.MUL, [left[1], _lr(g, 0.1)])])
    g.set_outputs([g.add(Op.CONCAT, [upd, y], axis=1)])
    inputs = [rng.standard_normal(v.shape).astype(np.float32) for v in g.inputs]
    prog = check_eval(g, inputs, rtol=1e-6, atol=1e-6)
    assert all(s.c is None for s in gemms(prog)), str(prog)


def test_accumulating_gemm_whose_c_is_an_operand_is_not_in_place():
    """x - lr * (x @ b): BLAS must not write the x it reads as A, so x is copied first."""
    from compiler.backend_cpu import CpuExecutable

    g = Graph(name="self_update")
    x = g.add_input(TensorType((5, 5), F32), "x")
    b = g.add_input(TensorType((5, 5), F32), "b")
    p = g.add(Op.MATMUL, [x, b])
    g.set_outputs([g.add(Op.SUB, [x, g.add(Op.MUL, [p, _lr(g, 0.25)])])])
    rng = np.random.default_rng(6)
    xa, ba = (rng.standard_normal((5, 5)).astype(np.float32) for _ in range(2))
    want = xa - np.float32(0.25) * (xa @ ba)
    ex = CpuExecutable(g, use_cache=False, donate={0: 0})
    assert [type(s).__name__ for s in ex.plan.steps] == ["CopyStep", "GemmStep"]
    (out,) = ex([xa.copy(), ba])
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


# --- memory planning on random programs -----------------------------------------------------------


def random_graph(rng: random.Random) -> tuple[Graph, list[np.ndarray]]:
    """Elementwise, broadcast, reduce, matmul and movement ops over a few shapes."""
    n, m = rng.choice([3, 8, 17]), rng.choice([4, 9, 32])
    g = Graph(name="random")
    vals = [g.add_input(TensorType((n, m), F32), f"x{i}") for i in range(2)]
    vals.append(g.add_input(TensorType((m,), F32), "b"))
    for _ in range(rng.randint(3, 14)):
        square = [v for v in vals if v.shape == (n, m)]
        x = rng.choice(square)
        kind = rng.choice(["unary", "binary", "bcast", "reduce", "matmul", "move", "move"])
        if kind == "unary":
            v = g.add(rng.choice([Op.EXP, Op.TANH, Op.NEG, Op.ABS, Op.SIGMOID]), [x])
        elif kind == "binary":
            v = g.add(rng.choice([Op.ADD, Op.MUL, Op.SUB, Op.MAXIMUM]), [x, rng.choice(square)])
        elif kind == "bcast":
            v = g.add(Op.ADD, [x, vals[2]])
        elif kind == "reduce":
            r = g.add(rng.choice([Op.SUM, Op.MAX]), [x], axes=(1,))
            v = g.add(Op.SUB, [x, r])
        elif kind == "matmul":
            w = g.add(Op.PERMUTE, [rng.choice(square)], perm=(1, 0))
            v = g.add(Op.MATMUL, [g.add(Op.MATMUL, [x, w]), x])
        else:
            t = g.add(Op.PERMUTE, [x], perm=(1, 0))
            v = g.add(Op.PERMUTE, [g.add(Op.MUL, [t, t])], perm=(1, 0))
            if rng.random() < 0.5:
                v = g.add(Op.RESHAPE, [g.add(Op.RESHAPE, [v], shape=(n * m,))], shape=(n, m))
        vals.append(v)
    outs = [vals[-1]] + ([rng.choice(vals[3:])] if rng.random() < 0.5 else [])
    g.set_outputs(outs)
    nprng = np.random.default_rng(rng.randint(0, 2**31))
    inputs = [(nprng.standard_normal(v.shape) * 0.5).astype(np.float32) for v in g.inputs]
    return g, inputs


@pytest.mark.parametrize("seed", range(40))
def test_memory_plan_of_random_programs(seed):
    rng = random.Random(seed)
    g, inputs = random_graph(rng)
    prog = check_eval(g, inputs, rtol=1e-4, atol=1e-4)
    arena, candidates = buffer_uses(prog)
    low = lower(prog)
    check_plan(arena, low.memory)
    assert low.memory.arena_bytes <= low.memory.naive_bytes
    assert low.plan.arena_bytes == low.memory.arena_bytes
    # every in-place pair the planner took was offered by lowering
    offered = {(c.out, c.inp) for c in candidates}
    assert set(low.memory.inplace) <= offered
    # buffers never outlive the step that last reads them, and are written before read
    for u in arena:
        assert 0 <= u.first <= u.last < len(prog.steps)
        first_step = prog.steps[u.first]
        writes = {first_step.out} if isinstance(first_step, Gemm) else {
            a.value for a in first_step.args if a.writes}
        assert u.id in writes


def test_random_programs_run_natively():
    from native import check_native

    for seed in range(6):
        g, inputs = random_graph(random.Random(1000 + seed))
        check_native(g, inputs, rtol=1e-4, atol=1e-4)


def test_walk_visits_every_load():
    prog = fused(lambda x, y: x * y + x, hybrid.randn(3, 4), hybrid.randn(3, 4))
    (k,) = kernels(prog)
    loads = [e for s in k.stages for e in walk(s.expr) if isinstance(e, Load)]
    assert {k.args[e.arg].value for e in loads} == {v.id for v in prog.graph.inputs}
