"""Kernel benchmarks: hybrid.compile against numpy, torch (eager and torch.compile) and jax.jit.

- GELU (tanh approximation) on 2^22 float32 values
- softmax over the last axis of a (4096, 1024) float32 matrix
- SGEMM 1024 x 1024 x 1024 in GFLOP/s

hybrid runs `hybrid.compile(fn)` on tensors created once (as a user would), first call
excluded; hybrid.set_num_threads(2) and torch.set_num_threads(2) are set explicitly.
Implementations are timed in rounds of blocks (common.interleave); the figures are medians.

Run: python benchmarks/bench_kernels.py [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import (  # noqa: E402
    Row, blas_choice, hybrid_variants, interleave, peers, setup_threads, table,
)

GELU_N = 1 << 22
SOFTMAX_SHAPE = (4096, 1024)
GEMM_N = 1024


def _numpy_gelu(x):
    import numpy as np

    c = np.float32(math.sqrt(2.0 / math.pi))
    return 0.5 * x * (1.0 + np.tanh(c * (x + np.float32(0.044715) * x * x * x)))


def _numpy_softmax(x):
    import numpy as np

    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _peer_fns(kind: str, x_np, p: dict, extra=None) -> dict:
    """Peer implementations of `kind` ('gelu' | 'softmax' | 'gemm') on the array(s)."""
    return {**_torch_fns(kind, x_np, p, extra), **_jax_fns(kind, x_np, p, extra)}


def _torch_fns(kind: str, x_np, p: dict, extra=None) -> dict:
    fns = {}
    if "torch" in p:
        torch = p["torch"]
        tf = torch.nn.functional
        if kind == "gelu":
            xt = torch.from_numpy(x_np)
            eager = lambda t: tf.gelu(t, approximate="tanh")  # noqa: E731
            args = (xt,)
        elif kind == "softmax":
            xt = torch.from_numpy(x_np)
            eager = lambda t: torch.softmax(t, dim=-1)  # noqa: E731
            args = (xt,)
        else:
            args = (torch.from_numpy(x_np), torch.from_numpy(extra))
            eager = torch.mm
        comp = torch.compile(eager)
        with torch.no_grad():
            comp(*args)  # compile outside the timing
        fns["torch eager"] = lambda: eager(*args)
        fns["torch.compile"] = lambda: comp(*args)
    return fns


def _jax_fns(kind: str, x_np, p: dict, extra=None) -> dict:
    fns = {}
    if "jax" in p:
        import jax
        import jax.numpy as jnp

        if kind == "gelu":
            f = jax.jit(lambda t: jax.nn.gelu(t, approximate=True))
            args = (jnp.asarray(x_np),)
        elif kind == "softmax":
            f = jax.jit(lambda t: jax.nn.softmax(t, axis=-1))
            args = (jnp.asarray(x_np),)
        else:
            f = jax.jit(jnp.matmul)
            args = (jnp.asarray(x_np), jnp.asarray(extra))
        jax.block_until_ready(f(*args))
        fns["jax.jit"] = lambda: jax.block_until_ready(f(*args))
    return fns


def bench_gelu(p: dict, repeats: int) -> list[Row]:
    import numpy as np

    import hybrid as h
    import hybrid.nn.functional as F

    x_np = np.random.RandomState(0).randn(GELU_N).astype(np.float32)
    x = h.tensor(x_np)
    fn = h.compile(lambda t: F.gelu(t, approximate="tanh"))
    fn(x)
    fns = {"hybrid.compile": lambda: fn(x), "numpy": lambda: _numpy_gelu(x_np)}
    fns.update(_peer_fns("gelu", x_np, p))
    ref = _numpy_gelu(x_np.astype(np.float64))
    assert np.allclose(fn(x).numpy(), ref, atol=1e-5), "hybrid gelu is wrong"
    t = interleave(fns, repeats)
    g = "GELU-tanh 2^22 f32"
    return [Row(g, k, v.ms, "ms", peer=k != "hybrid.compile") for k, v in t.items()]


def bench_softmax(p: dict, repeats: int) -> list[Row]:
    import numpy as np

    import hybrid as h
    import hybrid.nn.functional as F

    x_np = np.random.RandomState(0).randn(*SOFTMAX_SHAPE).astype(np.float32)
    x = h.tensor(x_np)
    fn = h.compile(lambda t: F.softmax(t, dim=-1))
    fn(x)
    assert np.allclose(fn(x).numpy(), _numpy_softmax(x_np), atol=1e-6), "hybrid softmax is wrong"
    fns = {"hybrid.compile": lambda: fn(x), "numpy": lambda: _numpy_softmax(x_np)}
    fns.update(_peer_fns("softmax", x_np, p))
    t = interleave(fns, repeats)
    g = "softmax (4096,1024) f32"
    return [Row(g, k, v.ms, "ms", peer=k != "hybrid.compile") for k, v in t.items()]


def bench_gemm(p: dict, repeats: int) -> list[Row]:
    import numpy as np

    import hybrid as h

    rng = np.random.RandomState(0)
    a_np = rng.randn(GEMM_N, GEMM_N).astype(np.float32)
    b_np = rng.randn(GEMM_N, GEMM_N).astype(np.float32)
    a, b = h.tensor(a_np), h.tensor(b_np)
    fns = {}
    for label, blas in hybrid_variants():
        with blas_choice(blas):
            fn = h.compile(lambda s, t: s @ t)
            fn(a, b)
        assert np.allclose(fn(a, b).numpy(), a_np @ b_np, rtol=1e-3, atol=1e-2)
        fns[label] = lambda fn=fn: fn(a, b)
    fns["numpy"] = lambda: a_np @ b_np
    fns.update(_peer_fns("gemm", a_np, p, b_np))
    t = interleave(fns, repeats)
    flop = 2.0 * GEMM_N ** 3
    g = "SGEMM 1024^3"
    return [Row(g, k, flop / v.median / 1e9, "GFLOP/s", peer=not k.startswith("hybrid"),
                higher_is_better=True, note=f"{v.ms:.2f} ms") for k, v in t.items()]


def run(repeats: int = 40) -> list[Row]:
    setup_threads()
    p = peers()
    return bench_gelu(p, repeats) + bench_softmax(p, repeats) + bench_gemm(p, repeats)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    print(table(run(ap.parse_args().repeats)))
