"""CNN benchmarks: convolutions and whole CNN train steps, hybrid (eager and compiled) against
torch eager (NCHW and channels-last), torch.compile and jax.jit.

- conv2d forward: (a) x (64, 3, 32, 32), 64 filters 3x3, padding 1; (b) x (32, 64, 16, 16),
  64 filters 3x3, padding 1 (bias included).
- train steps (cross_entropy, SGD lr 0.01 momentum 0.9, PyTorch's order: zero_grad first):
  (c) hybrid.models.vgg_style_cifar, batch 32; (d) hybrid.models.alexnet_cifar, batch 32;
  (e) a small CNN (conv 3->32, pool, conv 32->64, pool, linear), batch 64. Input 3x32x32.
  Every framework runs the same layers with the same initial weights: the torch model is built
  from the hybrid one layer by layer, the jax one is written by hand (lax.conv_general_dilated,
  lax.reduce_window, batch norm with running statistics, dropout from a split key, momentum
  SGD, params/momentum/statistics donated). Eval-mode logits of all three are checked equal.
- The note column has each implementation's conv GFLOP/s: 2*MACs of every convolution, times 3
  in a train step (forward, input and weight gradients) less the first convolution's input
  gradient (the images need none).
- The VGG step's first four calls in a new process with an empty HYBRID_CACHE_DIR (the notes
  say which calls compiled a variant: momentum buffers appear after the first step), and one
  step's peak memory:
  hybrid eager and compiled as bench_compile.py measures them (tracemalloc; compiled adds the
  executor's arena and pooled outputs), torch eager from the profiler's allocation events
  (profile_memory=True: the running sum of allocations and frees inside one step).

2 threads everywhere (hybrid.set_num_threads, torch.set_num_threads, OMP/BLAS variables, XLA
sized by the 2 cores); first calls excluded; medians of interleaved rounds (common.py).

Run: python benchmarks/bench_cnn.py [--repeats N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Row, interleave, jax_sync, peers, setup_threads, table

LR, MOMENTUM = 0.01, 0.9
CONVS = {"conv2d (64,3,32,32) x 64 3x3 p1 fwd": ((64, 3, 32, 32), 64),
         "conv2d (32,64,16,16) x 64 3x3 p1 fwd": ((32, 64, 16, 16), 64)}
STEPS = {"vgg_style_cifar train step b32": ("vgg_style_cifar", 32),
         "alexnet_cifar train step b32": ("alexnet_cifar", 32),
         "small CNN train step b64": ("small_cnn", 64)}


# --- one model, three frameworks -----------------------------------------------------------------


def build_hybrid(name: str):
    """The hybrid model `name` (seeded), as a flat list of layers."""
    import hybrid
    import hybrid.models as M
    from hybrid import nn

    hybrid.manual_seed(0)
    if name == "small_cnn":
        return [nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(64 * 8 * 8, 10)]
    model = getattr(M, name)()
    return list(model.features) + [model.avgpool, nn.Flatten()] + list(model.classifier)


def _np(t):
    return t.detach().numpy().copy()


def to_torch(layers, torch):
    """A torch.nn.Sequential with the same layers and weights."""
    tnn, out = torch.nn, []
    for m in layers:
        kind = type(m).__name__
        if kind == "Conv2d":
            t = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding)
            t.weight.data, t.bias.data = torch.from_numpy(_np(m.weight)), torch.from_numpy(_np(m.bias))
        elif kind == "Linear":
            t = tnn.Linear(m.in_features, m.out_features)
            t.weight.data, t.bias.data = torch.from_numpy(_np(m.weight)), torch.from_numpy(_np(m.bias))
        elif kind == "BatchNorm2d":
            t = tnn.BatchNorm2d(m.num_features, m.eps, m.momentum)
            t.weight.data, t.bias.data = torch.from_numpy(_np(m.weight)), torch.from_numpy(_np(m.bias))
        elif kind == "ReLU":
            t = tnn.ReLU(inplace=m.inplace)
        elif kind == "MaxPool2d":
            t = tnn.MaxPool2d(m.kernel_size, m.stride, m.padding)
        elif kind == "Dropout":
            t = tnn.Dropout(m.p)
        elif kind == "Flatten":
            t = tnn.Flatten()
        elif kind == "Identity":
            t = tnn.Identity()
        else:
            raise NotImplementedError(kind)
        out.append(t)
    return tnn.Sequential(*out)


def to_jax(layers):
    """(params, state, apply(params, state, x, key, train) -> (logits, state)) of the layers."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    params, state, specs = [], [], []
    for m in layers:
        kind = type(m).__name__
        if kind in ("Conv2d", "Linear"):
            params.append((jnp.asarray(_np(m.weight)), jnp.asarray(_np(m.bias))))
        elif kind == "BatchNorm2d":
            params.append((jnp.asarray(_np(m.weight)), jnp.asarray(_np(m.bias))))
            state.append((jnp.asarray(_np(m.running_mean)), jnp.asarray(_np(m.running_var))))
        specs.append((kind, m))

    def apply(params, state, x, key, train):
        p_i, s_i, new_state = 0, 0, []
        for kind, m in specs:
            if kind == "Conv2d":
                w, b = params[p_i]
                p_i += 1
                pad = [(m.padding[0],) * 2, (m.padding[1],) * 2]
                x = lax.conv_general_dilated(x, w, m.stride, pad,
                                             dimension_numbers=("NCHW", "OIHW", "NCHW"))
                x = x + b[None, :, None, None]
            elif kind == "Linear":
                w, b = params[p_i]
                p_i += 1
                x = x @ w.T + b
            elif kind == "BatchNorm2d":
                (g, b), (rm, rv) = params[p_i], state[s_i]
                p_i, s_i = p_i + 1, s_i + 1
                if train:
                    mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3))
                    n = x.size // x.shape[1]
                    new_state.append(((1 - m.momentum) * rm + m.momentum * mean,
                                      (1 - m.momentum) * rv + m.momentum * var * n / (n - 1)))
                else:
                    mean, var = rm, rv
                    new_state.append((rm, rv))
                inv = g / jnp.sqrt(var + m.eps)
                x = (x - mean[None, :, None, None]) * inv[None, :, None, None] + b[None, :, None, None]
            elif kind == "ReLU":
                x = jax.nn.relu(x)
            elif kind == "MaxPool2d":
                k, s = m.kernel_size, m.stride
                x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, s, s), "VALID")
            elif kind == "Dropout" and train and m.p > 0:
                key, sub = jax.random.split(key)
                x = jnp.where(jax.random.bernoulli(sub, 1 - m.p, x.shape), x / (1 - m.p), 0.0)
            elif kind == "Flatten":
                x = x.reshape(x.shape[0], -1)
        return x, new_state

    return params, state, apply


def conv_flops(layers, shape, train: bool) -> float:
    """FLOPs of the convolutions for input `shape` (see the module docstring)."""
    n, c, h, w = shape
    total, first = 0.0, None
    for m in layers:
        kind = type(m).__name__
        if kind == "Conv2d":
            (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
            h, w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            f = 2.0 * n * m.out_channels * h * w * c * kh * kw
            first = f if first is None else first
            total, c = total + f, m.out_channels
        elif kind == "MaxPool2d":
            h, w = (h - m.kernel_size) // m.stride + 1, (w - m.kernel_size) // m.stride + 1
    return 3 * total - first if train else total


def _data(batch: int, np_mod):
    rng = np_mod.random.RandomState(0)
    return (rng.randn(batch, 3, 32, 32).astype(np_mod.float32),
            rng.randint(0, 10, size=(batch,)).astype(np_mod.int64))


# --- train steps ---------------------------------------------------------------------------------


def hybrid_step(name: str, batch: int, compiled: bool):
    """(run(), step function, layers) of hybrid's train step, warmed up."""
    import numpy as np

    import hybrid
    import hybrid.nn.functional as F
    from hybrid import nn

    layers = build_hybrid(name)
    model = nn.Sequential(*layers)
    opt = hybrid.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xs, ys = _data(batch, np)
    x, y = hybrid.tensor(xs), hybrid.tensor(ys)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = hybrid.compile(step) if compiled else step
    for _ in range(3):  # zero_grad first: the second call compiles the with-gradients variant
        fn(x, y)
    return (lambda: fn(x, y)), fn, layers


def torch_step(torch, name: str, batch: int, mode: str):
    """run() of torch's step; mode: "eager", "channels_last" or "compile"."""
    import numpy as np

    model = to_torch(build_hybrid(name), torch)
    xs, ys = _data(batch, np)
    x, y = torch.from_numpy(xs), torch.from_numpy(ys)
    if mode == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = torch.compile(step) if mode == "compile" else step
    for _ in range(3):
        fn(x, y)
    return lambda: fn(x, y)


def jax_step(name: str, batch: int):
    """run() of the jax.jit step (params, momentum and batch-norm state donated)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    params, state, apply = to_jax(build_hybrid(name))
    xs, ys = _data(batch, np)
    x, y = jnp.asarray(xs), jnp.asarray(ys)

    def loss_fn(params, state, x, y, key):
        logits, state = apply(params, state, x, key, True)
        logp = jax.nn.log_softmax(logits, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), state

    def _step(params, mom, state, key, x, y):
        key, sub = jax.random.split(key)
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y, sub)
        mom = jax.tree_util.tree_map(lambda m, g: MOMENTUM * m + g, mom, grads)
        params = jax.tree_util.tree_map(lambda p, m: p - LR * m, params, mom)
        return params, mom, state, key, loss

    step = jax.jit(_step, donate_argnums=(0, 1, 2))
    box = {"p": params, "m": jax.tree_util.tree_map(jnp.zeros_like, params), "s": state,
           "k": jax.random.PRNGKey(0)}

    def run():
        box["p"], box["m"], box["s"], box["k"], loss = step(box["p"], box["m"], box["s"],
                                                           box["k"], x, y)
        return loss

    jax.block_until_ready(run())
    return lambda: jax.block_until_ready(run())


def check_logits(p: dict, name: str) -> None:
    """Eval-mode logits of the torch and jax models equal hybrid's (same weights)."""
    import numpy as np

    import hybrid
    from hybrid import nn

    layers = build_hybrid(name)
    xs, _ = _data(4, np)
    model = nn.Sequential(*layers).eval()
    with hybrid.no_grad():
        want = model(hybrid.tensor(xs)).numpy()
    tol = {"rtol": 1e-3, "atol": 1e-4 * float(np.abs(want).max())}
    if "torch" in p:
        torch = p["torch"]
        with torch.no_grad():
            got = to_torch(layers, torch).eval()(torch.from_numpy(xs)).numpy()
        assert np.allclose(got, want, **tol), f"{name}: torch twin differs"
    if "jax" in p:
        import jax.numpy as jnp

        params, state, apply = to_jax(layers)
        got = np.asarray(apply(params, state, jnp.asarray(xs), None, False)[0])
        assert np.allclose(got, want, **tol), f"{name}: jax twin differs"


def _gflops(flops: float, seconds: float) -> str:
    return f"{flops / seconds / 1e9:.1f} conv GFLOP/s"


def bench_steps(p: dict, repeats: int) -> list[Row]:
    rows = []
    for group, (name, batch) in STEPS.items():
        check_logits(p, name)
        fns = {}
        fns["hybrid eager"], _, layers = hybrid_step(name, batch, False)
        fns["hybrid.compile"], _, _ = hybrid_step(name, batch, True)
        if "torch" in p:
            torch = p["torch"]
            fns["torch eager NCHW"] = torch_step(torch, name, batch, "eager")
            fns["torch eager channels-last"] = torch_step(torch, name, batch, "channels_last")
            fns["torch.compile"] = torch_step(torch, name, batch, "compile")
        if "jax" in p:
            fns["jax.jit"] = jax_step(name, batch)
        flops = conv_flops(layers, (batch, 3, 32, 32), train=True)
        for k, v in interleave(fns, repeats).items():
            rows.append(Row(group, k, v.ms, "ms", peer=not k.startswith("hybrid"),
                            note=_gflops(flops, v.median)))
    return rows


# --- single convolutions -------------------------------------------------------------------------


def _conv_fns(p: dict, shape: tuple, cout: int) -> dict:
    """{implementation: run()} of one conv2d forward, each checked against hybrid eager."""
    import numpy as np

    import hybrid
    import hybrid.nn.functional as F

    rng = np.random.RandomState(0)
    xs = rng.randn(*shape).astype(np.float32)
    ws = (rng.randn(cout, shape[1], 3, 3) / np.sqrt(shape[1] * 9)).astype(np.float32)
    bs = rng.randn(cout).astype(np.float32)
    x, w, b = hybrid.tensor(xs), hybrid.tensor(ws), hybrid.tensor(bs)

    def conv(x, w, b):
        return F.conv2d(x, w, b, padding=1)

    cconv = hybrid.compile(conv)
    want = conv(x, w, b).numpy()
    tol = {"rtol": 1e-4, "atol": 1e-4}
    np.testing.assert_allclose(cconv(x, w, b).numpy(), want, **tol)
    fns = {"hybrid eager": lambda: conv(x, w, b), "hybrid.compile": lambda: cconv(x, w, b)}
    if "torch" in p:
        torch = p["torch"]
        tx, tw, tb = (torch.from_numpy(a) for a in (xs, ws, bs))
        cl_x = tx.contiguous(memory_format=torch.channels_last)
        cl_w = tw.contiguous(memory_format=torch.channels_last)

        def tconv(x, w, b):
            return torch.nn.functional.conv2d(x, w, b, padding=1)

        ctconv = torch.compile(tconv)
        with torch.no_grad():
            np.testing.assert_allclose(tconv(tx, tw, tb).numpy(), want, **tol)
            np.testing.assert_allclose(ctconv(tx, tw, tb).numpy(), want, **tol)
        fns["torch eager NCHW"] = torch.no_grad()(lambda: tconv(tx, tw, tb))
        fns["torch eager channels-last"] = torch.no_grad()(lambda: tconv(cl_x, cl_w, tb))
        fns["torch.compile"] = torch.no_grad()(lambda: ctconv(tx, tw, tb))
    if "jax" in p:
        import jax
        from jax import lax

        jx, jw, jb = (jax.numpy.asarray(a) for a in (xs, ws, bs))

        @jax.jit
        def jconv(x, w, b):
            y = lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)],
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return y + b[None, :, None, None]

        np.testing.assert_allclose(np.asarray(jconv(jx, jw, jb)), want, **tol)
        fns["jax.jit"] = lambda: jax_sync(jconv(jx, jw, jb))
    return fns


def bench_convs(p: dict, repeats: int) -> list[Row]:
    rows = []
    for group, (shape, cout) in CONVS.items():
        flops = 2.0 * shape[0] * cout * shape[2] * shape[3] * shape[1] * 9
        for k, v in interleave(_conv_fns(p, shape, cout), repeats).items():
            rows.append(Row(group, k, v.ms, "ms", peer=not k.startswith("hybrid"),
                            note=_gflops(flops, v.median)))
    return rows


# --- first compile and peak memory (a fresh process) ---------------------------------------------


def _torch_step_peak(torch, name: str, batch: int) -> int:
    """Peak bytes allocated during one torch eager step (after warmup), from the profiler."""
    from torch.profiler import ProfilerActivity, profile, record_function

    run = torch_step(torch, name, batch, "eager")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()  # the step before: the measured step's frees of its gradients are then known
        with record_function("measured step"):
            run()
    events = prof.profiler.kineto_results.events()
    mark = next(e for e in events if e.name() == "measured step")
    mem = sorted((e for e in events if e.name() == "[memory]"), key=lambda e: e.start_ns())
    cur = peak = 0
    for e in mem:
        if mark.start_ns() <= e.start_ns() <= mark.end_ns():
            cur += e.nbytes()
            peak = max(peak, cur)
    return peak


def _worker() -> dict:
    """First calls of the compiled VGG step and one step's peak memory (module docstring)."""
    import gc
    import tracemalloc

    setup_threads()
    name, batch = STEPS["vgg_style_cifar train step b32"]
    import numpy as np

    import hybrid
    import hybrid.nn.functional as F
    from hybrid import nn

    out: dict = {}
    model = nn.Sequential(*build_hybrid(name))
    opt = hybrid.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    xs, ys = _data(batch, np)
    x, y = hybrid.tensor(xs), hybrid.tensor(ys)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    fn = hybrid.compile(step)
    out["calls"] = []
    for _ in range(4):
        t0 = time.perf_counter()
        fn(x, y)
        out["calls"].append((time.perf_counter() - t0, fn.compile_count))
    for compiled in (False, True):
        run, fn, _ = hybrid_step(name, batch, compiled)
        gc.collect()
        tracemalloc.start()
        run()
        gc.collect()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        run()
        out["compiled" if compiled else "eager"] = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
        if compiled:
            exe = fn.last_entry.run
            out["arena"] = exe.plan.arena_bytes
            out["pooled"] = sum(b.nbytes for b in exe.plan.buffers
                                if b.kind == "output" and b.nbytes >= 128 << 10)
            out["plan_peak"], out["kernels"] = exe.memory.peak_bytes, exe.kernel_count
    p = peers()
    if "torch" in p:
        out["torch"] = _torch_step_peak(p["torch"], name, batch)
    return out


def bench_compile_memory() -> list[Row]:
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="hybrid-bench-cnn-") as d:
        env["HYBRID_CACHE_DIR"] = d
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker"],
                           check=False, capture_output=True, text=True, env=env,
                           timeout=900)
    if r.returncode != 0:
        raise RuntimeError(f"worker failed:\n{r.stderr[-3000:]}")
    m = json.loads(r.stdout.strip().splitlines()[-1])
    g = "vgg_style_cifar step first calls (new process, cold cache)"
    rows, seen = [], 0
    for i, (seconds, compiles) in enumerate(m["calls"], 1):
        note = "compiled a variant" if compiles > seen else "cache hit"
        rows.append(Row(g, f"hybrid.compile call {i}", seconds * 1e3, "ms", peer=False,
                        note=f"{note} ({compiles} compiled in all)"))
        seen = compiles
    g = "vgg_style_cifar step peak memory"
    mib = 2.0**20
    rows.append(Row(g, "hybrid eager (tracemalloc)", m["eager"] / mib, "MiB", peer=False))
    rows.append(Row(g, "hybrid.compile (tracemalloc + arena + pooled outputs)",
                    (m["compiled"] + m["arena"] + m["pooled"]) / mib, "MiB", peer=False,
                    note=(f"arena {m['arena'] / mib:.2f} MiB, planner peak "
                          f"{m['plan_peak'] / mib:.2f} MiB, {m['kernels']} kernels")))
    if "torch" in m:
        rows.append(Row(g, "torch eager (profiler allocations)", m["torch"] / mib, "MiB"))
    return rows


def run(repeats: int = 30) -> list[Row]:
    setup_threads()
    p = peers()
    return bench_convs(p, repeats) + bench_steps(p, repeats) + bench_compile_memory()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="10 samples per implementation")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(_worker()))
    else:
        print(table(run(10 if a.quick else a.repeats)))
