"""Training-loop idioms as PyTorch users write them: per-step time of the same MLP train step
in hybrid (eager and compiled) against PyTorch (eager and torch.compile), and how many variants
each compiled function holds after the run.

MLP 784-512-512-10, batch 128, cross_entropy. Idioms (the step function is the same Python text
for hybrid and PyTorch, written against a `torch`-like module):

- zero_grad first / last / outside the step (in the loop), model.zero_grad() first,
  zero_grad(set_to_none=False) first — SGD lr 0.01;
- SGD momentum 0.9 nesterov weight_decay 1e-4, Adam, AdamW, RMSprop, Adagrad — zero_grad first;
- 4 micro-batches of 32 accumulated in one step; clip_grad_norm_(1.0) before the step;
- a train step alternating with a no_grad eval function (model.train() / model.eval()).

hybrid.set_num_threads(2), torch.set_num_threads(2); first calls excluded (each function is
called 4 times before timing); medians of interleaved rounds (benchmarks/common.py).
"compiles" is the number of variants hybrid's compiled function(s) hold at the end; for
torch.compile, the number of frames dynamo compiled (torch._dynamo counters) where it reports it.

Run: python benchmarks/bench_idioms.py [--repeats N] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_training import ORDERS, SIZES, _step_fn, mlp  # noqa: E402
from common import Row, interleave, peers, setup_threads, table  # noqa: E402

BATCH = 128

OPTIMIZERS = {
    "sgd": lambda t, p: t.optim.SGD(p, lr=0.01),
    "sgd_nesterov_wd": lambda t, p: t.optim.SGD(p, lr=0.01, momentum=0.9, nesterov=True,
                                                weight_decay=1e-4),
    "adam": lambda t, p: t.optim.Adam(p, lr=1e-3),
    "adamw": lambda t, p: t.optim.AdamW(p, lr=1e-3, weight_decay=0.01),
    "rmsprop": lambda t, p: t.optim.RMSprop(p, lr=1e-3),
    "adagrad": lambda t, p: t.optim.Adagrad(p, lr=1e-2),
}

# idiom name -> (optimizer, kind of step)
IDIOMS = {
    "zero_grad first": ("sgd", "first"),
    "zero_grad last": ("sgd", "last"),
    "zero_grad outside": ("sgd", "outside"),
    "model.zero_grad() first": ("sgd", "model_first"),
    "zero_grad(set_to_none=False)": ("sgd", "keep"),
    "SGD nesterov + wd": ("sgd_nesterov_wd", "first"),
    "Adam": ("adam", "first"),
    "AdamW": ("adamw", "first"),
    "RMSprop": ("rmsprop", "first"),
    "Adagrad": ("adagrad", "first"),
    "4 micro-batches accumulated": ("sgd", "accumulate"),
    "clip_grad_norm_": ("adam", "clip"),
    "train + no_grad eval": ("adam", "train_eval"),
}


def build(t, idiom: str, compile_fn):
    """(call of no arguments, [compiled functions]) for one idiom in framework `t`."""
    import numpy as np

    opt_name, kind = IDIOMS[idiom]
    rng = np.random.RandomState(0)
    x = t.from_numpy(rng.randn(BATCH, SIZES[0]).astype(np.float32))
    y = t.from_numpy(rng.randint(0, SIZES[-1], size=(BATCH,)))
    t.manual_seed(0)
    nn, F = t.nn, t.nn.functional
    model = mlp(nn)
    opt = OPTIMIZERS[opt_name](t, model.parameters())

    first, last, keep = (_step_fn(model, opt, F, order) for order in ORDERS)

    def outside(x, y):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def model_first(x, y):
        model.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    def accumulate(x, y):
        opt.zero_grad()
        total = 0.0
        for i in range(4):
            loss = F.cross_entropy(model(x[i * 32:(i + 1) * 32]), y[i * 32:(i + 1) * 32]) / 4
            loss.backward()
            total = total + loss.detach()
        opt.step()
        return total

    def clip(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    def evaluate(x, y):
        with t.no_grad():
            return (model(x).argmax(1) == y).float().mean()

    steps = {"first": first, "last": last, "outside": outside, "model_first": model_first,
             "keep": keep, "accumulate": accumulate, "clip": clip, "train_eval": first}
    step = compile_fn(steps[kind])
    compiled = [step]
    if kind == "outside":
        def call():
            opt.zero_grad()
            return step(x, y)
    elif kind == "train_eval":
        ev = compile_fn(evaluate)
        compiled.append(ev)

        def call():
            model.train()
            step(x, y)
            model.eval()
            return ev(x, y)
    else:
        def call():
            return step(x, y)
    for _ in range(4):
        call()
    return call, compiled


def run(repeats: int, only: str | None = None) -> list[Row]:
    import hybrid

    found = peers()
    torch = found.get("torch")
    rows = []
    for idiom in IDIOMS:
        if only and only not in idiom:
            continue
        fns, notes = {}, {}
        fns["hybrid eager"], _ = build(hybrid, idiom, lambda f: f)
        fns["hybrid compiled"], comp = build(hybrid, idiom, hybrid.compile)
        notes["hybrid compiled"] = f"{sum(f.cache_size() for f in comp)} compiles"
        if torch is not None:
            fns["torch eager"], _ = build(torch, idiom, lambda f: f)
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            fns["torch.compile"], _ = build(torch, idiom, torch.compile)
            frames = torch._dynamo.utils.counters["stats"]["unique_graphs"]
            notes["torch.compile"] = f"{frames} graphs" if frames else ""
        for k, v in interleave(fns, repeats).items():
            rows.append(Row(idiom, k, v.ms, "ms", peer=k.startswith("torch"),
                            note=notes.get(k, "")))
        print(f"{idiom}: done", file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--only", default=None, help="run the idioms whose name contains this")
    args = ap.parse_args()
    setup_threads()
    print(table(run(args.repeats, args.only)))
