"""Recurrent training step, compile time and speed against the sequence length: nn.LSTM (which
steps through hybrid.scan) against the same LSTM written as a Python loop over time steps
(unrolled into the trace, what nn.LSTM compiled to before scan), PyTorch eager (nn.LSTM),
torch.compile (with --torch-compile: slow to compile) and jax.jit over lax.scan.

The step: 1-layer LSTM (input 32, hidden 128, batch 16, T steps), a linear head on the last
state, MSE, backward, SGD — zero_grad first, as PyTorch's tutorial writes it. The compile
columns are the first call in this process with an empty hybrid disk cache (HYBRID_CACHE_DIR
at a fresh temp dir for each), so they include tracing, passes, fusion and LLVM.

    python benchmarks/bench_scan.py [--lengths 8,32,128] [--unrolled-max 32] [--repeats 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Row, interleave, jax_sync, peers, setup_threads, table  # noqa: E402

B, I, H = 16, 32, 128


def _hybrid_step(unrolled: bool):
    import hybrid
    from hybrid import nn

    hybrid.manual_seed(0)
    lstm, head = nn.LSTM(I, H), nn.Linear(H, 1)
    params = list(lstm.parameters()) + list(head.parameters())
    opt = hybrid.optim.SGD(params, lr=0.01)

    def by_hand(x):
        """The same LSTM as a Python loop over time steps (unrolled when traced)."""
        h = c = hybrid.zeros(B, H)
        xw = x @ lstm.weight_ih_l0.t() + lstm.bias_ih_l0
        for t in range(x.shape[0]):
            g = xw[t] + h @ lstm.weight_hh_l0.t() + lstm.bias_hh_l0
            i, f, gg, o = g.chunk(4, dim=-1)
            c = f.sigmoid() * c + i.sigmoid() * gg.tanh()
            h = o.sigmoid() * c.tanh()
        return h

    def step(x, y):
        opt.zero_grad()
        last = by_hand(x) if unrolled else lstm(x)[0][-1]
        loss = ((head(last) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    return step


def _first_call(make, x, y) -> tuple[float, object]:
    import hybrid

    old = os.environ.get("HYBRID_CACHE_DIR")
    with tempfile.TemporaryDirectory() as d:
        os.environ["HYBRID_CACHE_DIR"] = d
        try:
            fn = hybrid.compile(make())
            t0 = time.perf_counter()
            fn(x, y)
            first = time.perf_counter() - t0
            fn(x, y)  # the second variant (momentum-free SGD has one; keep it warm)
        finally:
            if old is None:
                os.environ.pop("HYBRID_CACHE_DIR", None)
            else:
                os.environ["HYBRID_CACHE_DIR"] = old
    return first, fn


def _torch_step(torch, compiled: bool):
    torch.manual_seed(0)
    lstm, head = torch.nn.LSTM(I, H), torch.nn.Linear(H, 1)
    opt = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=0.01)

    def step(x, y):
        opt.zero_grad()
        loss = ((head(lstm(x)[0][-1]) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    return torch.compile(step) if compiled else step


def _jax_step(jax, T):
    jnp = jax.numpy
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    p = {"wi": jax.random.normal(k[0], (I, 4 * H)) * 0.05,
         "wh": jax.random.normal(k[1], (H, 4 * H)) * 0.05,
         "b": jnp.zeros(4 * H), "wo": jax.random.normal(k[2], (H, 1)) * 0.05}

    def loss(p, x, y):
        xw = x @ p["wi"] + p["b"]

        def cell(hc, g_x):
            h, c = hc
            i, f, g, o = jnp.split(g_x + h @ p["wh"], 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None

        (h, _), _ = jax.lax.scan(cell, (jnp.zeros((B, H)), jnp.zeros((B, H))), xw)
        return jnp.mean((h @ p["wo"] - y) ** 2)

    @jax.jit
    def step(p, x, y):
        l, g = jax.value_and_grad(loss)(p, x, y)
        return jax.tree_util.tree_map(lambda a, b: a - 0.01 * b, p, g), l

    state = {"p": p}

    def run(x, y):
        state["p"], l = step(state["p"], x, y)
        return l

    return run


def run(lengths: list[int], unrolled_max: int, repeats: int, torch_compile: bool) -> list[Row]:
    import numpy as np

    import hybrid

    found = peers()
    rows: list[Row] = []
    rng = np.random.default_rng(0)
    for T in lengths:
        xn = rng.standard_normal((T, B, I)).astype(np.float32)
        yn = rng.standard_normal((B, 1)).astype(np.float32)
        x, y = hybrid.tensor(xn), hybrid.tensor(yn)
        group = f"LSTM train step T={T}"
        fns = {}
        first, fns["hybrid.compile (nn.LSTM, scan)"] = _first_call(
            lambda: _hybrid_step(False), x, y)
        rows.append(Row(f"first call T={T}", "hybrid.compile (nn.LSTM, scan)", first * 1e3, "ms",
                        peer=False))
        if T <= unrolled_max:
            first_u, fns["hybrid.compile (Python loop, unrolled)"] = _first_call(
                lambda: _hybrid_step(True), x, y)
            rows.append(Row(f"first call T={T}", "hybrid.compile (Python loop, unrolled)",
                            first_u * 1e3, "ms", peer=False))
        eager = _hybrid_step(False)
        fns["hybrid eager (nn.LSTM)"] = eager
        calls = {k: (lambda f=f: f(x, y)) for k, f in fns.items()}
        sync = None
        if "torch" in found:
            torch = found["torch"]
            tx, ty = torch.from_numpy(xn), torch.from_numpy(yn)
            ts = _torch_step(torch, False)
            calls["torch eager (nn.LSTM)"] = lambda: ts(tx, ty)
            if torch_compile:
                tc = _torch_step(torch, True)
                t0 = time.perf_counter()
                tc(tx, ty)
                rows.append(Row(f"first call T={T}", "torch.compile", (time.perf_counter() - t0)
                                * 1e3, "ms"))
                calls["torch.compile"] = lambda: tc(tx, ty)
        timings = interleave(calls, repeats=repeats, sync=sync)
        if "jax" in found:
            jax = found["jax"]
            js = _jax_step(jax, T)
            jx, jy = jax.numpy.asarray(xn), jax.numpy.asarray(yn)
            t0 = time.perf_counter()
            jax_sync(js(jx, jy))
            rows.append(Row(f"first call T={T}", "jax.jit (lax.scan)",
                            (time.perf_counter() - t0) * 1e3, "ms"))
            timings.update(interleave({"jax.jit (lax.scan)": lambda: js(jx, jy)},
                                      repeats=repeats, sync=jax_sync))
        for name, t in timings.items():
            rows.append(Row(group, name, t.ms, "ms", peer=not name.startswith("hybrid")))
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="8,32,128")
    ap.add_argument("--unrolled-max", type=int, default=32,
                    help="time the unrolled Python loop up to this length (its compile grows)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--torch-compile", action="store_true")
    args = ap.parse_args()
    setup_threads()
    print(table(run([int(s) for s in args.lengths.split(",")], args.unrolled_max, args.repeats,
                    args.torch_compile)))
