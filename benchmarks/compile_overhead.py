"""Compile overhead of @hybrid.compile next to jax.jit and torch.compile (when installed).

(a) First call of an MLP 784-512-512-10 training step (batch 128, SGD, cross_entropy): trace +
    pass time, median over several fresh compiled functions, split by stage.
(c) The trace-stability check (hybrid.config.check_retrace): the first four calls of that step
    written in PyTorch's order (zero_grad first: call 1 compiles without gradients, call 2 with,
    calls 2 and 3 are the second calls of each variant and retrace to compare), with the check
    on ("first", the default) and "off".
(b) Per-call overhead of a cache hit for one add on 16-element float32 tensors: total time per
    call, the executor's share (entry.run called directly) and the difference, which is the
    guard check + dispatch.

(b2) The same per-call cost for the ways users pass the tensors: positionally, in a list, as a
    keyword argument; hybrid.compile, torch.compile and jax.jit side by side.

Run: python benchmarks/compile_overhead.py   (medians, one run, a markdown table on stdout);
`--only hit` prints (b) and (b2) alone."""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import numpy as np

import hybrid as h
import hybrid.nn.functional as F
from hybrid import nn

BATCH, SIZES = 128, (784, 512, 512, 10)
FIRST_CALL_REPEATS = 5


def per_call_us(fn, n: int = 20000, repeats: int = 7) -> float:
    """Median over `repeats` of the mean time of `n` calls, in microseconds."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times) * 1e6


# --- (a) first call of a training step -------------------------------------------------------


def hybrid_first_call() -> tuple[float, float, dict[str, float]]:
    """(median first-call seconds, median trace+passes seconds, median seconds per stage)."""
    rng = np.random.RandomState(0)
    x = h.tensor(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = h.tensor(rng.randint(0, SIZES[-1], size=(BATCH,)))
    firsts, compiles, stages = [], [], {}
    for _ in range(FIRST_CALL_REPEATS):
        h.manual_seed(0)
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        opt = h.optim.SGD(model.parameters(), lr=0.01)

        @h.compile
        def step(x, y):  # NOTE: called within its iteration, so the loop variables are right
            loss = F.cross_entropy(model(x), y)  # noqa: B023
            loss.backward()
            opt.step()  # noqa: B023
            opt.zero_grad()  # noqa: B023
            return loss

        t0 = time.perf_counter()
        step(x, y)
        firsts.append(time.perf_counter() - t0)
        compiles.append(sum(s.seconds for s in step.graphs))
        for s in step.graphs:
            stages.setdefault(s.name, [0.0] * FIRST_CALL_REPEATS)
        for s in step.graphs:  # a name can repeat (dce runs twice): sum per name
            stages[s.name][len(firsts) - 1] += s.seconds
    return (statistics.median(firsts), statistics.median(compiles),
            {k: statistics.median(v) for k, v in stages.items()})


def jax_first_call() -> float | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = jnp.asarray(rng.randint(0, SIZES[-1], size=(BATCH,)))
    params = [(jnp.asarray(rng.randn(i, o).astype(np.float32) * 0.01), jnp.zeros(o))
              for i, o in itertools.pairwise(SIZES)]

    def loss_fn(params, x, y):
        for k, (w, b) in enumerate(params):
            x = x @ w + b
            if k < len(params) - 1:
                x = jax.nn.relu(x)
        logp = jax.nn.log_softmax(x)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    times = []
    for _ in range(FIRST_CALL_REPEATS):
        def step(params, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            return loss, jax.tree_util.tree_map(lambda p, g: p - 0.01 * g, params, grads)

        jitted = jax.jit(step)  # a new function object each time: no cache reuse
        t0 = time.perf_counter()
        jax.block_until_ready(jitted(params, x, y))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def torch_first_call() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    x = torch.randn(BATCH, SIZES[0])
    y = torch.randint(0, SIZES[-1], (BATCH,))
    times = []
    for _ in range(min(FIRST_CALL_REPEATS, 3)):  # each compile takes seconds
        torch._dynamo.reset()
        model = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(),
                                    torch.nn.Linear(512, 512), torch.nn.ReLU(),
                                    torch.nn.Linear(512, 10))
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def step(x, y):
            loss = torch.nn.functional.cross_entropy(model(x), y)  # noqa: B023
            loss.backward()
            opt.step()  # noqa: B023
            opt.zero_grad()  # noqa: B023
            return loss

        compiled = torch.compile(step)
        t0 = time.perf_counter()
        compiled(x, y)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# --- (b) per-call overhead of a cache hit ----------------------------------------------------


def hybrid_hit() -> tuple[float, float]:
    """(total µs per call, executor µs per call) for a compiled one-add function."""
    @h.compile
    def add(a, b):
        return a + b

    a, b = h.randn(16), h.randn(16)
    add(a, b)
    entry = add.last_entry
    arrays = [a._value, b._value]
    total = per_call_us(lambda: add(a, b))
    executor = per_call_us(lambda: entry.run(arrays))
    assert add.cache_size() == 1
    return total, executor


def jax_hit() -> float | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    add = jax.jit(lambda a, b: a + b)
    a, b = jnp.ones(16, jnp.float32), jnp.ones(16, jnp.float32)
    return per_call_us(lambda: add(a, b).block_until_ready(), n=5000)


def torch_hit() -> float | None:
    try:
        import torch
    except ImportError:
        return None
    add = torch.compile(lambda a, b: a + b)
    a, b = torch.ones(16), torch.ones(16)
    add(a, b)
    return per_call_us(lambda: add(a, b), n=5000)


# How users pass the tensors: positionally, in a list, as a keyword (PyTorch's docs use all three).
FORMS = {
    "f(a, b)": (lambda a, b: a + b, lambda f, a, b: f(a, b)),
    "f([a, b])": (lambda xs: xs[0] + xs[1], lambda f, a, b: f([a, b])),
    "f(a, y=b)": (lambda x, *, y: x + y, lambda f, a, b: f(a, y=b)),
}


def call_forms() -> dict[str, dict[str, float | None]]:
    """form -> {system: µs per cache-hit call} for the FORMS, hybrid and its peers."""
    peers: dict[str, tuple] = {"hybrid.compile": (h.compile, h.randn(16), h.randn(16), None)}
    try:
        import torch

        peers["torch.compile"] = (torch.compile, torch.ones(16), torch.ones(16), None)
    except ImportError:
        peers["torch.compile"] = None
    try:
        import jax
        import jax.numpy as jnp

        peers["jax.jit"] = (jax.jit, jnp.ones(16), jnp.ones(16), lambda r: r.block_until_ready())
    except ImportError:
        peers["jax.jit"] = None
    out: dict[str, dict[str, float | None]] = {}
    for form, (fn, call) in FORMS.items():
        row: dict[str, float | None] = {}
        for system, peer in peers.items():
            if peer is None:
                row[system] = None
                continue
            wrap, a, b, sync = peer
            f = wrap(fn)
            n = 20000 if system == "hybrid.compile" else 5000
            run = (lambda f=f, a=a, b=b: call(f, a, b)) if sync is None else \
                (lambda f=f, a=a, b=b, sync=sync: sync(call(f, a, b)))
            row[system] = per_call_us(run, n=n)
        out[form] = row
    return out


def print_call_forms(rows: dict[str, dict[str, float | None]]) -> None:
    systems = list(next(iter(rows.values())))
    print("## (b2) cache hit by call form: one add on 16-element float32 tensors, µs per call")
    print()
    print("| call | " + " | ".join(systems) + " |")
    print("|---|" + "---|" * len(systems))
    for form, row in rows.items():
        print(f"| `{form}` | " + " | ".join(fmt(row[s], "µs", digits=2) for s in systems) + " |")
    print()


def hybrid_retrace_cost(calls: int = 4) -> dict[str, list[float]]:
    """check_retrace mode -> median seconds of each of the first `calls` calls."""
    rng = np.random.RandomState(0)
    x = h.tensor(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = h.tensor(rng.randint(0, SIZES[-1], size=(BATCH,)))
    out = {}
    saved = h.config.check_retrace
    try:
        for mode in ("first", "off"):
            h.config.check_retrace = mode
            times: list[list[float]] = [[] for _ in range(calls)]
            for _ in range(FIRST_CALL_REPEATS):
                h.manual_seed(0)
                model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512),
                                      nn.ReLU(), nn.Linear(512, 10))
                opt = h.optim.SGD(model.parameters(), lr=0.01)

                @h.compile
                def step(x, y):
                    opt.zero_grad()  # noqa: B023
                    loss = F.cross_entropy(model(x), y)  # noqa: B023
                    loss.backward()
                    opt.step()  # noqa: B023
                    return loss

                for i in range(calls):
                    t0 = time.perf_counter()
                    step(x, y)
                    times[i].append(time.perf_counter() - t0)
            out[mode] = [statistics.median(t) for t in times]
    finally:
        h.config.check_retrace = saved
    return out


def fmt(v: float | None, unit: str, scale: float = 1.0, digits: int = 3) -> str:
    return "not installed" if v is None else f"{v * scale:.{digits}f} {unit}"


def main() -> None:
    warnings.simplefilter("ignore")
    if sys.argv[1:] == ["--only", "hit"]:  # the per-call tables only (seconds, not minutes)
        total, executor = hybrid_hit()
        print(f"hybrid.compile f(a, b): {total:.2f} µs per call, executor {executor:.2f} µs\n")
        print_call_forms(call_forms())
        return
    first, compile_s, stages = hybrid_first_call()
    jf, tf = jax_first_call(), torch_first_call()
    total, executor = hybrid_hit()
    jh, th = jax_hit(), torch_hit()
    forms = call_forms()
    retrace = hybrid_retrace_cost()

    print("## (a) first call: MLP 784-512-512-10 training step (batch 128, SGD, cross_entropy)")
    print()
    print("| system | first call | of which trace + passes |")
    print("|---|---|---|")
    print(f"| hybrid.compile | {first:.3f} s | {compile_s:.3f} s |")
    print(f"| jax.jit | {fmt(jf, 's')} | |")
    print(f"| torch.compile | {fmt(tf, 's')} | |")
    print()
    print(f"hybrid stages (median of {FIRST_CALL_REPEATS} fresh compiled functions):")
    print()
    print("| stage | time |")
    print("|---|---|")
    for name, sec in stages.items():
        print(f"| {name} | {sec * 1e3:.2f} ms |")
    print()
    print("## (b) cache hit: one add on 16-element float32 tensors, per call")
    print()
    print("| system | per call | executor | guard check + dispatch |")
    print("|---|---|---|---|")
    print(f"| hybrid.compile | {total:.2f} µs | {executor:.2f} µs | {total - executor:.2f} µs |")
    print(f"| jax.jit | {fmt(jh, 'µs', digits=2)} | | |")
    print(f"| torch.compile | {fmt(th, 'µs', digits=2)} | | |")
    print()
    print_call_forms(forms)
    print("## (c) trace-stability check: first calls of the zero_grad-first step, ms (medians)")
    print()
    print("| check_retrace | " + " | ".join(f"call {i + 1}" for i in range(4)) + " |")
    print("|---|" + "---|" * 4)
    for mode, ts in retrace.items():
        print(f"| {mode} | " + " | ".join(f"{t * 1e3:.1f}" for t in ts) + " |")


if __name__ == "__main__":
    main()
