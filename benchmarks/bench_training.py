"""Training-step and RNN benchmarks: hybrid (eager and compiled) against numpy, torch
(eager and torch.compile) and jax.jit.

- MLP 784-512-512-10, batch 128, SGD lr 0.01, cross_entropy: one full train step (zero_grad,
  forward, backward, update: PyTorch's documented order; the zero_grad-last and
  set_to_none=False orders are reported too, so a regression in any of them shows). hybrid.compile traces the whole step (backward and optimizer
  included) into one graph; torch.compile is applied to the same whole-step function (dynamo
  splits it at loss.backward(): compiled forward/backward through AOTAutograd, compiled
  optimizer step); jax.jit runs a functional step (value_and_grad + SGD update) with the
  parameters donated.
- RNN h = tanh(h @ W + x_t @ U), 50 steps, batch 32, hidden 128, input 128, forward only,
  returning the last h. hybrid's compiled function is a Python loop that unrolls into one
  graph; torch.compile unrolls the same loop; jax.jit is reported both with lax.scan and with
  the Python loop unrolled.

hybrid.set_num_threads(2) and torch.set_num_threads(2) are set explicitly; tensors live across
calls; first calls are excluded; implementations are timed in rounds of blocks; medians.

Run: python benchmarks/bench_training.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    Row, blas_choice, hybrid_variants, interleave, peers, setup_threads, table,
)

BATCH, SIZES, LR = 128, (784, 512, 512, 10), 0.01
RNN_T, RNN_B, RNN_H, RNN_I = 50, 32, 128, 128


# --- MLP train step ------------------------------------------------------------------------------


# The orders a training step is written in: PyTorch's documented one first (zero_grad first).
ORDERS = ("zero_grad first", "zero_grad last", "zero_grad(set_to_none=False) first")


def mlp(nn):
    """The benchmark's MLP (SIZES, ReLU between layers) from `nn` (hybrid.nn or torch.nn)."""
    return nn.Sequential(nn.Linear(SIZES[0], SIZES[1]), nn.ReLU(), nn.Linear(SIZES[1], SIZES[2]),
                         nn.ReLU(), nn.Linear(SIZES[2], SIZES[3]))


def _step_fn(model, opt, F, order):
    def first(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def last(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    def keep(x, y):
        opt.zero_grad(set_to_none=False)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return dict(zip(ORDERS, (first, last, keep)))[order]


def hybrid_mlp_step(compiled: bool, order: str = ORDERS[0]):
    """(step(x, y), x, y) of hybrid's MLP train step, not yet called."""
    import numpy as np

    import hybrid as h
    import hybrid.nn.functional as F
    from hybrid import nn

    rng = np.random.RandomState(0)
    x = h.tensor(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = h.tensor(rng.randint(0, SIZES[-1], size=(BATCH,)))
    h.manual_seed(0)
    model = mlp(nn)
    opt = h.optim.SGD(model.parameters(), lr=LR)
    step = _step_fn(model, opt, F, order)
    return (h.compile(step) if compiled else step), x, y


def hybrid_mlp(compiled: bool, order: str = ORDERS[0]):
    """(step function of no arguments, the step function) for hybrid's MLP train step."""
    fn, x, y = hybrid_mlp_step(compiled, order)
    for _ in range(3):  # zero_grad first: the second call compiles the with-gradients variant
        fn(x, y)
    return (lambda: fn(x, y)), fn


def torch_mlp_step(torch, compiled: bool, order: str = ORDERS[0]):
    """(step(x, y), x, y) of the same step in PyTorch (torch.compile'd when `compiled`)."""
    import numpy as np

    rng = np.random.RandomState(0)
    x = torch.from_numpy(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = torch.from_numpy(rng.randint(0, SIZES[-1], size=(BATCH,)))
    torch.manual_seed(0)
    nn = torch.nn
    model = mlp(nn)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    step = _step_fn(model, opt, nn.functional, order)
    return (torch.compile(step) if compiled else step), x, y


def torch_mlp(torch, compiled: bool, order: str = ORDERS[0]):
    fn, x, y = torch_mlp_step(torch, compiled, order)
    for _ in range(3):  # torch.compile may recompile on the 2nd call (optimizer state appears)
        fn(x, y)
    return lambda: fn(x, y)


def jax_mlp_step():
    """(jitted step(params, x, y) -> (params, loss) with params donated, params, x, y): the
    functional MLP train step (value_and_grad + SGD), not yet called."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = jnp.asarray(rng.randint(0, SIZES[-1], size=(BATCH,)))
    params = []
    for i, o in zip(SIZES[:-1], SIZES[1:]):
        b = 1 / np.sqrt(i)
        params.append((jnp.asarray(rng.uniform(-b, b, (i, o)).astype(np.float32)),
                       jnp.asarray(rng.uniform(-b, b, (o,)).astype(np.float32))))

    def loss_fn(params, x, y):
        h = x
        for j, (w, b) in enumerate(params):
            h = h @ w + b
            if j < len(params) - 1:
                h = jax.nn.relu(h)
        logp = jax.nn.log_softmax(h, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def _step(params, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        return jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads), loss

    return jax.jit(_step, donate_argnums=(0,)), params, x, y


def jax_mlp():
    import jax

    step, params, x, y = jax_mlp_step()
    state = {"p": params}

    def run():
        state["p"], loss = step(state["p"], x, y)
        return loss

    jax.block_until_ready(run())
    return lambda: jax.block_until_ready(run())


def bench_mlp(p: dict, repeats: int) -> list[Row]:
    fns = {}
    for label, blas in hybrid_variants():
        with blas_choice(blas):
            fns[label], _ = hybrid_mlp(True)
    fns["hybrid eager"], _ = hybrid_mlp(False)
    if "torch" in p:
        fns["torch eager"] = torch_mlp(p["torch"], False)
        fns["torch.compile"] = torch_mlp(p["torch"], True)
    if "jax" in p:
        fns["jax.jit"] = jax_mlp()
    t = interleave(fns, repeats)
    g = "MLP train step"
    # hybrid eager is hybrid's own, not a peer
    rows = [Row(g, k, v.ms, "ms", peer=not k.startswith("hybrid")) for k, v in t.items()]
    # the other orders users write, so that a regression in any of them shows
    for order in ORDERS[1:]:
        other = {"hybrid": hybrid_mlp(True, order)[0]}
        if "torch" in p:
            other["torch eager"] = torch_mlp(p["torch"], False, order)
        for k, v in interleave(other, repeats).items():
            rows.append(Row(f"MLP train step, {order}", k, v.ms, "ms", peer=k != "hybrid"))
    return rows


# --- RNN -----------------------------------------------------------------------------------------


def rnn_data():
    import numpy as np

    rng = np.random.RandomState(0)
    xs = rng.randn(RNN_T, RNN_B, RNN_I).astype(np.float32)
    h0 = rng.randn(RNN_B, RNN_H).astype(np.float32)
    W = (rng.randn(RNN_H, RNN_H) / np.sqrt(RNN_H)).astype(np.float32)
    U = (rng.randn(RNN_I, RNN_H) / np.sqrt(RNN_I)).astype(np.float32)
    return xs, h0, W, U


def rnn_numpy(xs, h, W, U):
    import numpy as np

    for t in range(xs.shape[0]):
        h = np.tanh(h @ W + xs[t] @ U)
    return h


def hybrid_rnn(data):
    import hybrid as h

    xs, h0, W, U = (h.tensor(a) for a in data)

    def rnn(xs, hh, W, U):
        for t in range(RNN_T):
            hh = (hh @ W + xs[t] @ U).tanh()
        return hh

    fn = h.compile(rnn)
    fn(xs, h0, W, U)
    return (lambda: fn(xs, h0, W, U)), fn


def bench_rnn(p: dict, repeats: int) -> list[Row]:
    import numpy as np

    data = rnn_data()
    ref = rnn_numpy(*data)
    fns = {}
    for label, blas in hybrid_variants():
        with blas_choice(blas):
            fns[label], _ = hybrid_rnn(data)
        assert np.allclose(fns[label]().numpy(), ref, atol=1e-4), "hybrid rnn is wrong"
    fns["numpy"] = lambda: rnn_numpy(*data)
    if "torch" in p:
        torch = p["torch"]
        tdata = [torch.from_numpy(a) for a in data]

        def trnn(xs, h, W, U):
            for t in range(RNN_T):
                h = torch.tanh(h @ W + xs[t] @ U)
            return h

        ctrnn = torch.compile(trnn)
        ctrnn(*tdata)
        fns["torch eager"] = lambda: trnn(*tdata)
        fns["torch.compile"] = lambda: ctrnn(*tdata)
    if "jax" in p:
        import jax
        import jax.numpy as jnp

        jdata = [jnp.asarray(a) for a in data]

        @jax.jit
        def jscan(xs, h, W, U):
            def cell(h, x):
                h = jnp.tanh(h @ W + x @ U)
                return h, None

            return jax.lax.scan(cell, h, xs)[0]

        @jax.jit
        def junroll(xs, h, W, U):
            for t in range(RNN_T):
                h = jnp.tanh(h @ W + xs[t] @ U)
            return h

        for f in (jscan, junroll):
            assert np.allclose(np.asarray(f(*jdata)), ref, atol=1e-4)
        fns["jax.jit (lax.scan)"] = lambda: jax.block_until_ready(jscan(*jdata))
        fns["jax.jit (unrolled)"] = lambda: jax.block_until_ready(junroll(*jdata))
    t = interleave(fns, repeats)
    g = "RNN 50 steps b32 h128"
    return [Row(g, k, v.ms, "ms", peer=not k.startswith("hybrid")) for k, v in t.items()]


def run(repeats: int = 40) -> list[Row]:
    setup_threads()
    p = peers()
    return bench_mlp(p, repeats) + bench_rnn(p, repeats)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    print(table(run(ap.parse_args().repeats)))
