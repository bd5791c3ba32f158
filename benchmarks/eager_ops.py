"""Eager speed (issue 13's table): hybrid eager with its native kernels, hybrid eager on numpy
only (HYBRID_EAGER_KERNELS=0's path), PyTorch eager and numpy, in one run, 2 threads each;
medians of interleaved rounds (benchmarks/common.py). The ratio column is to the best peer
(PyTorch eager or numpy).

    python benchmarks/eager_ops.py [--only gelu] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import Row, interleave, peers, setup_threads, table  # noqa: E402


def _np_gelu(np, x):
    from scipy.special import erf

    return x * 0.5 * (1.0 + erf(x * 0.7071067811865476))


def _np_softmax(np, x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _np_layer_norm(np, x):
    mu = x.mean(-1, keepdims=True)
    d = x - mu
    return d / np.sqrt((d * d).mean(-1, keepdims=True) + 1e-5)


def workloads(h, torch, np):
    """{name: {impl: fn}} for each row group."""
    import hybrid.nn.functional as F

    rng = np.random.default_rng(0)
    out = {}
    a = rng.standard_normal((256, 1024)).astype(np.float32)
    ha = h.tensor(a)
    ta = torch.tensor(a) if torch else None
    tf = torch.nn.functional if torch else None
    for name, hf, tfn, nf in (
        ("exact GELU (256,1024)", lambda: F.gelu(ha), lambda: tf.gelu(ta),
         lambda: _np_gelu(np, a)),
        ("softmax (256,1024)", lambda: F.softmax(ha, -1), lambda: torch.softmax(ta, -1),
         lambda: _np_softmax(np, a)),
        ("layer_norm (256,1024)", lambda: F.layer_norm(ha, (1024,)),
         lambda: tf.layer_norm(ta, (1024,)), lambda: _np_layer_norm(np, a)),
    ):
        out[name] = {"hybrid eager": hf, "numpy": nf}
        if torch:
            out[name]["torch eager"] = tfn

    q = rng.standard_normal((8, 12, 64, 32)).astype(np.float32)
    hq = h.tensor(q)
    tq = torch.tensor(q) if torch else None
    out["attention q@kT, softmax, @v (8,12,64,32)"] = {
        "hybrid eager": lambda: F.softmax(hq @ hq.transpose(-1, -2), -1) @ hq,
        "numpy": lambda: _np_softmax(np, q @ q.swapaxes(-1, -2)) @ q,
    }
    if torch:
        out["attention q@kT, softmax, @v (8,12,64,32)"]["torch eager"] = \
            lambda: torch.softmax(tq @ tq.transpose(-1, -2), -1) @ tq

    x = rng.standard_normal((256, 1024)).astype(np.float32)
    w = (rng.standard_normal((512, 1024)) * 0.03).astype(np.float32)
    hx, hw = h.tensor(x), h.tensor(w, requires_grad=True)

    def h_linear():
        hw.grad = None
        F.linear(hx, hw).sum().backward()

    out["linear fwd+bwd (256x1024 @ 1024x512)"] = {"hybrid eager": h_linear}
    if torch:
        tx, tw = torch.tensor(x), torch.tensor(w, requires_grad=True)

        def t_linear():
            tw.grad = None
            tf.linear(tx, tw).sum().backward()

        out["linear fwd+bwd (256x1024 @ 1024x512)"]["torch eager"] = t_linear
    out["autograd: backward of a 1000-op chain, 1 element (per node: / 1000)"] = {
        "hybrid eager": _chain(h), **({"torch eager": _chain(torch)} if torch else {})}
    out["MLP 784-512-512-10 step, Adam, batch 128"] = {"hybrid eager": _mlp(h, np)}
    if torch:
        out["MLP 784-512-512-10 step, Adam, batch 128"]["torch eager"] = _mlp(torch, np)
    return out


def _chain(lib, n=1000):
    """The autograd engine's cost per node: backward through n multiplications of one element
    (the forward is built outside the timed call: retain_graph keeps it)."""
    x = lib.ones(1, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * 1.0001
    y = y.sum()

    def backward():
        x.grad = None
        y.backward(retain_graph=True)

    return backward


def _mlp(lib, np):
    nn, F = lib.nn, lib.nn.functional
    lib.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                          nn.Linear(512, 10))
    opt = lib.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(1)
    x = lib.tensor(rng.standard_normal((128, 784)).astype(np.float32))
    y = lib.tensor(rng.integers(0, 10, 128))

    def step():  # PyTorch's tutorial order
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(4):  # the signatures get hot, the optimizer's step compiled
        step()
    return step


def run(repeats: int, only: str | None) -> list[Row]:
    import numpy as np

    import hybrid as h
    from hybrid import eager_kernels

    torch = peers().get("torch")
    rows = []
    for group, fns in workloads(h, torch, np).items():
        if only and only not in group:
            continue
        hybrid_fn = fns["hybrid eager"]

        def numpy_only(fn=hybrid_fn):
            eager_kernels.SETTINGS.enabled = False
            try:
                return fn()
            finally:
                eager_kernels.SETTINGS.enabled = True

        fns = dict(fns)
        if "MLP" not in group:  # the MLP's optimizer state would be stepped by both
            fns["hybrid eager, numpy only"] = numpy_only
        for k, v in interleave(fns, repeats).items():
            rows.append(Row(group, k, v.ms, "ms", peer=not k.startswith("hybrid")))
        print(f"{group}: done", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", default=None, help="run the rows whose name contains this")
    args = ap.parse_args()
    setup_threads()
    print(table(run(args.repeats, args.only)))
