"""Eager per-op overhead: `a + b` on 1-element and 16x16 float32 tensors (grad off and on), and a
Linear(784, 512) forward + backward at batch 64 — hybrid next to numpy, PyTorch and JAX (when
installed), in one run. Medians of many repeats.

    python benchmarks/eager_overhead.py
"""

from __future__ import annotations

import statistics
import time
import timeit

import numpy as np

import hybrid
import hybrid.nn as hnn


def per_call_us(fn, number: int = 20000, repeat: int = 15) -> float:
    """Median over `repeat` runs of the time per call, in microseconds."""
    fn()
    times = timeit.repeat(fn, number=number, repeat=repeat)
    return statistics.median(times) / number * 1e6


def hybrid_rows() -> dict:
    rows = {}
    for shape, label in (((1,), "a + b, 1 element"), ((16, 16), "a + b, 16x16")):
        a, b = hybrid.ones(*shape), hybrid.ones(*shape)
        rows[f"{label}, grad off"] = per_call_us(lambda: a + b)
        ag, bg = hybrid.ones(*shape, requires_grad=True), hybrid.ones(*shape, requires_grad=True)
        rows[f"{label}, grad on"] = per_call_us(lambda: ag + bg)
    layer = hnn.Linear(784, 512)
    x = hybrid.randn(64, 784)

    def fwd_bwd():
        layer(x).sum().backward()

    rows["Linear(784,512) fwd+bwd, batch 64"] = per_call_us(fwd_bwd, number=50, repeat=15)
    return rows


def numpy_rows() -> dict:
    rows = {}
    for shape, label in (((1,), "a + b, 1 element"), ((16, 16), "a + b, 16x16")):
        a, b = np.ones(shape, np.float32), np.ones(shape, np.float32)
        rows[f"{label}, grad off"] = per_call_us(lambda: a + b)
    w = np.random.rand(512, 784).astype(np.float32)
    bias = np.zeros(512, np.float32)
    x = np.random.rand(64, 784).astype(np.float32)

    def fwd_bwd():  # the same work by hand: y = x W^T + b; dW = g^T x; db = g.sum(0)
        y = x @ w.T + bias
        g = np.ones_like(y)
        _ = g.T @ x
        _ = g.sum(0)

    rows["Linear(784,512) fwd+bwd, batch 64"] = per_call_us(fwd_bwd, number=50, repeat=15)
    return rows


def torch_rows() -> dict | None:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(hybrid.get_num_threads())
    rows = {}
    for shape, label in (((1,), "a + b, 1 element"), ((16, 16), "a + b, 16x16")):
        a, b = torch.ones(*shape), torch.ones(*shape)
        rows[f"{label}, grad off"] = per_call_us(lambda: a + b)
        ag = torch.ones(*shape, requires_grad=True)
        bg = torch.ones(*shape, requires_grad=True)
        rows[f"{label}, grad on"] = per_call_us(lambda: ag + bg)
    layer = torch.nn.Linear(784, 512)
    x = torch.randn(64, 784)

    def fwd_bwd():
        layer(x).sum().backward()

    rows["Linear(784,512) fwd+bwd, batch 64"] = per_call_us(fwd_bwd, number=50, repeat=15)
    return rows


def jax_rows() -> dict | None:
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    rows = {}
    for shape, label in (((1,), "a + b, 1 element"), ((16, 16), "a + b, 16x16")):
        a, b = jnp.ones(shape, jnp.float32), jnp.ones(shape, jnp.float32)
        rows[f"{label}, grad off"] = per_call_us(lambda: (a + b).block_until_ready(),
                                                 number=5000)
    w = jnp.ones((512, 784), jnp.float32)
    x = jnp.ones((64, 784), jnp.float32)
    grad = jax.grad(lambda w, x: (x @ w.T).sum())  # eager (op-by-op) grad, not jit

    def fwd_bwd():
        grad(w, x).block_until_ready()

    rows["Linear(784,512) fwd+bwd, batch 64"] = per_call_us(fwd_bwd, number=20, repeat=10)
    return rows


def main() -> None:
    columns = {"hybrid": hybrid_rows(), "numpy": numpy_rows()}
    for name, fn in (("PyTorch", torch_rows), ("JAX (eager)", jax_rows)):
        rows = fn()
        if rows is not None:
            columns[name] = rows
    labels = list(columns["hybrid"])
    head = "| per call (µs, median) | " + " | ".join(columns) + " | hybrid / PyTorch |"
    print(f"eager overhead, {hybrid.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    print(head)
    print("|" + "---|" * (len(columns) + 2))
    for label in labels:
        cells = []
        for col in columns.values():
            v = col.get(label)
            cells.append(f"{v:.2f}" if v is not None else "—")
        ratio = ""
        if "PyTorch" in columns and label in columns["PyTorch"]:
            ratio = f"{columns['hybrid'][label] / columns['PyTorch'][label]:.2f}x"
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
