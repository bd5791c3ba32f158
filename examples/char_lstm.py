"""Train a character-level LSTM language model on the source of a Python standard-library module.

    python examples/char_lstm.py [--compile] [--module textwrap] [--epochs 4] [--buckets 16,24,32]
                                 [--layers 2] [--hidden 128] [--batch-size 16] [--seed 0]

The text (by default `textwrap.py`, found with `inspect.getsourcefile`, ~20k characters) is cut
into chunks of different lengths; each batch holds `--batch-size` chunks whose lengths fall
evenly from a bucket length T down to T/4 (the bucket is drawn at random per batch). A chunk's
characters are the input and the same characters shifted by one the targets. The model is
PyTorch's: Embedding -> LSTM (2 layers) -> Linear, with the padded batch packed by
`pack_padded_sequence` (the LSTM never steps over padding), the head applied to the packed
rows, and `pad_packed_sequence` giving padded logits whose padded targets are `ignore_index`.
Training uses Adam, gradient clipping (`clip_grad_norm_`) and cross-entropy; each epoch prints
the mean loss per character and its perplexity, and the end samples text at a temperature.

With `--compile` the whole step (forward, backward, clipping, Adam) is one `hybrid.compile`d
function. Packing happens inside it, from the Python list of lengths (a PackedSequence or a
lengths tensor passed in would be a TraceError), so the lengths are part of the cache key:
every distinct (T, lengths) compiles once. Bucketing keeps that to one variant per bucket (plus
one for Adam's first step, before its moment buffers exist). The LSTM's time loop is a
`hybrid.scan` node, its body traced once, so a variant's compile time does not grow with T:
with the defaults (2 layers, buckets 16/24/32) the 4 variants compile in about 6 s on 2 cores
(about 100 s when the loop was unrolled into the trace). Compiled variants are kept on disk
(~/.cache/hybrid), so a second run skips most of that.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import math
import time

import numpy as np
from tqdm import tqdm

import hybrid
import hybrid.nn.functional as F
from hybrid import nn
from hybrid.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

IGNORE = -100  # target of padded positions: cross_entropy skips them


class CharLSTM(nn.Module):
    """(B, T) character ids and their lengths -> (B, T, vocab) next-character scores."""

    def __init__(self, vocab_size: int, embed: int = 32, hidden: int = 128,
                 layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, x: hybrid.Tensor, lengths: list[int] | None = None,
                state: tuple | None = None) -> tuple[hybrid.Tensor, tuple]:
        """Scores for every position (zero past each length) and the final (h, c)."""
        if lengths is None:  # every sequence is full length (sampling)
            out, state = self.lstm(self.embed(x), state)
            return self.head(out), state
        packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True)
        out, state = self.lstm(packed, state)
        # the head runs on the packed rows only, then the scores are padded back to (B, T, V)
        scores = PackedSequence(self.head(out.data), out.batch_sizes, out.sorted_indices,
                                out.unsorted_indices)
        logits, _ = pad_packed_sequence(scores, batch_first=True, total_length=x.shape[1])
        return logits, state


def load_text(module: str) -> str:
    """The source of a standard-library module (a text file that ships with Python)."""
    path = inspect.getsourcefile(importlib.import_module(module))
    with open(path, encoding="utf-8") as f:
        return f.read()


def length_profile(bucket: int, batch_size: int) -> list[int]:
    """`batch_size` lengths falling evenly from `bucket` to about bucket/4 (sorted, longest
    first, as pack_padded_sequence's enforce_sorted wants)."""
    low = max(2, bucket // 4)
    if batch_size == 1:
        return [bucket]
    return [bucket - (i * (bucket - low)) // (batch_size - 1) for i in range(batch_size)]


def make_batches(ids: np.ndarray, buckets: list[int], batch_size: int,
                 rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, list[int]]]:
    """One epoch: cut `ids` from a random start into consecutive chunks, batch_size at a time
    with the lengths of a random bucket's profile. Each batch is (x, y, lengths): x (B, T)
    int64 padded with 0, y the next characters padded with IGNORE."""
    batches = []
    pos = int(rng.integers(0, max(1, min(buckets))))
    while True:
        bucket = buckets[int(rng.integers(len(buckets)))]
        lengths = length_profile(bucket, batch_size)
        if pos + sum(lengths) + 1 > len(ids):
            break
        x = np.zeros((batch_size, bucket), np.int64)
        y = np.full((batch_size, bucket), IGNORE, np.int64)
        for row, n in enumerate(lengths):
            x[row, :n] = ids[pos:pos + n]
            y[row, :n] = ids[pos + 1:pos + n + 1]
            pos += n
        batches.append((x, y, lengths))
    return batches


def train_step(model: CharLSTM, opt: hybrid.optim.Optimizer, x: hybrid.Tensor,
               y: hybrid.Tensor, lengths: list[int], clip: float) -> hybrid.Tensor:
    """One Adam step on a padded batch; returns the mean loss per character (a 0-d tensor)."""
    opt.zero_grad()
    logits, _ = model(x, lengths)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                           ignore_index=IGNORE)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return loss


def sample(model: CharLSTM, chars: str, prime: str, length: int, temperature: float,
           seed: int) -> str:
    """`length` characters after `prime`, each drawn from softmax(scores / temperature)."""
    index = {c: i for i, c in enumerate(chars)}
    rng = np.random.default_rng(seed)
    out, state = [], None
    with hybrid.no_grad():
        x = hybrid.tensor([[index[c] for c in prime]])
        for _ in range(length):
            logits, state = model(x, state=state)
            p = F.softmax(logits[0, -1] / temperature, dim=-1).numpy().astype(np.float64)
            nxt = int(rng.choice(len(chars), p=p / p.sum()))
            out.append(chars[nxt])
            x = hybrid.tensor([[nxt]])
    return "".join(out)


def train(args: argparse.Namespace) -> dict:
    """Train a fresh model from `args.seed`; see main() for what it returns."""
    hybrid.manual_seed(args.seed)
    text = load_text(args.module)
    chars = "".join(sorted(set(text)))
    ids = np.array([chars.index(c) for c in text], np.int64)
    rng = np.random.default_rng(args.seed)

    model = CharLSTM(len(chars), embed=args.embed, hidden=args.hidden, layers=args.layers)
    opt = hybrid.optim.Adam(model.parameters(), lr=args.lr)
    step = hybrid.compile(train_step) if args.compile else train_step
    label = "compiled" if args.compile else "eager"

    losses, batch_losses, compile_seconds, profiles = [], [], 0.0, set()
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        batches = make_batches(ids, args.buckets, args.batch_size, rng)
        if args.max_batches:
            batches = batches[:args.max_batches]
        bar = tqdm(batches, desc=f"{label:8s} epoch {epoch:2d}/{args.epochs}", leave=False,
                   disable=args.quiet)
        total, chars_seen = 0.0, 0
        for x, y, lengths in bar:
            profiles.add(tuple(lengths))
            compiles = step.compile_count if args.compile else 0
            t0 = time.perf_counter()
            loss = step(model, opt, hybrid.tensor(x), hybrid.tensor(y), lengths,
                        args.clip).item()
            if args.compile and step.compile_count > compiles:
                compile_seconds += time.perf_counter() - t0  # this call traced and built
            batch_losses.append(loss)
            total, chars_seen = total + loss * sum(lengths), chars_seen + sum(lengths)
            bar.set_postfix(loss=f"{loss:.3f}", ppl=f"{math.exp(loss):.1f}")
        losses.append(total / chars_seen)
        if not args.quiet:
            print(f"{label:8s} epoch {epoch:2d}: loss {losses[-1]:.3f} per character, "
                  f"perplexity {math.exp(losses[-1]):.2f} ({len(batches)} batches)")
    seconds = time.perf_counter() - start

    text_out = sample(model, chars, args.prime, args.sample_length, args.temperature, args.seed)
    return {
        "mode": label, "losses": losses, "perplexities": [math.exp(v) for v in losses],
        "batch_losses": batch_losses, "seconds": seconds, "sample": text_out, "vocab": chars,
        "uniform_loss": math.log(len(chars)), "buckets": list(args.buckets),
        "length_profiles": len(profiles),
        "compiled_variants": step.cache_size() if args.compile else None,
        "compile_count": step.compile_count if args.compile else None,
        "compile_seconds": compile_seconds if args.compile else None,
    }


def main(argv: list[str] | None = None) -> dict:
    """Run the example; returns {"mode", "losses" and "perplexities" (per epoch, per character),
    "batch_losses", "seconds", "sample", "vocab", "uniform_loss" (log of the vocabulary size),
    "buckets", "length_profiles" (distinct lengths lists trained on) and, compiled,
    "compiled_variants" (cached), "compile_count", "compile_seconds" (calls that compiled)}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compile", action="store_true", help="compile the training step")
    parser.add_argument("--module", default="textwrap", help="stdlib module whose source to learn")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-batches", type=int, default=0, help="per epoch; 0: all")
    parser.add_argument("--buckets", type=lambda s: [int(v) for v in s.split(",")],
                        default=[16, 24, 32], help="comma-separated chunk lengths")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--embed", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--clip", type=float, default=1.0, help="max gradient norm")
    parser.add_argument("--prime", default="def ")
    parser.add_argument("--sample-length", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    args = parser.parse_args(argv)
    if not args.quiet:
        print(CharLSTM(len(set(load_text(args.module))), args.embed, args.hidden, args.layers))

    r = train(args)
    curve = " ".join(f"{v:.3f}" for v in r["losses"])
    print(f"{r['mode']:8s}  {args.module}.py, {len(r['vocab'])} characters (uniform loss "
          f"{r['uniform_loss']:.3f})  training time {r['seconds']:.1f} s ({args.epochs} epochs)  "
          f"loss per epoch {curve}  final perplexity {r['perplexities'][-1]:.2f}")
    if args.compile:
        print(f"compiled {r['compiled_variants']} variants ({r['compile_count']} compiles, "
              f"{r['compile_seconds']:.1f} s) for {len(args.buckets)} length buckets "
              f"{args.buckets}")
    print(f"sample (temperature {args.temperature}): {args.prime}{r['sample']}")
    return r


if __name__ == "__main__":
    main()
